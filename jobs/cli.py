"""`python -m jobs <aggregates|alarms|inactivity|kpis|all> [options]`: run the stream jobs.

Every option is also read from the environment (JOBS_<OPTION>, e.g. JOBS_BOOTSTRAP_SERVERS); a
flag wins over the variable. Kafka SASL/TLS comes from KAFKA_* (contracts.kafka_auth)."""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, CliPositionalArg, NoDecode

from contracts.kafka_auth import KafkaAuth
from contracts.settings import cli_config, parse, usage_error
from contracts.thresholds import Thresholds
from contracts.topics import EVENT_TOPICS
from jobs import JOB_NAMES
from jobs.config import JobConfig, JobOptions, checkpoint_uri
from jobs.logs import setup_logging

log = logging.getLogger("jobs")


def _topic_overrides(value: Any) -> dict[str, str]:
    """FAMILY=TOPIC pairs; a repeated --topic reaches here comma-joined."""
    if isinstance(value, dict):
        return value
    overrides = {}
    for pair in filter(None, (part.strip() for part in str(value).split(","))):
        family, sep, topic = pair.partition("=")
        if not sep or family not in EVENT_TOPICS or not topic:
            raise ValueError(f"expected FAMILY=TOPIC with FAMILY in {', '.join(EVENT_TOPICS)}; got {pair!r}")
        overrides[family] = topic
    return overrides


class JobSettings(BaseSettings, JobOptions):
    """The command line (and JOBS_* environment) of `python -m jobs`."""

    model_config = cli_config("JOBS_", "python -m jobs")

    job: CliPositionalArg[Literal[*JOB_NAMES, "all"]] = Field(
        description=f"pipeline to run: {', '.join(JOB_NAMES)}, or all (every one in one job)"
    )
    bootstrap_servers: str = Field(description="Kafka bootstrap servers (sources and sinks)")
    topic: Annotated[dict[str, str], NoDecode, BeforeValidator(_topic_overrides)] = Field(
        default_factory=dict,
        description="FAMILY=TOPIC: override a family's topic (repeatable; the others from contracts.topics)",
    )
    thresholds: Path | None = Field(None, description="thresholds YAML (contracts.thresholds.Thresholds.load)")
    checkpoint_dir: Annotated[str | None, BeforeValidator(checkpoint_uri)] = Field(
        None,
        description="checkpoint location: a path or a URI such as s3://bucket/fleet (unset: a temporary directory)",
    )
    restore: str | None = Field(
        None,
        description="PATH|latest: restore from a checkpoint/savepoint path, or the latest checkpoint under a"
        " local --checkpoint-dir",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _consistent(self) -> JobSettings:
        if self.out_of_orderness_s < 0 or self.allowed_lateness_s < 0:
            raise ValueError("--out-of-orderness and --allowed-lateness must be >= 0")
        if self.alarm_out_of_orderness_s is not None and self.alarm_out_of_orderness_s < 0:
            raise ValueError("--alarm-out-of-orderness must be >= 0")
        if self.restore == "latest" and self.checkpoint_dir and not self.checkpoint_dir.startswith("file://"):
            raise ValueError("--restore latest needs a local --checkpoint-dir; give the checkpoint's URI instead")
        return self


def parse_settings(argv: list[str] | None = None) -> JobSettings:
    """The settings of `argv`; exits with status 2 naming the bad flag."""
    return parse(JobSettings, argv, __doc__)


def config_from(settings: JobSettings) -> JobConfig:
    from jobs.runner import latest_checkpoint

    checkpoint_dir = settings.checkpoint_dir or Path(tempfile.mkdtemp(prefix="fleet-jobs-")).as_uri()
    restore = settings.restore
    if restore == "latest":
        restore = latest_checkpoint(Path(checkpoint_dir.removeprefix("file://")))
        if restore is None:
            log.info("no checkpoint to restore from; starting fresh", extra={"checkpoint_dir": checkpoint_dir})
    if restore and settings.bounded:
        # The connector's split enumerator, recreated from a checkpoint, never tells its readers that no
        # more splits come (FLINK-31006, open in 5.0.0-2.2): the sources read to their end and the job
        # then runs forever instead of finishing.
        raise ValueError(
            "--bounded cannot resume from a checkpoint: a restored bounded Kafka source never finishes"
            " (FLINK-31006); replay from the start without --restore"
        )
    options = settings.model_dump(include=set(JobOptions.model_fields))
    return JobConfig(
        **options,
        jobs=JOB_NAMES if settings.job == "all" else (settings.job,),
        bootstrap_servers=settings.bootstrap_servers,
        checkpoint_dir=checkpoint_dir,
        topics={**EVENT_TOPICS, **settings.topic},
        thresholds=Thresholds.load(settings.thresholds),
        restore_from=restore,
        kafka_auth=KafkaAuth.from_env(),
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(argv)
    setup_logging(settings.log_level)
    try:
        config = config_from(settings)
    except (ValueError, OSError) as exc:
        usage_error(JobSettings, str(exc))
    from jobs.runner import run

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    status = run(config, stop)
    return 0 if status in ("FINISHED", "CANCELED") else 1
