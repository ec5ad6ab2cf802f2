"""The simulator's output: determinism, wire equivalence with the contract models, physics,
scenario promises checked by an independent evaluation of the rules, perturbations, sinks, CLI."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from contracts import ContractError, parse_event, topic_for
from contracts.events import DeviceHeartbeat
from contracts.records import AlertType
from contracts.thresholds import Thresholds
from generator import SimConfig, Simulator
from generator.cli import main as cli_main
from generator.clock import SimClock
from generator.config import CONDITION_SCENARIOS
from generator.fleet import DRAIN_PCT_PER_KM
from generator.replay import DEFAULT_SOURCE_ID, ColumnMap, ReplayError, TripReplay
from generator.scenarios import SCENARIO_ALERTS
from generator.simulator import expectations
from generator.sinks import JsonlFileSink

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
# Small fleet, fast clock: every scenario (and the 120 s silence) completes within the run.
SCENARIO_RUN = SimConfig(
    vehicles=8, sites=1, zones=2, devices_per_zone=2, heartbeat_devices=4, rate=20.0, start=T0, seed=11, count=6000
)


def drain(simulator: Simulator) -> list[tuple[str, str, str]]:
    out = []
    while batch := simulator.next_batch():
        out += batch
    return out


@pytest.fixture(scope="module")
def scenario_output():
    simulator = Simulator(SCENARIO_RUN)
    return drain(simulator), simulator.expectations()


def test_same_seed_and_start_give_identical_bytes_and_other_seeds_do_not():
    config = SimConfig(start=T0, seed=3, count=2000, rate=100)
    first, second = drain(Simulator(config)), drain(Simulator(config))
    assert first == second
    other = drain(Simulator(SimConfig(start=T0, seed=4, count=2000, rate=100)))
    assert [payload for *_, payload in other] != [payload for *_, payload in first]


def test_fast_encoding_is_byte_identical_to_the_contract_models(scenario_output):
    output, _ = scenario_output
    assert drain(Simulator(SCENARIO_RUN, validate=True)) == output


def test_events_parse_keys_are_source_ids_topics_follow_contracts(scenario_output):
    output, promised = scenario_output
    malformed_at = {item.index for item in promised.malformed}
    legacy = set()
    for index, (topic, key, payload) in enumerate(output):
        if index in malformed_at:
            continue
        event = parse_event(payload)
        assert event.source_id == key
        assert topic == topic_for(event.schema_name)
        assert event.event_id == f"e11-{index}"
        if isinstance(event, DeviceHeartbeat) and '"device-id"' in payload:
            legacy.add(event.source_id)
    assert sorted(legacy) == promised.legacy_heartbeat_devices
    assert len(legacy) == round(SCENARIO_RUN.heartbeat_devices * SCENARIO_RUN.legacy_heartbeat_share) > 0


def test_clock_advances_with_the_simulated_rate():
    output = drain(Simulator(SimConfig(start=T0, rate=4.0, count=9, scenarios=())))
    times = [json.loads(payload)["event_time"] for *_, payload in output]
    assert times[0] == "2026-03-01T08:00:00.000Z"
    assert times[1] == "2026-03-01T08:00:00.250Z"
    assert times[8] == "2026-03-01T08:00:02.000Z"


@pytest.mark.parametrize("rate", [0.3, 5.0, 37.0, 999.0, 1000.0, 3333.3, 100_000.0, 700_000.0])
def test_clock_stamp_is_shared_exactly_by_the_events_of_one_millisecond(rate):
    clock = SimClock(T0, rate)
    index = 0
    for _ in range(2000):
        stamp, following = clock.stamp(index)
        assert {clock.text(clock.ms_at(i)) for i in range(index, following)} == {stamp}
        assert clock.ms_at(following) > clock.ms_at(following - 1)  # the next one starts a new millisecond
        index = following


def test_duration_bounds_the_simulated_time():
    output = drain(Simulator(SimConfig(start=T0, rate=10.0, duration_s=3.0, scenarios=())))
    assert len(output) == 30


def test_physics_odometer_grows_pressure_follows_temperature_battery_drains_with_distance():
    config = SimConfig(start=T0, rate=50.0, count=20000, scenarios=(), families=("tire.reading", "vehicle.telemetry"))
    events = [parse_event(payload) for *_, payload in drain(Simulator(config))]
    by_vehicle = defaultdict(list)
    ratios = defaultdict(list)
    for event in events:
        if event.schema_name == "vehicle.telemetry":
            by_vehicle[event.source_id].append(event)
        else:
            ratios[(event.source_id, event.tire_position)].append(event.pressure_kpa / (event.temperature_c + 273.15))
    for readings in by_vehicle.values():
        odometers = [event.odometer_km for event in readings]
        assert odometers == sorted(odometers) and odometers[-1] > odometers[0]
        if all(event.speed_kmh > 0 for event in readings):  # never stopped to charge: drain follows distance
            driven = readings[-1].odometer_km - readings[0].odometer_km
            used = readings[0].battery_pct - readings[-1].battery_pct
            assert used == pytest.approx(DRAIN_PCT_PER_KM * driven, abs=0.2)
    for series in ratios.values():  # pressure / absolute temperature is constant without a leak
        assert max(series) - min(series) < 0.002 * max(series)
    temps = [event.temperature_c for event in events if event.schema_name == "tire.reading"]
    assert max(temps) - min(temps) > 5  # tires warmed up with speed, pressure with them


def _rule_metric(event, alert_type: AlertType, thresholds: Thresholds):
    """Independent reading of contracts.thresholds.DERIVED_METRICS for the test's own oracle."""
    name = event.schema_name
    if alert_type == AlertType.TIRE_PRESSURE_LOW and name == "tire.reading":
        return event.pressure_kpa, event.tire_position.value
    if alert_type == AlertType.TIRE_TEMPERATURE_HIGH and name == "tire.reading":
        return event.temperature_c, event.tire_position.value
    if alert_type == AlertType.SPEEDING and name == "vehicle.telemetry":
        return event.speed_kmh - (event.speed_limit_kmh or thresholds.speed_limit_kmh), ""
    if alert_type == AlertType.BATTERY_LOW and name == "vehicle.telemetry":
        return event.battery_pct, ""
    if alert_type == AlertType.COLLISION_RISK and name == "perception.event":
        closing = event.relative_speed_mps < 0
        return (event.distance_m / -event.relative_speed_mps if closing else math.inf), ""
    if alert_type == AlertType.CO2_HIGH and name == "building.reading":
        return event.co2_ppm, event.zone_id
    return None


