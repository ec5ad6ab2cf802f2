"""A real Kubernetes control plane on this machine, built from pinned Go modules by
scripts/setup-kube.sh: etcd, kube-apiserver (RBAC, service-account tokens), kube-controller-manager
(garbage collection, namespaces, service accounts, Jobs, StatefulSets, the host-path volume
provisioner behind the default StorageClass), kube-scheduler, and kwok, which plays the kubelet of
a few nodes: scheduled pods become Running and Ready, a Job's pods succeed. No container runs:
that is the one stand-in (there is no container runtime here), so a pod's image, command and
arguments are checked by the tests that render them, not by starting them.

Everything lives in one state directory: data, keys, kubeconfigs, logs and the process ids that
`python -m devstack.kube down` reads to stop it and remove it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devstack.ports import free_port, wait_until
from devstack.processes import REPO, Subprocess, stop_group

log = logging.getLogger(__name__)
TOOLS = Path(os.environ.get("FLEET_TOOLS_DIR", REPO / ".tools")) / "bin"
STAGES = Path(__file__).with_name("stages.yaml")
STATE_FILE = "cluster.json"
STORAGE_CLASS = "standard"
# The host-path provisioner only creates and deletes volumes under this directory.
HOSTPATH_ROOT = Path("/tmp/hostpath_pv")
SERVICE_CIDR, POD_CIDR = "10.96.0.0/16", "10.244.0.0/16"
# Components that authenticate with a static token: (name, user, groups).
IDENTITIES = (
    ("admin", "kubernetes-admin", "system:masters"),
    ("kube-controller-manager", "system:kube-controller-manager", ""),
    ("kube-scheduler", "system:kube-scheduler", ""),
    ("kwok", "kwok-kubelet", "system:masters"),  # it plays every node's kubelet
)


@dataclass
class NodePool:
    """kwok nodes sized like a small dev cluster."""

    count: int = 3
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110

    def manifests(self) -> list[dict]:
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods), "ephemeral-storage": "100Gi"}
        return [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{i}",
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/hostname": f"kwok-node-{i}",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": f"zone-{i % 3}",
                        "type": "kwok",
                    },
                },
                "status": {"capacity": capacity, "allocatable": capacity},
            }
            for i in range(self.count)
        ]


@dataclass
class LocalCluster:
    state_dir: Path
    nodes: NodePool = field(default_factory=NodePool)
    processes: list[Subprocess] = field(default_factory=list)
    server: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "pki/apiserver.crt"

    # --- start -----------------------------------------------------------------------------------

    def start(self, timeout_s: float = 300) -> LocalCluster:
        missing = [tool for tool in ("etcd", "kube-apiserver", "kwok") if not (TOOLS / tool).exists()]
        if missing:
            raise FileNotFoundError(f"{', '.join(missing)} not in {TOOLS}: run scripts/setup-kube.sh (make setup-kube)")
        for sub in ("etcd", "pki", "logs"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        tokens = self._write_credentials()
        etcd = self._start_etcd(timeout_s)
        self._start_apiserver(etcd, tokens, timeout_s)
        for name, *_ in IDENTITIES:
            self._write_kubeconfig(self._kubeconfig_of(name), tokens[name])
        self._start_controllers()
        self._save_state()
        self._bootstrap(timeout_s)
        return self

    def _write_credentials(self) -> dict[str, str]:
        pki = self.state_dir / "pki"
        if not (pki / "sa.key").exists():
            subprocess.run(["openssl", "genrsa", "-out", pki / "sa.key", "2048"], check=True, capture_output=True)
            subprocess.run(
                ["openssl", "rsa", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub"],
                check=True,
                capture_output=True,
            )
        tokens = {name: secrets.token_hex(24) for name, *_ in IDENTITIES}
        rows = [f'{tokens[name]},{user},{user},"{groups}"' for name, user, groups in IDENTITIES]
        token_file = pki / "tokens.csv"
        token_file.write_text("\n".join(rows) + "\n")
        token_file.chmod(0o600)
        return tokens

    def run_beside(self, name: str, command: list[str]) -> None:
        """A process that lives and dies with the cluster (stopped by `stop` and `stop_from_state`)."""
        self._spawn(name, command)
        self._save_state()

    def _spawn(self, name: str, command: list[str]) -> Subprocess:
        process = Subprocess(name, command, self.state_dir / "logs" / f"{name}.log")
        process.start(cwd=self.state_dir)
        self.processes.append(process)
        return process

    def _start_etcd(self, timeout_s: float) -> str:
        client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        self._spawn(
            "etcd",
            [
                str(TOOLS / "etcd"),
                "--name=local",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=local={peer}",
                "--unsafe-no-fsync",  # a throw-away cluster: no fsync per write on a busy disk
                "--log-level=warn",
            ],
        )
        wait_until(lambda: _http_ok(f"{client}/health"), timeout_s, "etcd", interval_s=0.2)
        return client

    def _start_apiserver(self, etcd: str, tokens: dict[str, str], timeout_s: float) -> None:
        port, pki = free_port(), self.state_dir / "pki"
        self.server = f"https://127.0.0.1:{port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(TOOLS / "kube-apiserver"),
                f"--etcd-servers={etcd}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={pki}",  # it writes a self-signed serving certificate there
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--endpoint-reconciler-type=none",  # a loopback address may not be an endpoint
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )

        def ready() -> bool:
            if not apiserver.running():
                raise RuntimeError(f"kube-apiserver exited:\n{apiserver.tail()}")
            return self.ca_file.exists() and _http_ok(f"{self.server}/readyz", tokens["admin"], self.ca_file)

        wait_until(ready, timeout_s, "kube-apiserver", interval_s=0.5)

    def _kubeconfig_of(self, name: str) -> Path:
        return self.kubeconfig if name == "admin" else self.state_dir / f"{name}.kubeconfig"

    def _write_kubeconfig(self, path: Path, token: str, user: str = "admin") -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "fleet-local", "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "fleet-local", "context": {"cluster": "fleet-local", "user": user}}],
            "current-context": "fleet-local",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)

    def _start_controllers(self) -> None:
        pki, common = self.state_dir / "pki", ["--bind-address=127.0.0.1", "--leader-elect=false", "--v=1"]
        for name in ("kube-controller-manager", "kube-scheduler"):
            kubeconfig = self._kubeconfig_of(name)
            serving = [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--secure-port={free_port()}",
            ]
            extra = []
            if name == "kube-controller-manager":
                (self.state_dir / name).mkdir(exist_ok=True)
                extra = [
                    f"--cert-dir={self.state_dir / name}",
                    "--use-service-account-credentials=true",  # each controller as its own account
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={self.ca_file}",
                    "--enable-hostpath-provisioner=true",
                    f"--cluster-cidr={POD_CIDR}",
                ]
            self._spawn(name, [str(TOOLS / name), *serving, *common, *extra])
        self._spawn(
            "kwok",
            [
                str(TOOLS / "kwok"),
                f"--kubeconfig={self._kubeconfig_of('kwok')}",
                f"--config={STAGES}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )

    def _bootstrap(self, timeout_s: float) -> None:
        """Nodes and the default StorageClass; ready once the nodes are Ready and the controllers
        gave the default namespace its ServiceAccount."""
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/host-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([*self.nodes.manifests(), storage_class]))
        self.kubectl(
            "wait", "--for=condition=Ready", "node", "--all", f"--timeout={int(timeout_s)}s", timeout=timeout_s + 10
        )
        wait_until(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout_s,
            "the default ServiceAccount",
            interval_s=0.5,
        )

    # --- use -------------------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(TOOLS / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            check=False,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path, hours: int = 12) -> Path:
        """A kubeconfig that acts as a ServiceAccount, with a token from the TokenRequest API, as
        a pod of that account would hold: RBAC applies to everything done with it."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={hours}h").stdout.strip()
        self._write_kubeconfig(path, token, user=f"{namespace}-{name}")
        return path

    # --- stop ------------------------------------------------------------------------------------

    def _save_state(self) -> None:
        state = {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "pids": {process.name: process.process.pid for process in self.processes if process.process},
        }
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        volumes = self._hostpath_volumes()
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        _remove(self.state_dir, volumes)

    def _hostpath_volumes(self) -> list[Path]:
        """The directories the provisioner made for this cluster's volumes, removed with it."""
        if not self.server:
            return []
        result = self.kubectl("get", "pv", "-o", "json", check=False, timeout=20)
        if result.returncode != 0:
            return []
        paths = (item["spec"].get("hostPath", {}).get("path", "") for item in json.loads(result.stdout)["items"])
        return [Path(path) for path in paths if path.startswith(f"{HOSTPATH_ROOT}/")]


def stop_from_state(state_dir: Path) -> bool:
    """Stop a cluster started by another process (`make cluster`) from its state file."""
    state_path = state_dir / STATE_FILE
    if not state_path.exists():
        return False
    state = json.loads(state_path.read_text())
    cluster = LocalCluster(state_dir, server=state["server"])
    volumes = cluster._hostpath_volumes()
    for pid in reversed(list(state["pids"].values())):
        stop_group(pid)
    _remove(state_dir, volumes)
    return True


def _remove(state_dir: Path, volumes: list[Path]) -> None:
    for path in volumes:
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):  # only when no other cluster has volumes there
        HOSTPATH_ROOT.rmdir()
    shutil.rmtree(state_dir, ignore_errors=True)


def _http_ok(url: str, token: str | None = None, ca_file: Path | None = None) -> bool:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return False
