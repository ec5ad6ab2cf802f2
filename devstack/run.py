"""`make run`: the whole platform on this machine, no cluster. Starts, in stages, each stage's
services at once: an Apache Kafka broker (KRaft) and PostgreSQL (the server DATABASE_URL names,
else a private one; a fresh database per run); then the Flink jobs as the chart runs them (a
JobManager in application mode and a TaskManager) beside the migrations; then the loader (the
jobs' output topics -> the database), the alert shipper (alerts topic -> alarm_events, as Vector
does in Kubernetes) and the API; then the fleet simulator (producing to Kafka) and a Prometheus
that scrapes all of them and evaluates the charts' alert rules. Prints the URLs, when the first
reading is stored and a live summary, and stops everything in reverse order on Ctrl-C, SIGTERM
or the end of --duration. Logs: .local-run/<timestamp>/logs/.

    python -m devstack.run --duration 120 --rate 200
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Protocol

import psycopg
import yaml
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

from contracts.settings import cli_config, parse, usage_error
from contracts.topics import ALL_TOPICS
from devstack.broker import Broker
from devstack.prometheus import PrometheusService
from devstack.services import (
    REPO,
    AlertShipperService,
    ApiService,
    JobsService,
    LoaderService,
    MigrationsService,
    PostgresService,
    RunDir,
    SimulatorService,
)
from devstack.summary import Summary
from generator.cli import RunOptions

log = logging.getLogger("devstack.run")


class Service(Protocol):
    """One local service: started after the stages before it, stopped in reverse."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


DEV_PARTITIONS: int = yaml.safe_load((REPO / "environments" / "dev" / "values" / "kafka.yaml").read_text())[
    "topicDefaults"
]["partitions"]
"""make run is the dev environment on one machine: its topics have dev's partitions."""


class BrokerService:
    name = "broker"

    def __init__(self, data_dir, partitions: int = DEV_PARTITIONS):
        self.partitions = partitions
        self.broker = Broker(data_dir)

    def start(self) -> None:
        self.broker.start()
        self.broker.create_topics(ALL_TOPICS, partitions=self.partitions)
        log.info("broker ready", extra={"bootstrap": self.broker.bootstrap, "topics": list(ALL_TOPICS)})

    def stop(self) -> None:
        self.broker.stop()


class LocalPlatform:
    """Starts services stage by stage, the services of one stage at once (each in a thread), and
    always stops the started ones in reverse, even when a later one fails to start. A stage is one
    service or a tuple of services that need only earlier stages: the Flink cluster, the slowest to
    come up, starts beside the migrations as soon as the broker runs, not after everything else."""

    def __init__(self, stages: list[Service | tuple[Service, ...]]):
        self.stages = [stage if isinstance(stage, tuple) else (stage,) for stage in stages]
        self._started: list[Service] = []

    def __enter__(self) -> LocalPlatform:
        try:
            for stage in self.stages:
                self._start_stage(stage)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_stage(self, stage: tuple[Service, ...]) -> None:
        def start(service: Service) -> Service:
            log.info("starting", extra={"service": service.name})
            service.start()
            return service

        with ThreadPoolExecutor(len(stage), thread_name_prefix="start") as pool:
            futures = [pool.submit(start, service) for service in stage]
        failures = []
        for service, future in zip(stage, futures, strict=True):
            if future.exception() is None:
                self._started.append(service)
            else:
                failures.append(future.exception())
        if failures:
            raise failures[0]

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
                log.info("stopped", extra={"service": service.name})
            except Exception:
                log.exception("stopping failed", extra={"service": service.name})


class PlatformSettings(BaseSettings, RunOptions):
    """The command line (and DEVSTACK_* environment) of `make run`: the platform's options and the
    simulator's (generator.cli.RunOptions)."""

    model_config = cli_config("DEVSTACK_", "python -m devstack.run")

    partitions: int = Field(DEV_PARTITIONS, description="partitions per topic (the dev environment's)")
    summary_interval: float = Field(5.0, description="seconds between live summary lines")
    jobs_timeout: float = Field(300.0, description="seconds the Flink jobs may take to start")
    api_port: int | None = Field(None, description="API port (unset: a free one)")
    # One clock for the whole platform, not just the simulator; a rate at which the first
    # scenarios raise alarms within a minute.
    duration_s: Annotated[float, Field(gt=0.0)] | None = Field(
        None, alias="duration", description="stop the whole platform after this many seconds (unset: until Ctrl-C)"
    )
    rate: Annotated[float, Field(gt=0.0)] = Field(50.0, description="events per second, simulated and paced")

    @model_validator(mode="after")
    def _platform(self) -> PlatformSettings:
        if self.partitions < 1:
            raise ValueError(f"--partitions must be >= 1, got {self.partitions}")
        if self.summary_interval <= 0 or self.jobs_timeout <= 0:
            raise ValueError("--summary-interval and --jobs-timeout must be > 0")
        if self.api_port is not None and not 0 < self.api_port < 65536:
            raise ValueError(f"--api-port must be 1..65535, got {self.api_port}")
        return self