def evaluate_alarms(output, thresholds: Thresholds) -> set[tuple]:
    """Every alarm the events raise, on every source: (source, type, detail, raised, cleared)."""
    open_alarms, alarms = {}, set()
    for *_, payload in output:
        try:
            event = parse_event(payload)
        except ContractError:
            continue
        for rule in thresholds.rules(source_id=event.source_id):
            reading = _rule_metric(event, rule.alert_type, thresholds)
            if reading is None:
                continue
            value, detail = reading
            key = (event.source_id, rule.alert_type, detail)
            if key not in open_alarms and rule.breached(value):
                open_alarms[key] = event.event_time
            elif key in open_alarms and rule.recovered(value):
                alarms.add((*key, open_alarms.pop(key), event.event_time))
    return alarms | {(*key, raised, None) for key, raised in open_alarms.items()}


def test_scenarios_raise_and_clear_exactly_the_promised_alarms_and_nothing_else(scenario_output):
    output, promised = scenario_output
    measured = evaluate_alarms(output, SCENARIO_RUN.thresholds)
    promised_alarms = {
        (a.source_id, a.alert_type, a.detail, a.raised_at, a.cleared_at)
        for a in promised.alerts
        if a.alert_type != AlertType.DEVICE_INACTIVE
    }
    assert measured == promised_alarms
    covered = {alert.scenario for alert in promised.alerts}
    assert covered == {name for name in CONDITION_SCENARIOS if SCENARIO_ALERTS[name]}
    assert all(alert.cleared_at is not None and alert.cleared_at > alert.raised_at for alert in promised.alerts)
    co2 = [alert for alert in promised.alerts if alert.alert_type == AlertType.CO2_HIGH]
    assert {alert.detail for alert in co2} == {promised.assignments["co2-spike"][0].rsplit(".", 1)[0]}


