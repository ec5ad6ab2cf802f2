"""A Flink application cluster on this machine, run as charts/flink-job runs it in Kubernetes: a
JobManager in application mode (`standalone-job`, Flink's PythonDriver running `python -m jobs
<job> ...`) and a TaskManager, two processes with a working directory each, started by the
`bin/` scripts PyFlink ships. Only the addresses differ from the pods: free loopback ports
instead of a Service name and fixed ports.

Flink is the PyFlink wheel's distribution (bin/, plugins/); its lib/ gets the flink-python jar
(the official image has it in lib/ too) and the pinned connector jars
(scripts/setup.d/java-artifacts.sh), as jobs/Dockerfile puts them into the image.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import yaml

from devstack.ports import free_port, wait_until
from devstack.processes import Subprocess
from jobs.connectors import cached_connector_jars

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent
PYTHON_DRIVER = "org.apache.flink.client.python.PythonDriver"
# Console only, as the chart's configmap: each process's output already goes to its log file (the
# log4j config Flink ships would write every line a second time to a rolling file).
LOG4J_CONSOLE = """\
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


def pyflink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def assemble_lib(target: Path) -> Path:
    """Flink's lib/ as the image has it: the wheel's jars, flink-python (in opt/ in the wheel) and
    the Kafka connector, as symlinks. The scripts take it from FLINK_LIB_DIR."""
    wheel = pyflink_home()
    target.mkdir(parents=True, exist_ok=True)
    jars = [*wheel.glob("lib/*.jar"), *wheel.glob("opt/flink-python-*.jar"), *cached_connector_jars()]
    if not any(jar.name.startswith("flink-sql-connector-kafka") for jar in jars):
        raise FileNotFoundError("the Flink Kafka connector is not installed: run make setup")
    for jar in jars:
        link = target / jar.name
        if not link.exists():
            link.symlink_to(jar)
    return target


def java_options() -> str:
    """The JVM options Flink's own config.yaml ships (module opens Flink needs on Java 17)."""
    shipped = yaml.safe_load((pyflink_home() / "conf" / "config.yaml").read_text()) or {}
    return shipped["env"]["java"]["opts"]["all"]


def chart_defaults(values: Path = REPO / "charts" / "flink-job" / "values.yaml") -> dict:
    """The flink-job chart's default job settings: the local run uses exactly those."""
    chart = yaml.safe_load(values.read_text())

    def flink_memory(quantity: str) -> str:  # as the chart's flink_job.flinkMemory: "2Gi" -> "2g"
        return quantity.replace("Gi", "g").replace("Mi", "m").lower()

    return {
        "checkpoint_interval": str(chart["job"]["checkpointInterval"]),
        "alarm_out_of_orderness": str(chart["job"]["alarmOutOfOrderness"]),
        "trip_windows": str(chart["job"]["tripWindows"]),
        "parallelism": int(chart["job"]["parallelism"]),
        "task_slots": int(chart["taskSlots"]),
        "jobmanager_memory": flink_memory(chart["jobManager"]["resources"]["limits"]["memory"]),
        "jobmanager_java_opts": chart["jobManager"].get("javaOpts", ""),
        "taskmanager_memory": flink_memory(chart["resources"]["limits"]["memory"]),
    }