def main(argv: list[str] | None = None) -> int:
    from generator.cli import install_stop_handlers, make_simulator
    from generator.runner import setup_logging
    from generator.sinks import KafkaSink

    settings = parse(PlatformSettings, argv, __doc__)
    duration = settings.duration_s
    args = settings.model_copy(update={"duration_s": None})  # the simulator runs until the platform stops
    setup_logging(args.log_level)
    try:
        make_simulator(args)  # a bad thresholds file fails here, before anything starts
    except (ValueError, OSError) as exc:
        usage_error(PlatformSettings, str(exc))
    stop = threading.Event()
    install_stop_handlers(stop)
    started = time.monotonic()
    run = RunDir.create()
    say(f"run directory: {run.root} (logs in {run.logs})")
    broker = BrokerService(run.broker, args.partitions)
    bootstrap = lambda: broker.broker.bootstrap  # noqa: E731 - known once the broker runs
    postgres = PostgresService()
    jobs = JobsService(run, bootstrap)
    loader = LoaderService(run, bootstrap, postgres)
    api = ApiService(run, postgres, args.api_port)
    sim = SimulatorService(
        lambda: make_simulator(args), lambda: KafkaSink(bootstrap()), progress_interval_s=args.progress_interval
    )
    shipper = AlertShipperService(bootstrap, postgres)
    prometheus = PrometheusService(run.prometheus, run.logs, [jobs, loader, shipper, api, sim])
    stages = [(broker, postgres), (jobs, MigrationsService(postgres)), (loader, shipper, api), (sim, prometheus)]
    try:
        with LocalPlatform(stages):
            say(f"API: {api.url}  (docs {api.url}/docs, alarms {api.url}/alarms, fleet {api.url}/fleet)")
            say(f"API key for this run: {api.token}  (e.g. {api.curl_example()})")
            say(f"broker: {broker.broker.bootstrap}  database: {postgres.url}")
            say(f"database roles: Grafana (read-only) {postgres.url_for('grafana')}, API {postgres.url_for('api')}")
            say(f"Flink REST API: {jobs.rest_url}  (jobs {jobs.rest_url}/jobs/overview)")
            ports = jobs.cluster.metrics_ports
            say(
                f"Prometheus metrics: JobManager http://127.0.0.1:{ports['jobmanager']}/metrics, TaskManager "
                f"http://127.0.0.1:{ports['taskmanager']}/metrics, loader http://127.0.0.1:{loader.metrics_port}/metrics"
            )
            say(f"Prometheus: {prometheus.url}  (targets {prometheus.url}/targets, alerts {prometheus.url}/alerts)")
            say(f"services up in {time.monotonic() - started:.1f} s; Ctrl-C stops everything")
            summary = Summary(postgres.url_for("grafana"), sim.stats, jobs.rest_url)  # reads only
            status = watch(args, stop, duration=duration, started=started, jobs=jobs, sim=sim, summary=summary)
    finally:
        say(f"stopped; logs kept in {run.logs}")
    log.info("summary", extra=sim.stats.to_dict())
    return status


def watch(args, stop: threading.Event, *, duration, started, jobs, sim, summary) -> int:
    """Print the live summary until Ctrl-C, --duration or a failed service."""
    deadline = started + duration if duration else None
    ready_at = first_reading_at = None
    while True:
        timeout = args.summary_interval if deadline is None else min(args.summary_interval, deadline - time.monotonic())
        if stop.wait(max(timeout, 0)) or (deadline and time.monotonic() >= deadline):
            return 0
        if not jobs.running():
            say(f"the Flink cluster stopped; last log lines:\n{jobs.tail()}")
            return 1
        if sim.error is not None:
            say(f"the simulator failed: {sim.error}")
            return 1
        if ready_at is None and jobs.submitted():
            ready_at = time.monotonic()
            say(f"jobs running after {ready_at - jobs.started_at:.0f} s (startup {ready_at - started:.0f} s)")
        if ready_at is None:
            state = (
                f"waiting for the jobs: planning the Flink job, {time.monotonic() - jobs.started_at:.0f} s"
                " (the events wait in Kafka)"
            )
        else:
            state = "running"
        try:
            text, fields = summary.line(state)
        except psycopg.Error as exc:  # a database slow to answer on a busy machine: the next line retries
            log.warning("live summary unavailable", extra={"error": str(exc).strip()})
            continue
        if first_reading_at is None and fields["readings"]:
            first_reading_at = time.monotonic()
            say(f"first reading stored {first_reading_at - started:.0f} s after start")
        log.info("live summary", extra=fields)
        say(text)


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