def test_silent_device_goes_quiet_longer_than_the_timeout_and_comes_back(scenario_output):
    output, promised = scenario_output
    last_seen, gaps = {}, {}
    for *_, payload in output:
        event = parse_event(payload) if '"device-id"' in payload or "device.heartbeat" in payload else None
        if event is None:
            continue
        if event.source_id in last_seen:
            gap = event.event_time - last_seen[event.source_id]
            gaps[event.source_id] = max(gaps.get(event.source_id, timedelta(0)), gap)
        last_seen[event.source_id] = event.event_time
    timeout = timedelta(seconds=SCENARIO_RUN.thresholds.inactivity.timeout_s)
    silent = {device for device, gap in gaps.items() if gap > timeout}
    assert silent == set(promised.assignments["silent-device"])
    (silence,) = promised.silences
    assert silence.returned_at - silence.last_seen == gaps[silence.device_id] >= timedelta(seconds=120)
    (alarm,) = [a for a in promised.alerts if a.alert_type == AlertType.DEVICE_INACTIVE]
    assert (alarm.raised_at, alarm.cleared_at) == (silence.last_seen + timeout, silence.returned_at)


def test_interventions_are_counted_per_vehicle(scenario_output):
    output, promised = scenario_output
    counts = defaultdict(lambda: [0, 0])
    for topic, key, payload in output:
        if topic == "fleet.driving-events":
            counts[key][parse_event(payload).event_type.value == "disengagement"] += 1
    assert {key: (c.interventions, c.disengagements) for key, c in promised.driving.items()} == {
        key: tuple(value) for key, value in counts.items()
    }
    target = promised.assignments["interventions"][0]
    assert counts[target][0] >= 3 and counts[target][1] >= 1


def test_malformed_share_and_reasons_are_as_promised():
    config = SimConfig(start=T0, seed=5, count=20000, rate=100, scenarios=("malformed",), malformed_share=0.05)
    simulator = Simulator(config)
    output = drain(simulator)
    promised = simulator.expectations()
    bad = []
    for index, (*_, payload) in enumerate(output):
        try:
            parse_event(payload)
        except ContractError as exc:
            bad.append((index, exc.field))
    assert bad == [(item.index, item.field) for item in promised.malformed]
    perturbable = sum(count for topic, count in promised.events_per_topic.items() if "heartbeat" not in topic)
    share = len(bad) / perturbable
    assert 0.04 < share < 0.06, share  # binomial: 5% +- 4 sigma
    assert set(promised.malformed_by_reason) == {
        "not_json",
        "missing_field",
        "wrong_type",
        "out_of_range",
        "unknown_schema",
    }
    # Perturbations draw their own randomness: every other payload is unchanged.
    clean = drain(Simulator(SimConfig(start=T0, seed=5, count=20000, rate=100, scenarios=())))
    damaged = {item.index for item in promised.malformed}
    assert [p for i, p in enumerate(output) if i not in damaged] == [p for i, p in enumerate(clean) if i not in damaged]


def test_late_and_out_of_order_events_are_shifted_as_promised():
    config = SimConfig(start=T0, seed=2, count=10000, rate=100, scenarios=("late", "out-of-order"), late_share=0.01)
    simulator = Simulator(config)
    output = {event.event_id: event for event in (parse_event(p) for *_, p in drain(simulator))}
    promised = simulator.expectations()
    assert promised.late and promised.out_of_order
    for item in promised.late:
        assert output[item.event_id].event_time == item.emitted_at - timedelta(seconds=120) == item.event_time
    for item in promised.out_of_order:
        assert timedelta(0) < item.emitted_at - output[item.event_id].event_time <= timedelta(seconds=3)


def test_expectations_need_a_bounded_run_and_match_a_live_run():
    with pytest.raises(ValueError, match="bounded"):
        expectations(SimConfig(start=T0))
    assert expectations(SCENARIO_RUN).to_dict() == Simulator_expectations(SCENARIO_RUN)


def Simulator_expectations(config):  # noqa: N802
    simulator = Simulator(config)
    drain(simulator)
    return simulator.expectations().to_dict()


def test_file_sink_rolls_atomically_by_lines_and_continues_numbering(tmp_path):
    sink = JsonlFileSink(tmp_path, max_lines=3, max_age_s=60)
    batch = [("fleet.trips", "v1", f'{{"n":{i}}}') for i in range(7)]
    sink.write(batch)
    topic_dir = tmp_path / "fleet.trips"
    assert sorted(p.name for p in topic_dir.iterdir()) == [
        ".fleet.trips-000002.jsonl.inprogress",
        "fleet.trips-000000.jsonl",
        "fleet.trips-000001.jsonl",
    ]
    sink.close()
    assert (topic_dir / "fleet.trips-000002.jsonl").read_text() == '{"n":6}\n'
    assert (tmp_path / "fleet.device-heartbeats").is_dir()  # every topic has its folder
    again = JsonlFileSink(tmp_path, max_lines=3, max_age_s=60)
    again.write(batch[:1])
    again.close()
    assert (topic_dir / "fleet.trips-000003.jsonl").exists()


