"""Merge the jobs' committed output files into the database, each file exactly once, and
publish alarm records to the alerts topic.

Flink's filesystem sinks make a file visible (a name without the leading dot) only when the
checkpoint covering its rows completes, so the visible files are exactly the checkpointed output.
Each file's rows and its entry in job_output_files are written in one transaction: after a crash
or restart nothing is lost (files stay until loaded) and nothing counts twice.

Loaded files are deleted once no retained checkpoint of the running job can commit them again
(`prune`): on a restore Flink re-commits the files pending in that checkpoint and fails if one is
gone. A file loaded before the oldest retained checkpoint completed was committed for an earlier
one, so none of them lists it. Without pruning, every scan for new files lists all old ones too.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from pathlib import Path

import psycopg

from contracts.records import AlertRecord
from storage.writes import WRITES, upsert_csv, upsert_rows

log = logging.getLogger("jobs.loader")
LIFECYCLE_PREFIX = "events_"
"""Directories of JSON-lines output of the Python lifecycle functions (several tables each)."""


class AlertPublisher:
    """Alarm records to the alerts topic as AlertRecord JSON keyed by source_id (at least once:
    published before the file is marked loaded; records are idempotent by alert_id and count)."""

    def __init__(self, bootstrap_servers: str, topic: str):
        from confluent_kafka import Producer

        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 5})

    def publish(self, records: list[dict]) -> None:
        for record in records:
            self.producer.produce(self.topic, key=record["source_id"], value=json.dumps(record).encode())
        if self.producer.flush(30):
            raise RuntimeError(f"alerts not delivered to {self.topic} within 30 s")


class Loader:
    def __init__(
        self,
        database_url: str,
        output_dir: Path,
        publisher: AlertPublisher | None = None,
        checkpoints: Path | None = None,
    ):
        self.database_url = database_url
        self.output_dir = Path(output_dir)
        self.publisher = publisher
        self.checkpoints = checkpoints  # the running job's checkpoint directory: enables prune()
        self.loaded: set[str] = set()
        self._awaiting_prune: dict[Path, float] = {}  # loaded by this process: wall time of the load
        self._conn: psycopg.Connection | None = None

    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url)
            self._conn.execute("SET TIME ZONE 'UTC'")
            self._conn.commit()
            self.loaded = {row[0] for row in self._conn.execute("SELECT path FROM job_output_files")}
            self._conn.commit()
        return self._conn

    def committed_files(self) -> list[Path]:
        if not self.output_dir.exists():
            return []
        files = [
            path
            for path in self.output_dir.glob("*/**/*")
            if path.is_file()
            and not any(part.startswith((".", "_")) for part in path.relative_to(self.output_dir).parts)
        ]
        # Commit order, so an alarm's clearing is merged before the next incident opens.
        return sorted((p for p in files if str(p) not in self.loaded), key=lambda p: (p.stat().st_mtime_ns, p.name))

    def load_pending(self) -> int:
        """Load every committed file not loaded yet; returns how many files were loaded."""
        self.connection()  # also reads which files earlier runs loaded
        files = self.committed_files()
        for path in files:
            self._load(path)
        return len(files)

    def _load(self, path: Path) -> None:
        conn = self.connection()
        target = path.relative_to(self.output_dir).parts[0]
        data = path.read_bytes()
        with conn.transaction():
            if target.startswith(LIFECYCLE_PREFIX):
                rows = self._load_lifecycle(conn, data)
            else:
                rows = upsert_csv(conn, target, data) if data else 0
            conn.execute(
                "INSERT INTO job_output_files (path, target, rows) VALUES (%s, %s, %s)", (str(path), target, rows)
            )
        self.loaded.add(str(path))
        self._awaiting_prune[path] = time.time()
        log.info("loaded output file", extra={"file": str(path), "target": target, "rows_changed": rows})

    def _load_lifecycle(self, conn: psycopg.Connection, data: bytes) -> int:
        by_table: dict[str, list[dict]] = defaultdict(list)
        for line in data.splitlines():
            if line.strip():
                item = json.loads(line)
                by_table[item["table"]].append(item["row"])
        if self.publisher and by_table.get("alarms"):
            self.publisher.publish(by_table["alarms"])
        changed = 0
        for table, items in by_table.items():
            rows = (
                [AlertRecord.model_validate(row).model_dump(mode="json") for row in items]
                if table == "alarms"
                else items
            )
            columns = WRITES[table].columns
            changed += upsert_rows(conn, table, [tuple(row[column] for column in columns) for row in rows])
        return changed

    def prune(self) -> int:
        """Delete the loaded files no retained checkpoint can commit again; returns how many."""
        completed = (
            [meta.stat().st_mtime for meta in self.checkpoints.glob("chk-*/_metadata")] if self.checkpoints else []
        )
        if not completed:
            return 0
        oldest = min(completed)
        done = [path for path, loaded_at in self._awaiting_prune.items() if loaded_at < oldest]
        for path in done:
            path.unlink(missing_ok=True)
            del self._awaiting_prune[path]
        return len(done)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
