"""Parts of the jobs that need no Flink: contract parsing, threshold SQL, the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from contracts import AlertType, TireReading
from contracts.thresholds import Thresholds
from jobs.parse import ParseFamily, metric_names, output_columns
from jobs.pipelines import _by_rule, _condition, _resolved
from jobs.sample import START


def test_parse_yields_the_event_or_the_contract_error():
    parse = ParseFamily("tire.reading")
    good = TireReading.build(
        event_id="e1", source_id="v1", event_time=START, tire_position="FL", pressure_kpa=190, temperature_c=40
    ).to_json()
    (row,) = parse.eval(good, "2024-01-01 00:00:00.000")
    assert dict(zip(output_columns("tire.reading"), row, strict=True)) == {
        "error": None,
        "error_field": None,
        "event_id": "e1",
        "source_id": "v1",
        "fleet_id": "default",
        "tire_position": "FL",
        "pressure_kpa": 190.0,
        "temperature_c": 40.0,
    }
    (bad,) = parse.eval(good.replace('"pressure_kpa":190.0', '"pressure_kpa":-1'), "2024-01-01 00:00:00.000")
    assert bad[1] == "pressure_kpa" and "greater than or equal" in bad[0]
    (wrong_topic,) = ParseFamily("trip").eval(good, "2024-01-01 00:00:00.000")
    assert wrong_topic[:2] == ("tire.reading event on the trip topic", "schema")
    (offset_time,) = parse.eval(good.replace("00:00:00.000Z", "01:00:00.000+01:00"), "1970-01-01 00:00:00.000")
    assert offset_time[1] == "event_time"


def test_legacy_heartbeats_parse_on_the_heartbeat_topic():
    (row,) = ParseFamily("device.heartbeat").eval(
        '{"event-id": "h1", "device-id": "dev-1", "time": "2024-01-01T00:00:05.000Z"}', "2024-01-01 00:00:05.000"
    )
    assert row[:5] == (None, None, "h1", "dev-1", "default")


def test_metric_names_stay_unique_per_vehicle():
    assert metric_names("driving.event") == {"odometer_km": "driving.event.odometer_km"}
    assert metric_names("vehicle.telemetry")["odometer_km"] == "odometer_km"


def test_threshold_overrides_become_sql_branches_most_specific_first():
    thresholds = Thresholds.model_validate(
        {
            "fleets": {"fleet-a": {"tire_pressure_low": {"threshold": 210}}},
            "sources": {"veh-7": {"tire_pressure_low": {"threshold": 180, "clear": 190}}},
        }
    )
    branches = _resolved(thresholds, AlertType.TIRE_PRESSURE_LOW)
    assert [(match, rule.threshold, rule.clear) for match, rule in branches] == [
        ("source_id = 'veh-7' AND fleet_id = 'fleet-a'", 180, 190),
        ("source_id = 'veh-7'", 180, 190),
        ("fleet_id = 'fleet-a'", 210, 220),
    ]
    sql = _by_rule(branches, thresholds.rule_for(AlertType.TIRE_PRESSURE_LOW), _condition)
    assert sql.startswith("CASE WHEN source_id = 'veh-7' AND fleet_id = 'fleet-a' THEN CASE WHEN val IS NULL")
    assert "val < 200.0 THEN 'B' WHEN val >= 210.0 THEN 'O' END END" in sql  # the defaults, with hysteresis


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args], capture_output=True, text=True, check=False)


def test_cli_help_and_clear_errors(tmp_path):
    assert cli("--help").returncode == 0 and "--checkpoint-interval" in cli("--help").stdout
    unknown = cli("alarms", "--input-dir", str(tmp_path), "--bogus")
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in unknown.stderr
    assert "invalid choice: 'nope'" in cli("nope", "--input-dir", str(tmp_path)).stderr
    assert "must be > 0" in cli("kpis", "--input-dir", str(tmp_path), "--checkpoint-interval", "0").stderr
    missing = cli("kpis", "--input-dir", str(tmp_path / "absent"))
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    assert "one of the arguments --input-dir --bootstrap-servers is required" in cli("kpis").stderr


@pytest.mark.parametrize("bad", ["0,300", "x", ""])
def test_cli_rejects_bad_window_sizes(tmp_path, bad):
    result = cli("aggregates", "--input-dir", str(tmp_path), "--building-windows", bad)
    assert result.returncode == 2 and "--building-windows" in result.stderr


@pytest.mark.parametrize(("text", "seconds"), [("10", 10.0), ("30s", 30.0), ("500ms", 0.5), ("2min", 120.0)])
def test_checkpoint_interval_takes_seconds_or_flink_durations(text, seconds):
    from jobs.cli import parser

    assert (
        parser().parse_args(["kpis", "--input-dir", ".", "--checkpoint-interval", text]).checkpoint_interval == seconds
    )


def test_monitor_interval_reaches_the_job_config(tmp_path):
    from jobs.cli import config_from, parser

    args = parser().parse_args(["alarms", "--input-dir", str(tmp_path), "--follow", "--monitor-interval", "200ms"])
    assert config_from(args).monitor_interval_s == 0.2
    assert config_from(parser().parse_args(["alarms", "--input-dir", str(tmp_path)])).monitor_interval_s == 1.0
    assert "--monitor-interval" in cli("alarms", "--input-dir", str(tmp_path), "--monitor-interval", "0").stderr


def test_load_interval_rest_port_and_alarm_bound_reach_the_job_config(tmp_path):
    from jobs.cli import config_from, parser

    given = ["--load-interval", "250ms", "--rest-port", "18081", "--alarm-out-of-orderness", "0.5"]
    config = config_from(parser().parse_args(["alarms", "--input-dir", str(tmp_path), *given]))
    assert (config.load_interval_s, config.rest_port, config.alarm_delay_s, config.watermark_delay_s) == (
        0.25,
        18081,
        0.5,
        5.0,
    )
    default = config_from(parser().parse_args(["alarms", "--input-dir", str(tmp_path)]))
    assert (default.load_interval_s, default.rest_port, default.alarm_delay_s) == (1.0, None, 5.0)
    # Never longer than the watermark: that adds latency and admits nothing, later rows are dead letters.
    longer = ["alarms", "--input-dir", str(tmp_path), "--alarm-out-of-orderness", "60"]
    assert config_from(parser().parse_args(longer)).alarm_delay_s == 5.0


def test_cli_rejects_a_negative_alarm_bound(tmp_path):
    result = cli("alarms", "--input-dir", str(tmp_path), "--alarm-out-of-orderness", "-1")
    assert result.returncode != 0 and "--alarm-out-of-orderness must be >= 0" in result.stderr


@pytest.mark.parametrize("bad", ["soon", "-5s", "3 weeks"])
def test_checkpoint_interval_rejects_what_is_not_a_duration(tmp_path, bad):
    result = cli("kpis", "--input-dir", str(tmp_path), "--checkpoint-interval", bad)
    assert result.returncode == 2 and "--checkpoint-interval" in result.stderr


def test_checkpoint_dir_accepts_file_uris_only(tmp_path):
    from jobs.cli import parser

    args = parser().parse_args(["kpis", "--input-dir", ".", "--checkpoint-dir", f"file://{tmp_path}"])
    assert args.checkpoint_dir == tmp_path
    assert "only local paths" in cli("kpis", "--input-dir", str(tmp_path), "--checkpoint-dir", "s3://b/x").stderr