def test_file_sink_rolls_by_age(tmp_path):
    sink = JsonlFileSink(tmp_path, max_lines=1000, max_age_s=0.01)
    sink.write([("fleet.trips", "v1", "{}")])
    import time

    time.sleep(0.02)
    sink.roll_aged()
    assert [p.name for p in (tmp_path / "fleet.trips").iterdir()] == ["fleet.trips-000000.jsonl"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "0"], "argument --rate: must be a positive number"),
        (["--families", "tire.reading,boats"], "unknown event family 'boats'"),
        (["--scenarios", "fire"], "unknown scenario 'fire'"),
        (["--malformed-share", "1.5"], "must be <= 1.0"),
        (["--start", "2026-01-01T00:00:00"], "needs a timezone"),
        (["--output", "kafka"], "--output kafka needs --bootstrap"),
        (["--count", "ten"], "argument --count: must be an integer"),
        (["--fleet-id", "my fleet"], "fleet id 'my fleet' is not an identifier"),
    ],
)
def test_bad_flags_say_what_is_wrong(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_writes_files_and_expectations(tmp_path, capsys):
    flags = ["--output", "files", "--out-dir", str(tmp_path / "out"), "--max-speed", "--count", "500", "--seed", "1"]
    code = cli_main([*flags, "--start", "2026-01-01T00:00:00Z", "--expectations-out", str(tmp_path / "exp.json")])
    assert code == 0
    lines = [line for path in (tmp_path / "out").glob("*/*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) == 500
    assert json.loads((tmp_path / "exp.json").read_text())["events_per_topic"]["fleet.tire-readings"] > 0
    assert '"msg": "summary"' in capsys.readouterr().err


def test_replay_validates_every_row_before_sending(tmp_path):
    good = tmp_path / "trips.csv"
    good.write_text(
        "source_id,event_time,trip_id,region_id,fare,duration_s,distance_km\n"
        "vehicle-0002,2026-01-01T00:10:00Z,t2,region-a,9.5,600,4.2\n"
        "vehicle-0001,2026-01-01T00:05:00Z,t1,region-a,12.0,300,5.0\n"
    )
    replay = TripReplay(good, speedup=60)
    batch = replay.next_batch()
    assert [key for _, key, _ in batch] == ["vehicle-0001", "vehicle-0002"]  # event-time order
    assert replay.due_s(1) == pytest.approx(5.0)  # 300 s recorded gap at 60x
    assert parse_event(batch[0][2]).fare == 12.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"source_id":"v1","event_time":"2026-01-01T00:00:00Z","trip_id":"t","region_id":"r","fare":-3,"duration_s":1,"distance_km":1}\n'
    )
    with pytest.raises(ReplayError, match=r"bad.jsonl:1: field 'fare'"):
        TripReplay(bad)


SEED_004_CSV = (
    "trip_id,region_id,event_time,fare,duration,distance\n"
    "t-2,region-7,2026-01-01T00:10:00Z,9.5,600,4.2\n"
    "t-1,region-7,2026-01-01T00:05:00Z,12.0,300,5.0\n"
)
SEED_004_RECORDS = [
    {"trip_id": "t-1", "region_id": "region-7", "event_time": "2026-01-01T00:05:00Z", "fare": 12.0, "duration": 300,
     "distance": 5.0},
    {"trip_id": "t-2", "region_id": "region-7", "event_time": 1767226200, "fare": 9.5, "duration": 600,
     "distance": 4.2},
]  # fmt: skip


@pytest.mark.parametrize("name", ["seed.csv", "seed.jsonl", "seed.json"])
def test_replay_reads_seed_004s_own_records_with_the_aliases_and_a_default_source(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_text(SEED_004_CSV.replace("2026-01-01T00:10:00Z", "1767226200"))  # an epoch time in CSV too
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(record) + "\n" for record in SEED_004_RECORDS))
    else:
        path.write_text(json.dumps(SEED_004_RECORDS, indent=2))
    events = [parse_event(payload) for _, _, payload in TripReplay(path).next_batch()]
    assert [(e.trip_id, e.source_id, e.duration_s, e.distance_km, e.fare) for e in events] == [
        ("t-1", DEFAULT_SOURCE_ID, 300, 5.0, 12.0),
        ("t-2", DEFAULT_SOURCE_ID, 600, 4.2, 9.5),
    ]
    assert events[1].event_time == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    (event,) = [parse_event(p) for *_, p in TripReplay(path, source_id="taxi-9").next_batch()][:1]
    assert event.source_id == "taxi-9"


