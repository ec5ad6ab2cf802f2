"""Policy settings: periods parse strictly and overlapping policies are refused with the setting named."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage.migrate import main, migrations
from storage.policies import Period, PolicyError, PolicySettings


def test_periods_parse_long_and_short_forms():
    assert Period.parse("7 days", "x") == Period("7 days", timedelta(days=7))
    assert Period.parse("12h", "x") == Period("12 hours", timedelta(hours=12))
    assert Period.parse("1 month", "x").length == timedelta(days=30)
    for bad in ("", "7", "days", "0 days", "7 fortnights", "-1 day", "7 days; DROP TABLE x"):
        with pytest.raises(PolicyError, match="not a period"):
            Period.parse(bad, "retention.readings")


def test_defaults_and_chart_style_retention_entries():
    settings = PolicySettings.build(["readings=3 days", "aggregates=30 days", "dead_letters=7 days"], None)
    assert settings.retention["readings"].text == "3 days"
    assert settings.retention["alarm_events"].text == "365 days"  # default kept
    assert settings.compress_after.text == "2 days" and settings.refresh_window.text == "1 day"


def test_env_settings(monkeypatch):
    monkeypatch.setenv("FLEET_RETENTION", "readings=10 days, rollups=400 days")
    monkeypatch.setenv("FLEET_COMPRESS_AFTER", "3 days")
    settings = PolicySettings.build()
    assert settings.retention["rollups"].text == "400 days" and settings.compress_after.text == "3 days"


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"retention": ["readings=1 day"]}, "retention.readings"),  # shorter than compress_after
        ({"compress_after": "12 hours"}, "compress_after"),  # inside the refresh window
        ({"refresh_window": "2 hours"}, "refresh_window"),  # less than two buckets past the lag
        ({"retention": ["rollups=2 days"]}, "retention.rollups"),
        ({"retention": ["nosuch=1 day"]}, "retention"),
        ({"retention": ["readings"]}, "retention"),
    ],
)
def test_overlapping_or_bad_settings_are_refused(kwargs, setting):
    with pytest.raises(PolicyError) as error:
        PolicySettings.build(**kwargs)
    assert error.value.setting == setting


def test_cli_rejects_bad_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["up", "--database-url", "postgresql://x", "--retention", "readings=1 day"])
    assert exit_info.value.code == 2 and "retention.readings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["up", "--database-url", "postgresql://x", "--timescaledb", "maybe"])
    with pytest.raises(SystemExit):
        main(["sideways"])


def test_migrations_are_ordered_with_both_variants():
    found = migrations()
    assert [m.version for m in found] == sorted(m.version for m in found)
    rollups = next(m for m in found if m.version == "0003_rollups")
    assert set(rollups.files) == {"timescale", "plain"}
