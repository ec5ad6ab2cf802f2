"""Vector's part of the pipeline without a Vector binary (none is installed on this machine): the
chart's rendered config parses and wires Kafka's alerts topic (from contracts) to the postgres
sink with a disk buffer and end-to-end acknowledgements, and the exact statement Vector's
postgres sink runs inserts contract AlertRecords into the real migrated `alarm_events` table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import yaml
from psycopg.types.json import Jsonb

from contracts.records import AlertRecord, AlertSeverity, AlertStatus, AlertType
from contracts.topics import ALERTS_TOPIC
from storage.migrate import migrate_up
from tests.support.charts import ENVIRONMENTS, find, pod_spec, render
from tests.support.db_roles import role_url

pytestmark = pytest.mark.integration
UNITS = {"Gi": 2**30, "Mi": 2**20}
COLUMNS = tuple(AlertRecord.model_fields)  # every contract field is an alarm_events column


def vector_config(environment: str) -> tuple[dict, list[dict]]:
    docs = render("vector", environment)
    return yaml.safe_load(find(docs, "ConfigMap", "fleet-monitor-vector")[0]["data"]["vector.yaml"]), docs


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_config_wires_alerts_topic_to_alarm_events(environment: str) -> None:
    config, docs = vector_config(environment)
    components = {**config["sources"], **config.get("transforms", {}), **config["sinks"]}
    for name, component in {**config.get("transforms", {}), **config["sinks"]}.items():
        assert set(component["inputs"]) <= set(components), f"{name} reads a component that does not exist"
    source = config["sources"]["alerts"]
    assert source["type"] == "kafka" and source["topics"] == [ALERTS_TOPIC]
    assert source["decoding"] == {"codec": "json"}
    # The jobs write alarm records in Kafka transactions: only committed ones may be shipped.
    assert source["librdkafka_options"]["isolation.level"] == "read_committed"
    sink = config["sinks"]["alarm_events"]
    assert sink["type"] == "postgres" and sink["inputs"] == ["alerts"] and sink["table"] == "alarm_events"
    assert sink["acknowledgements"] == {"enabled": True}
    assert sink["buffer"]["type"] == "disk" and sink["buffer"]["when_full"] == "block"
    assert sink["endpoint"] == "${DATABASE_URL}"

    statefulset = find(docs, "StatefulSet")[0]
    container = pod_spec(statefulset)["containers"][0]
    assert "DATABASE_URL" in {env["name"] for env in container["env"]}
    data_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == config["data_dir"])
    claim = next(c for c in statefulset["spec"]["volumeClaimTemplates"] if c["metadata"]["name"] == data_mount["name"])
    size = claim["spec"]["resources"]["requests"]["storage"]
    volume_bytes = int(size[:-2]) * UNITS[size[-2:]]
    assert 268435488 <= sink["buffer"]["max_size"] < volume_bytes, (
        "disk buffer must fit its volume (Vector's minimum ~256MiB)"
    )


def alert_records() -> list[AlertRecord]:
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    return [
        AlertRecord(
            alert_id="veh-1:tire_pressure_low:1",
            alert_type=AlertType.TIRE_PRESSURE_LOW,
            severity=AlertSeverity.CRITICAL,
            status=AlertStatus.ACTIVE,
            source_id="veh-1",
            fleet_id="fleet-a",
            first_seen=start,
            last_seen=start + timedelta(seconds=30),
            count=3,
            value=182.5,
            threshold=200,
            message="pressure 182.5 kPa < 200",
        ),
        AlertRecord(  # cleared, and relying on the model's defaults (fleet_id, message, no value)
            alert_id="dev-9:device_inactive:1",
            alert_type=AlertType.DEVICE_INACTIVE,
            severity=AlertSeverity.WARNING,
            status=AlertStatus.CLEARED,
            source_id="dev-9",
            first_seen=start,
            last_seen=start + timedelta(minutes=2),
            cleared_at=start + timedelta(minutes=2),
            count=1,
        ),
    ]


def as_vector_event(record: AlertRecord, offset: int) -> dict:
    """What Vector's kafka source emits for a JSON message: the decoded object plus its metadata."""
    event = json.loads(record.model_dump_json())
    event |= {
        "message_key": record.source_id,
        "topic": ALERTS_TOPIC,
        "partition": 0,
        "offset": offset,
        "timestamp": record.last_seen.isoformat(),
        "headers": {},
        "source_type": "kafka",
    }
    return event


def sink_statement(table: str) -> str:
    """The statement Vector's postgres sink runs per batch, $1 being the batch as a JSON array."""
    return f"INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1)"


def test_vector_sink_statement_writes_alert_records(pg_url: str) -> None:
    migrate_up(pg_url)
    table = vector_config("prod")[0]["sinks"]["alarm_events"]["table"]
    records = alert_records()
    batch = [as_vector_event(record, offset) for offset, record in enumerate(records)]
    with psycopg.connect(role_url(pg_url, "writer"), autocommit=True) as conn:  # Vector's role (charts/vector)
        # $1 in Vector's statement is a server-side parameter; psycopg binds %s the same way.
        conn.execute(sink_statement(table).replace("$1", "%s"), (Jsonb(batch),))
    with psycopg.connect(pg_url) as conn:  # the writer appends, it does not read alarm_events
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM alarm_events ORDER BY alert_id DESC").fetchall()
    assert rows == [tuple(record.model_dump()[column] for column in COLUMNS) for record in records]


def test_vector_sink_statement_rejects_a_record_missing_required_fields(pg_url: str) -> None:
    """A batch with a broken record fails as a whole, so Vector does not acknowledge it (no silent loss)."""
    migrate_up(pg_url)
    broken = as_vector_event(alert_records()[0], 0)
    del broken["alert_id"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute(sink_statement("alarm_events").replace("$1", "%s"), (Jsonb([broken]),))
        assert conn.execute("SELECT count(*) FROM alarm_events").fetchone() == (0,)
