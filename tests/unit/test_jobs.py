"""Parts of the jobs that need no Flink cluster: contract parsing, threshold SQL, the alarm
lifecycle's output rows, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from pyflink.common import Row

from contracts import AlertRecord, AlertType, TireReading
from contracts.metrics import METRICS, TIRE_METRICS, TIRE_POSITIONS, metric_names
from contracts.thresholds import Thresholds
from contracts.windows import TRIP_WINDOWS_S
from jobs.lifecycle import AlarmLifecycle, InactivityTimers, alarm_line
from jobs.parse import ParseFamily, output_columns
from jobs.pipelines import _by_rule, _condition, _resolved
from tests.support.jobs_sample import START, build, closers


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
    (epoch,) = ParseFamily("device.heartbeat").eval(
        '{"event-id":"h1","device-id":"dev-1","time":1704067205}', "2024-01-01 00:00:05.000"
    )
    assert epoch[:2] == (None, None)
    (misread,) = ParseFamily("device.heartbeat").eval(
        '{"event-id":"h1","device-id":"dev-1","time":1704067205}', "1970-01-01 00:00:00.000"
    )
    assert misread[1] == "event_time" and "epoch seconds" in misread[0]


def test_inactivity_checks_fall_on_multiples_of_the_interval():
    checks = InactivityTimers(default_timeout_s=60, check_interval_s=30)
    assert [checks.check_at(ms) for ms in (0, 1, 29_999, 30_000, 30_001)] == [0, 30_000, 30_000, 30_000, 60_000]
    assert InactivityTimers(60, 0.25).check_at(1_001) == 1_250


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


def test_a_sample_in_time_order_interleaves_the_families_and_keeps_each_ones_order():
    """What a live test streams: all of the sample, each family's lines in their order (out of
    order within the bound, malformed ones in place), the families side by side in event time."""
    data = build(steps=60, vehicles=2)
    ordered = data.in_time_order()
    assert sorted(ordered) == sorted((family, line) for family, lines in data.lines.items() for line in lines)
    for family, lines in data.lines.items():
        assert [line for f, line in ordered if f == family] == lines
    assert len({family for family, _ in ordered[: len(ordered) // 10]}) >= 4
    close_at = START.replace(day=2)
    closing = closers(close_at).in_time_order()
    assert {family for family, _ in closing} == set(data.lines)
    assert {json.loads(line)["event_time"] for _, line in closing} == {"2024-01-02T00:00:00.000Z"}


class _State:
    def __init__(self):
        self.stored = None

    def value(self):
        return self.stored

    def update(self, value):
        self.stored = value

    def clear(self):
        self.stored = None


def _reading(subject: str, cond: str, second: int, val: float) -> SimpleNamespace:
    return SimpleNamespace(
        source_id="veh-1",
        fleet_id="f1",
        alert_type="tire_pressure_low",
        subject=subject,
        event_at=f"2024-01-01 00:00:{second:02d}.000",
        val=val,
        threshold=200.0,
        severity="warning",
        cond=cond,
    )


def test_the_alarm_lifecycle_yields_rows_of_table_key_and_json_record():
    """Each output is Row(tbl, k, payload): the alerts topic's record, keyed by source_id. The
    alarm stays open while any tire breaches and clears with the last one."""
    lifecycle = AlarmLifecycle()
    lifecycle.open(SimpleNamespace(get_state=lambda descriptor: _State()))
    out = []
    for reading in (
        _reading("FL", "B", 1, 180),
        _reading("RR", "B", 2, 185),
        _reading("FL", "O", 3, 230),  # RR still breaches: nothing out
        _reading("RR", "O", 4, 231),
    ):
        out += list(lifecycle.process_element(reading, None))
    # Positional: the field names (jobs.lifecycle.OUTPUT_TYPE) are Flink's to attach.
    assert [(row[0], row[1]) for row in out] == [("alarms", "veh-1")] * 3
    records = [AlertRecord.model_validate(json.loads(row[2])) for row in out]
    assert [(r.status.value, r.count) for r in records] == [("active", 1), ("active", 2), ("cleared", 2)]
    assert len({r.alert_id for r in records}) == 1 and records[2].cleared_at.second == 4
    assert alarm_line(records[0]) == Row("alarms", "veh-1", out[0][2])


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args], capture_output=True, text=True, check=False)


BROKER = ("--bootstrap-servers", "127.0.0.1:9092")


def parse(*args: str):
    from jobs.cli import parse_settings

    return parse_settings([*args])


def config(*args: str):
    from jobs.cli import config_from

    return config_from(parse(*args))


def test_cli_help_and_clear_errors():
    assert cli("--help").returncode == 0 and "--start-from" in cli("--help").stdout
    unknown = cli("alarms", *BROKER, "--bogus")
    assert unknown.returncode == 2 and "unrecognized arguments: --bogus" in unknown.stderr
    assert "argument JOB: must be one of 'aggregates'" in cli("nope", *BROKER).stderr
    assert (
        "argument --checkpoint-interval: must be > 0, got '0'\n"
        in cli("kpis", *BROKER, "--checkpoint-interval", "0").stderr
    )
    missing = cli("kpis")
    assert missing.returncode == 2 and "the following arguments are required: --bootstrap-servers" in missing.stderr


@pytest.mark.parametrize("gone", ["--input-dir", "--follow", "--output-dir", "--database-url", "--load-interval"])
def test_the_file_mode_options_are_gone(gone):
    result = cli("alarms", *BROKER, gone, "x")
    assert result.returncode == 2 and f"unrecognized arguments: {gone}" in result.stderr


def test_kafka_options_reach_the_job_config():
    given = config(
        "all",
        *BROKER,
        "--group-id",
        "g1",
        "--bounded",
        "--topic",
        "trip=other.trips",
        "--alerts-topic",
        "a1",
        "--dead-letter-topic",
        "d1",
    )
    assert (given.bootstrap_servers, given.group_id, given.bounded) == ("127.0.0.1:9092", "g1", True)
    assert given.jobs == ("aggregates", "alarms", "inactivity", "kpis")
    assert given.topics["trip"] == "other.trips" and given.topics["tire.reading"] == "fleet.tire-readings"
    assert (given.alerts_topic, given.dead_letter_topic) == ("a1", "d1")
    assert given.transactional_prefix == "g1"  # the group id unless given
    assert config("kpis", *BROKER, "--transactional-id-prefix", "tx").transactional_prefix == "tx"
    default = config("kpis", *BROKER)
    assert (default.group_id, default.start_from, default.bounded, default.jobs) == (
        "fleet-monitor-jobs",
        "group",
        False,
        ("kpis",),
    )
    assert "FAMILY=TOPIC" in cli("kpis", *BROKER, "--topic", "nope=x").stderr


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("group", "group"),
        ("earliest", "earliest"),
        ("latest", "latest"),
        ("1704067200000", "1704067200000"),
        ("2024-01-01T00:00:00Z", "1704067200000"),
        ("2024-01-01T01:00:00+01:00", "1704067200000"),
        ("2024-01-01T00:00:05", "1704067205000"),  # no zone: UTC
    ],
)
def test_start_from_takes_a_position_a_time_or_epoch_millis(text, start):
    assert parse("alarms", *BROKER, "--start-from", text).start_from == start


@pytest.mark.parametrize("bad", ["yesterday", "-5", "2024-13-01", ""])
def test_start_from_rejects_junk_naming_what_is_allowed(bad):
    result = cli("alarms", *BROKER, "--start-from", bad)
    assert result.returncode == 2 and "--start-from" in result.stderr
    assert "group, earliest, latest, an ISO-8601 time or epoch milliseconds" in result.stderr


@pytest.mark.parametrize("bad", ["0,300", "x", ""])
def test_cli_rejects_bad_window_sizes(bad):
    result = cli("aggregates", *BROKER, "--building-windows", bad)
    assert result.returncode == 2 and "--building-windows" in result.stderr


@pytest.mark.parametrize(("text", "seconds"), [("10", 10.0), ("30s", 30.0), ("500ms", 0.5), ("2min", 120.0)])
def test_checkpoint_interval_takes_seconds_or_flink_durations(text, seconds):
    assert parse("kpis", *BROKER, "--checkpoint-interval", text).checkpoint_interval_s == seconds


@pytest.mark.parametrize("bad", ["soon", "-5s", "3 weeks"])
def test_checkpoint_interval_rejects_what_is_not_a_duration(bad):
    result = cli("kpis", *BROKER, "--checkpoint-interval", bad)
    assert result.returncode == 2 and "--checkpoint-interval" in result.stderr


def test_rest_port_and_alarm_bound_reach_the_job_config():
    given = config("alarms", *BROKER, "--rest-port", "18081", "--alarm-out-of-orderness", "0.5")
    assert (given.rest_port, given.alarm_delay_s, given.watermark_delay_s) == (18081, 0.5, 5.0)
    default = config("alarms", *BROKER)
    assert (default.rest_port, default.alarm_delay_s) == (None, 5.0)
    # Never longer than the watermark: that adds latency and admits nothing, later rows are dead letters.
    assert config("alarms", *BROKER, "--alarm-out-of-orderness", "60").alarm_delay_s == 5.0


def test_trip_windows_default_to_the_contract_and_take_only_named_sizes():
    assert config("kpis", *BROKER).trip_windows_s == TRIP_WINDOWS_S == (60, 300)
    assert config("kpis", *BROKER, "--trip-windows", "3600,60").trip_windows_s == (60, 3600)
    for bad in ("120", "60,abc", ""):
        result = cli("kpis", *BROKER, "--trip-windows", bad)
        assert result.returncode == 2 and "--trip-windows" in result.stderr
        assert "60 (1m), 300 (5m), 900 (15m), 3600 (1h), 86400 (1d)" in result.stderr, result.stderr


def test_tire_metrics_are_the_fields_with_a_tire_column():
    assert (TIRE_METRICS, TIRE_POSITIONS[:4]) == (("pressure_kpa", "temperature_c"), ("FL", "FR", "RL", "RR"))
    assert {"pressure_kpa", "temperature_c", "co2_ppm", "driving.event.odometer_km"} <= set(METRICS)
    assert not any("." in metric for metric in metric_names("tire.reading").values())


def test_cli_rejects_a_negative_alarm_bound():
    result = cli("alarms", *BROKER, "--alarm-out-of-orderness", "-1")
    assert result.returncode != 0 and "--alarm-out-of-orderness must be >= 0" in result.stderr


def test_checkpoint_dir_takes_paths_and_uris(tmp_path, monkeypatch):
    assert parse("kpis", *BROKER, "--checkpoint-dir", str(tmp_path)).checkpoint_dir == tmp_path.as_uri()
    monkeypatch.chdir(tmp_path)
    assert parse("kpis", *BROKER, "--checkpoint-dir", "ck").checkpoint_dir == (tmp_path / "ck").as_uri()
    for uri in ("s3://bucket/fleet", f"file://{tmp_path}", "gs://b/x", "abfss://c@a.dfs.core.windows.net/x"):
        assert parse("kpis", *BROKER, "--checkpoint-dir", uri).checkpoint_dir == uri
    bad = cli("kpis", *BROKER, "--checkpoint-dir", "s 3://x")
    assert bad.returncode == 2 and "not a URI" in bad.stderr
    # Without one: a fresh local directory.
    assert config("kpis", *BROKER).checkpoint_dir.startswith("file:///")


def test_restore_latest_finds_the_newest_complete_local_checkpoint(tmp_path):
    ck = tmp_path / "ck"
    assert config("kpis", *BROKER, "--checkpoint-dir", str(ck), "--restore", "latest").restore_from is None
    for n in (3, 4):
        (ck / "job-a" / f"chk-{n}").mkdir(parents=True)
    (ck / "job-a" / "chk-3" / "_metadata").write_bytes(b"x")  # chk-4 is incomplete: no _metadata
    restore = config("kpis", *BROKER, "--checkpoint-dir", str(ck), "--restore", "latest").restore_from
    assert restore == str(ck / "job-a" / "chk-3")
    given = config("kpis", *BROKER, "--restore", "s3://bucket/fleet/job/chk-9")
    assert given.restore_from == "s3://bucket/fleet/job/chk-9"


def test_a_bounded_job_refuses_to_resume_from_a_checkpoint(tmp_path):
    """A restored bounded Kafka source never finishes (FLINK-31006): refused instead of a job that hangs."""
    ck = tmp_path / "ck"
    assert config("all", *BROKER, "--bounded", "--checkpoint-dir", str(ck), "--restore", "latest").restore_from is None
    (ck / "job-a" / "chk-3").mkdir(parents=True)
    (ck / "job-a" / "chk-3" / "_metadata").write_bytes(b"x")
    for restore in ("latest", str(ck / "job-a" / "chk-3")):
        result = cli("all", *BROKER, "--bounded", "--checkpoint-dir", str(ck), "--restore", restore)
        assert result.returncode == 2 and "--bounded cannot resume from a checkpoint" in result.stderr
    assert config("all", *BROKER, "--checkpoint-dir", str(ck), "--restore", "latest").restore_from is not None


def test_restore_latest_needs_a_local_checkpoint_dir():
    result = cli("kpis", *BROKER, "--checkpoint-dir", "s3://bucket/fleet", "--restore", "latest")
    assert result.returncode == 2
    assert "--restore latest needs a local --checkpoint-dir; give the checkpoint's URI instead" in result.stderr


def test_every_option_is_also_a_jobs_variable_and_the_flag_wins(monkeypatch):
    monkeypatch.setenv("JOBS_BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("JOBS_CHECKPOINT_INTERVAL", "30s")
    monkeypatch.setenv("JOBS_TOPIC", "trip=env.trips")
    given = config("kpis")
    assert (given.bootstrap_servers, given.checkpoint_interval_s, given.topics["trip"]) == (
        "env:9092",
        30.0,
        "env.trips",
    )
    assert config("kpis", "--checkpoint-interval", "2s").checkpoint_interval_s == 2.0
    monkeypatch.setenv("JOBS_WINDOW", "0")
    result = subprocess.run(
        [sys.executable, "-m", "jobs", "kpis"], capture_output=True, text=True, check=False, env=dict(os.environ)
    )
    assert result.returncode == 2 and "argument --window: must be a positive integer, got '0'" in result.stderr


def test_repeated_topic_flags_all_apply():
    given = config("all", *BROKER, "--topic", "trip=t1", "--topic", "tire.reading=t2")
    assert (given.topics["trip"], given.topics["tire.reading"]) == ("t1", "t2")