class FlinkCluster:
    """JobManager (application mode) + one TaskManager. `start()` launches both; `submitted()`
    says when the job runs; `stop()` cancels the job (its Kafka transactions abort, the retained
    checkpoint stays) and stops both processes."""

    def __init__(
        self,
        root: Path,
        job_args: list[str],
        *,
        job: str = "all",
        task_slots: int = 2,
        jobmanager_memory: str = "1g",
        taskmanager_memory: str = "2g",
        log_dir: Path | None = None,
        jobmanager_java_opts: str = "",
    ):
        self.root = root
        self.job = job
        self.job_args = job_args
        self.task_slots = task_slots
        self.memory = {"jobmanager": jobmanager_memory, "taskmanager": taskmanager_memory}
        self.jobmanager_java_opts = jobmanager_java_opts
        self.log_dir = log_dir or root / "logs"
        self.rest_port = free_port()
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.jobmanager_rpc_port = free_port()  # the TaskManager's rendezvous: known before either starts
        self.metrics_ports = {"jobmanager": free_port(), "taskmanager": free_port()}
        self.home = pyflink_home()
        self.lib = self.root / "lib"
        self.jobmanager = Subprocess("jobmanager", [], self.log_dir / "jobmanager.log", stop_timeout_s=30.0)
        self.taskmanager = Subprocess("taskmanager", [], self.log_dir / "taskmanager.log", stop_timeout_s=30.0)

    # ---------------------------------------------------------------- configuration

    def configuration(self, role: str) -> dict:
        """config.yaml of one process: the chart's keys (charts/flink-job/templates/configmap.yaml)
        with loopback addresses and this run's ports."""
        return {
            "env.java.opts.all": java_options(),
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": self.jobmanager_rpc_port,
            "jobmanager.bind-host": "127.0.0.1",
            # Ports only the processes need to know are the kernel's pick at bind time (Flink's
            # default, 0): a port chosen here seconds before a busy machine's JVM binds it may be
            # taken by then, and the TaskManager would exit.
            "blob.server.port": 0,
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": self.rest_port,
            "taskmanager.host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.rpc.port": 0,
            "taskmanager.data.port": 0,
            "taskmanager.numberOfTaskSlots": self.task_slots,
            "jobmanager.memory.process.size": self.memory["jobmanager"],
            "taskmanager.memory.process.size": self.memory["taskmanager"],
            # As the chart: a job restarts after any failure (a broker or TaskManager away), with
            # growing pauses; the job does not set its own strategy, which would win over this.
            "restart-strategy.type": "exponential-delay",
            "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
            "metrics.reporter.prom.port": self.metrics_ports[role],
            # Record counts served by REST refresh every 2 s (default 10 s): the live summary reads them.
            "metrics.fetcher.update-interval": 2000,
            "io.tmp.dirs": str(self.root / role / "tmp"),
            # Deploying ~80 tasks, each starting its Python interpreter, keeps a TaskManager on
            # 2 busy cores from answering within the default 10 s: the job would fail over once.
            "pekko.ask.timeout": "60 s",
            # The driver's interpreter; the job sets its workers' own (jobs/runner.py job_options).
            "python.client.executable": sys.executable,
        } | ({"env.java.opts.jobmanager": self.jobmanager_java_opts} if self.jobmanager_java_opts else {})

    def _prepare(self, role: str) -> tuple[Path, dict]:
        """The process's working directory with its own conf/ and tmp/; its environment."""
        workdir = self.root / role
        (workdir / "conf").mkdir(parents=True, exist_ok=True)
        (workdir / "tmp").mkdir(exist_ok=True)
        (workdir / "conf" / "config.yaml").write_text(yaml.safe_dump(self.configuration(role)))
        (workdir / "conf" / "log4j-console.properties").write_text(LOG4J_CONSOLE)
        environment = {
            **os.environ,
            "FLINK_HOME": str(self.home),
            "FLINK_LIB_DIR": str(self.lib),
            "FLINK_CONF_DIR": str(workdir / "conf"),
            "FLINK_LOG_DIR": str(self.log_dir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        return workdir, environment

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        assemble_lib(self.lib)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        bin_dir = self.home / "bin"
        workdir, environment = self._prepare("taskmanager")
        self.taskmanager.command = [str(bin_dir / "taskmanager.sh"), "start-foreground"]
        self.taskmanager.start(cwd=workdir, env=environment)
        workdir, environment = self._prepare("jobmanager")
        self.jobmanager.command = [
            str(bin_dir / "standalone-job.sh"),
            "start-foreground",
            "--job-classname",
            PYTHON_DRIVER,
            "--pyModule",
            "jobs",
            self.job,
            *self.job_args,
        ]
        self.jobmanager.start(cwd=workdir, env=environment)

    def running(self) -> bool:
        return self.jobmanager.running() and self.taskmanager.running()

    def submitted(self) -> bool:
        """The job runs: the driver logged 'job submitted' (jobs.runner) into the JobManager's log."""
        try:
            return b'"msg": "job submitted"' in self.jobmanager.log_path.read_bytes()
        except OSError:
            return False

    def wait_submitted(self, timeout_s: float = 300) -> None:
        def ready() -> bool:
            if not self.running():
                raise RuntimeError(f"the Flink cluster stopped:\n{self.tail()}")
            return self.submitted()

        wait_until(ready, timeout_s, "the Flink job", interval_s=0.5)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in (self.jobmanager, self.taskmanager))

    def kill_taskmanager(self) -> None:
        """kill -9 the TaskManager (a crash); `restart_taskmanager()` brings a new one."""
        self.taskmanager.kill()

    def restart_taskmanager(self) -> None:
        """A new TaskManager, on ports the kernel picks anew, as a replacement pod gets a new
        address: on the dead one's address, the JobManager's RPC still holds that process's
        association and the new one's registration waited out its 5 minutes (seen once in 3 runs)."""
        workdir, environment = self._prepare("taskmanager")
        self.taskmanager.start(cwd=workdir, env=environment)

    def stop(self) -> None:
        # SIGTERM to the JobManager's group: the driver (jobs.cli) cancels the job first.
        self.jobmanager.stop()
        self.taskmanager.stop()
        log.info("flink cluster stopped", extra={"root": str(self.root)})
