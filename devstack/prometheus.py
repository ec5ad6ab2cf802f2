"""A real Prometheus for the local platform (Debian's `prometheus` server, installed by `make
setup`): it scrapes every service the run started, on the ports those services actually got, and
evaluates the rule files the charts ship (charts/*/rules, the PrometheusRules' content), so the
alerts and the Grafana pipeline queries can be tried on a real run. Its data stays in the run
directory (`prometheus/`)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import yaml

from devstack.ports import free_port
from devstack.processes import Subprocess

REPO = Path(__file__).resolve().parent.parent
RULE_FILES = tuple(sorted((REPO / "charts").glob("*/rules/*.rules.yaml")))
SCRAPE_INTERVAL_S = 15  # Prometheus's default
# The TaskManager serves ~13k samples (every task's and operator's metrics): while the job works
# through a backlog on 2 busy cores, its scrapes kept exceeding a 5 s timeout. Its panels and
# rules read gauges only, which a slower scrape serves as well.
SLOW_JOBS_S = {"flink-taskmanager": 60}


CHART_LABEL = "app_kubernetes_io_name"
"""The label that names a target's chart: in Kubernetes, the pod label app.kubernetes.io/name as
Prometheus's pod discovery maps it (the `labelmap` of the usual annotation-based scrape job, a
PodMonitor's podTargetLabels); here, set on each target. The charts' rules select on it, never on
`job`, which each Prometheus set-up names its own way."""


class Scraped(Protocol):
    chart: str  # the chart that deploys the service in Kubernetes

    def scrape_targets(self) -> dict[str, list[str]]:
        """Scrape job name -> the host:port addresses serving /metrics."""


def scrape_config(
    targets: dict[str, list[str]], charts: dict[str, str] | None = None, rule_files: Iterable[Path] = RULE_FILES
) -> dict:
    """prometheus.yml: one scrape job per service (its targets labelled with the service's chart:
    `charts`, job -> chart), the charts' rule files."""
    interval = f"{SCRAPE_INTERVAL_S}s"
    charts = charts or {}

    def static(job: str, addresses: list[str]) -> dict:
        return {"targets": addresses} | ({"labels": {CHART_LABEL: charts[job]}} if job in charts else {})

    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [static(job, addresses)]} | _slow(job)
            for job, addresses in sorted(targets.items())
        ],
    }


def _slow(job: str) -> dict:
    if job not in SLOW_JOBS_S:
        return {}
    return {"scrape_interval": f"{SLOW_JOBS_S[job]}s", "scrape_timeout": f"{SLOW_JOBS_S[job]}s"}


class PrometheusService(Subprocess):
    """`prometheus` on a free loopback port, scraping `services` (each names its targets)."""

    def __init__(self, root: Path, log_dir: Path, services: Iterable[Scraped], port: int | None = None):
        super().__init__("prometheus", [], log_dir / "prometheus.log")
        self.root = root
        self.services = list(services)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def targets(self) -> dict[str, list[str]]:
        merged: dict[str, list[str]] = {}
        for service in self.services:
            for job, addresses in service.scrape_targets().items():
                merged.setdefault(job, []).extend(addresses)
        return merged

    def charts(self) -> dict[str, str]:
        """Scrape job -> the chart of the service it scrapes."""
        return {job: service.chart for service in self.services for job in service.scrape_targets()}

    def start(self, timeout_s: float = 60) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("the prometheus server is not installed: run `make setup` (Debian package prometheus)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(self.targets(), self.charts()), sort_keys=False))
        self.command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        super().start(cwd=self.root)
        self.wait_http_ok(self.url + "/-/ready", timeout_s)

    def api(self, path: str, **params: str) -> dict | list:
        """GET /api/v1/<path>; the `data` of a successful answer, else a RuntimeError with the error."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            answer = json.load(exc)
        if answer.get("status") != "success":
            raise RuntimeError(f"Prometheus {path} {params}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector `expr` evaluates to now (a scalar counts as one sample)."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]