def test_replay_column_errors_name_the_column_and_what_is_allowed(tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text(SEED_004_CSV.replace("distance\n", "dist_km\n", 1))
    with pytest.raises(ReplayError) as caught:
        TripReplay(odd)
    message = str(caught.value)
    assert "unknown column 'dist_km'" in message and "distance (= distance_km)" in message and "--map" in message
    assert [
        parse_event(p).distance_km
        for *_, p in TripReplay(odd, columns=ColumnMap({"dist_km": "distance_km"})).next_batch()
    ] == [5.0, 4.2]

    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({k: v for k, v in SEED_004_RECORDS[0].items() if k != "duration"}) + "\n")
    with pytest.raises(
        ReplayError, match=r"short.jsonl:1: field 'duration_s': missing column 'duration_s' \(or 'duration'\)"
    ):
        TripReplay(short)

    both = tmp_path / "both.json"
    both.write_text(json.dumps([{**SEED_004_RECORDS[0], "duration_s": 300}]))
    with pytest.raises(
        ReplayError, match=r"both.json:item 1: .*columns 'duration' and 'duration_s' both give duration_s"
    ):
        TripReplay(both)
    with pytest.raises(ReplayError, match=r"--map x=fare_usd: 'fare_usd' is no trip field; fields: event_id"):
        ColumnMap({"x": "fare_usd"})


def test_replay_cli_takes_the_map_and_the_default_source_id(tmp_path, capsys):
    path = tmp_path / "seed.csv"
    path.write_text(SEED_004_CSV.replace("fare,", "fare_usd,", 1))
    assert cli_main(["--replay", str(path), "--map", "fare_usd=fare", "--source-id", "taxi-1", "--max-speed",
                 "--log-level", "ERROR"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert [(e.source_id, e.fare) for e in map(parse_event, lines)] == [("taxi-1", 12.0), ("taxi-1", 9.5)]
    with pytest.raises(SystemExit):
        cli_main(["--replay", str(path)])
    assert "unknown column 'fare_usd'" in capsys.readouterr().err


def test_scenarios_repeat_with_a_period_for_continuous_runs():
    config = SimConfig(
        vehicles=6, sites=1, zones=1, devices_per_zone=1, heartbeat_devices=0, rate=20.0, start=T0, count=4500,
        scenarios=("tire-leak", "speeding"), scenario_period_rounds=60,
    )  # fmt: skip
    promised = expectations(config)
    per_type = defaultdict(list)
    for alert in promised.alerts:
        per_type[alert.alert_type].append(alert)
    assert len(per_type[AlertType.TIRE_PRESSURE_LOW]) >= 2 and len(per_type[AlertType.SPEEDING]) >= 2
    first, second = per_type[AlertType.SPEEDING][:2]
    assert first.cleared_at < second.raised_at


def test_every_option_is_also_a_generator_variable_and_the_flag_wins(monkeypatch):
    from generator.cli import parse_settings, sim_config

    monkeypatch.setenv("GENERATOR_RATE", "250")
    monkeypatch.setenv("GENERATOR_DURATION", "30")
    monkeypatch.setenv("GENERATOR_FAMILIES", "trip,tire.reading")
    settings = parse_settings(["--vehicles", "4"])
    config = sim_config(settings)
    assert (config.rate, config.duration_s, config.vehicles) == (250.0, 30.0, 4)
    assert config.families == ("trip", "tire.reading")
    assert sim_config(parse_settings(["--rate", "7"])).rate == 7.0


def test_producer_config_keeps_commas_inside_a_value():
    from generator.cli import parse_settings

    given = parse_settings(["--producer-config", "debug=broker,topic", "--producer-config", "acks=all"])
    assert given.producer_config == {"debug": "broker,topic", "acks": "all"}
