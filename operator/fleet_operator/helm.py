"""Helm through pyhelm3 (pinned 0.5.8), avoiding the parts of it that are broken in that version:
no `disable_validation`, no `rollback(recreate_pods=True)`, no `ensure_release` (it drops options)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from pyhelm3 import Client, Command
from pyhelm3.errors import Error as PyHelmError
from pyhelm3.errors import ReleaseNotFoundError

from fleet_operator.metrics import HELM_CALLS

# Failures worth retrying as they are: the cluster or another Helm operation is in the way.
TEMPORARY = re.compile(
    r"connection refused|i/o timeout|cluster unreachable|TLS handshake|context deadline exceeded|"
    r"another operation \(install/upgrade/rollback\) is in progress|etcdserver|ServiceUnavailable|"
    r"too many requests|unexpected EOF|connection reset",
    re.IGNORECASE,
)
# Helm notes every symbolic link it follows on stderr: charts/<chart>/charts/fleet-common links to the
# library chart in a checkout (the operator image holds copies). Not part of any error.
SYMLINK_NOTICE = re.compile(r"^.*found symbolic link in path: .*(?:\n|$)", re.MULTILINE)


class HelmError(Exception):
    def __init__(self, operation: str, release: str, message: str):
        super().__init__(f"helm {operation} {release}: {message}")
        self.operation, self.release, self.message = operation, release, message

    @property
    def temporary(self) -> bool:
        return bool(TEMPORARY.search(self.message))


@dataclass(frozen=True)
class Deployed:
    name: str
    revision: int
    status: str
    chart: str


class Helm:
    def __init__(self, executable: str, timeout: str = "5m"):
        self.client = Client(executable=executable, default_timeout=timeout)
        self.command: Command = self.client._command

    async def _run(self, operation: str, release: str, call):
        try:
            result = await call
        except ReleaseNotFoundError:
            HELM_CALLS.labels(operation, "not-found").inc()
            raise
        except PyHelmError as error:
            HELM_CALLS.labels(operation, "error").inc()
            message = SYMLINK_NOTICE.sub("", str(error)).strip()
            raise HelmError(operation, release, message or type(error).__name__) from None
        HELM_CALLS.labels(operation, "ok").inc()
        return result

    async def upgrade(self, name: str, chart: Path, values: dict, namespace: str) -> int:
        """helm upgrade --install; returns the new revision."""
        chart_ref = await self.client.get_chart(chart)
        revision = await self._run(
            "upgrade",
            name,
            self.client.install_or_upgrade_release(
                name, chart_ref, values, namespace=namespace, create_namespace=False
            ),
        )
        return revision.revision

    async def rollback(self, name: str, revision: int, namespace: str) -> None:
        await self._run("rollback", name, self.command.rollback(name, revision, namespace=namespace))

    async def uninstall(self, name: str, namespace: str) -> None:
        with contextlib.suppress(ReleaseNotFoundError):  # already gone is what we want
            await self._run("uninstall", name, self.command.uninstall(name, namespace=namespace, wait=False))

    async def list(self, namespace: str) -> dict[str, Deployed]:
        releases = await self._run(
            "list", namespace, self.command.list(all=True, namespace=namespace, max_releases=1024)
        )
        return {
            item["name"]: Deployed(item["name"], int(item["revision"]), item["status"], item["chart"])
            for item in releases
        }
