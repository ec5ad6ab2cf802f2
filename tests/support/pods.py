"""A rendered pod's container as the process Kubernetes would start, run on this machine (no
container runtime here): the image's ENTRYPOINT/CMD/ENV/WORKDIR from its Dockerfile, the
container's command/args by Kubernetes' rules, its env resolved from the Secrets and ConfigMaps
rendered for the same namespace, its volumes as local directories.

What cannot be the same on this machine is substituted, and every substitution is recorded in
`LocalContainer.substitutions` (tests print it when the process fails):
- image paths (/venv, /opt/flink, /app/charts, ...) -> the repository, its .venv and local installs
  (`ImageLayout`), volume mount paths -> per-pod directories;
- in-cluster Service addresses -> local services the test started (`Endpoints`);
- the container's own ports -> free loopback ports: every pod has its own network namespace in a
  cluster, here they share one loopback.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.dockerfile import Image
from devstack.ports import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
# --- Kubernetes: $(VAR) expansion, command/args, env ----------------------------------------------


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' dependent-variable expansion (command, args, env values): `$(NAME)` becomes the
    variable's value when defined, else stays as written; `$$` is a literal `$`."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def process_argv(image: Image, container: dict, env: dict[str, str]) -> list[str]:
    """Kubernetes' rule: `command` replaces ENTRYPOINT and drops CMD; `args` alone replaces CMD."""
    command = [expand(item, env) for item in container.get("command") or []]
    args = [expand(item, env) for item in container.get("args") or []]
    if command:
        return command + args
    if "args" in container:
        return image.entrypoint + args
    return image.entrypoint + image.cmd


@dataclass(frozen=True)
class Pod:
    """The identity fieldRef reads: Deployments' pods get a generated suffix, StatefulSets' an ordinal."""

    name: str
    namespace: str
    ip: str = "127.0.0.1"
    node: str = "kwok-node-0"
    service_account: str = "default"

    def field(self, path: str) -> str:
        fields = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "status.podIP": self.ip,
            "status.hostIP": self.ip,
            "spec.nodeName": self.node,
            "spec.serviceAccountName": self.service_account,
        }
        if path not in fields:
            raise KeyError(f"fieldRef {path!r} is not one the test resolves (known: {', '.join(fields)})")
        return fields[path]


class Objects:
    """The Secrets and ConfigMaps rendered into one namespace, decoded."""

    def __init__(self, docs: list[dict]):
        self.secrets: dict[str, dict[str, str]] = {}
        self.configmaps: dict[str, dict[str, str]] = {}
        for doc in docs:
            name = doc["metadata"]["name"]
            if doc["kind"] == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
                self.secrets[name] = {**data, **(doc.get("stringData") or {})}
            elif doc["kind"] == "ConfigMap":
                self.configmaps[name] = dict(doc.get("data") or {})

    def key(self, kind: str, ref: dict, where: str) -> str | None:
        store = self.secrets if kind == "secret" else self.configmaps
        name, key = ref["name"], ref.get("key")
        if name not in store:
            if ref.get("optional"):
                return None
            raise LookupError(f"{where}: {kind} {name!r} is not rendered (rendered: {sorted(store)})")
        if key not in store[name]:
            if ref.get("optional"):
                return None
            raise LookupError(f"{where}: {kind} {name!r} has no key {key!r} (keys: {sorted(store[name])})")
        return store[name][key]


def container_env(container: dict, objects: Objects, pod: Pod) -> dict[str, str]:
    """The variables the container's spec defines (envFrom first, then env in order, each value
    expanded against those before it), without the image's ENV: what $(VAR) can reference."""
    env: dict[str, str] = {}
    where = f"container {container['name']}"
    for source in container.get("envFrom") or []:
        kind = "secret" if "secretRef" in source else "configMap"
        ref = source.get("secretRef") or source.get("configMapRef")
        store = objects.secrets if kind == "secret" else objects.configmaps
        if ref["name"] not in store:
            if ref.get("optional"):
                continue
            raise LookupError(f"{where}: envFrom {kind} {ref['name']!r} is not rendered")
        env.update({source.get("prefix", "") + k: v for k, v in store[ref["name"]].items()})
    for item in container.get("env") or []:
        value = _env_value(item, objects, pod, f"{where} env {item['name']}", env)
        if value is not None:
            env[item["name"]] = value
    return env


def _env_value(item: dict, objects: Objects, pod: Pod, where: str, env: dict[str, str]) -> str | None:
    if "valueFrom" not in item:
        return expand(str(item.get("value", "")), env)
    source = item["valueFrom"]
    if "secretKeyRef" in source:
        return objects.key("secret", source["secretKeyRef"], where)
    if "configMapKeyRef" in source:
        return objects.key("configMap", source["configMapKeyRef"], where)
    if "fieldRef" in source:
        return pod.field(source["fieldRef"]["fieldPath"])
    raise KeyError(f"{where}: valueFrom {sorted(source)} is not resolved by this test")


# --- running it here ------------------------------------------------------------------------------


@dataclass
class Endpoints:
    """In-cluster `host:port` -> a local service's `host:port`, e.g. the Kafka Service to the broker
    the test started. Longest names first, so an FQDN is not half-replaced by its short name."""

    addresses: dict[str, str] = field(default_factory=dict)

    def add(self, cluster: str, local: str) -> None:
        self.addresses[cluster] = local

    def apply(self, text: str) -> str:
        for cluster in sorted(self.addresses, key=len, reverse=True):
            text = text.replace(cluster, self.addresses[cluster])
        return text


@dataclass(frozen=True)
class ImageLayout:
    """Where an image's paths are on this machine (longest prefix wins)."""

    paths: dict[str, Path]


VENV = ROOT / ".venv"
HELM = ROOT / ".tools" / "bin" / "helm"
LAYOUTS = {
    # api/Dockerfile: the project's API extra in /venv (the repository's .venv has every extra).
    "api": ImageLayout({"/venv": VENV}),
    "generator": ImageLayout({"/usr/local": VENV}),  # pip-installed into the base image's Python
    "operator": ImageLayout(
        {
            "/venv": VENV,
            "/usr/local/bin/helm": HELM,
            "/app/charts": ROOT / "charts",
            "/app/environments": ROOT / "environments",
        }
    ),
}


@dataclass
class PodContext:
    """What every container of a rendered pod is resolved against."""

    objects: Objects  # the namespace's rendered Secrets and ConfigMaps
    pod: Pod
    endpoints: Endpoints
    workdir: Path  # the pod's scratch directory: volumes, logs
    claims: Path  # PersistentVolumeClaims, shared by the pods that mount the same claim


class LocalContainer:
    """One container of a rendered pod, runnable here. Build with `LocalContainer.build(...)`."""

    def __init__(self, name: str, spec: dict, workdir: Path, local_ports: dict[int, int] | None = None):
        self.name, self.spec, self.cwd = name, spec, workdir
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.paths: dict[str, Path] = {}
        chosen = local_ports or {}
        self.ports = {  # port name (or number) -> (containerPort, the free local port it gets)
            p.get("name") or str(p["containerPort"]): (
                p["containerPort"],
                chosen.get(p["containerPort"]) or free_port(),
            )
            for p in spec.get("ports") or []
        }
        self.substitutions: list[str] = []
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / f"{name}.log"

    @classmethod
    def build(
        cls,
        image: Image,
        layout: ImageLayout,
        pod_spec: dict,
        container: dict,
        context: PodContext,
        *,
        local_ports: dict[int, int] | None = None,
    ) -> LocalContainer:
        """The container's process; ConfigMap files it mounts get the same substitutions as its
        env (addresses, paths, its own ports as `:<port>`)."""
        local = cls(container["name"], container, context.workdir, local_ports)
        spec_env = container_env(container, context.objects, context.pod)
        argv = process_argv(image, container, spec_env)
        local.paths = dict(layout.paths)
        mount_volumes(
            pod_spec, container, context, local.paths, lambda text: local.localize_file(text, context.endpoints)
        )
        env = {**image.env, **spec_env}  # the container's variables win over the image's ENV
        local.env = {k: local.localize(v, context.endpoints, f"env {k}") for k, v in env.items()}
        local.argv = [local.localize(a, context.endpoints, "argv") for a in argv]
        # The image's WORKDIR where it is mapped, else the pod's scratch directory (a "/" here).
        image_workdir = local.map_path(image.workdir)
        local.cwd = Path(image_workdir) if image_workdir != image.workdir else context.workdir
        local.env["PATH"] = local.env["PATH"] + os.pathsep + os.environ["PATH"]  # sh, java, ...
        return local

    def map_path(self, text: str) -> str:
        """Every image path in `text` (a path, a file:// URL, a PATH list) -> its local place."""
        prefixes = sorted(self.paths, key=len, reverse=True)
        pattern = r"(?<![\w.-])(" + "|".join(map(re.escape, prefixes)) + r")(?=/|:|$|\s|\")"
        return re.sub(pattern, lambda m: str(self.paths[m[1]]), text)

    def localize(self, value: str, endpoints: Endpoints, where: str) -> str:
        localized = self.map_path(endpoints.apply(value))
        for port, local in self.ports.values():
            if localized == str(port):  # a port given as its own argument or value
                localized = str(local)
            # A listen address on every interface with one of its own ports (--liveness=http://0.0.0.0:8081/...)
            localized = re.sub(rf"(?<=0\.0\.0\.0:){port}(?!\d)", str(local), localized)
        if localized != value:
            self.substitutions.append(f"{where}: {value!r} -> {localized!r}")
        return localized

    def localize_file(self, text: str, endpoints: Endpoints) -> str:
        localized = self.map_path(endpoints.apply(text))
        for port, local in self.ports.values():
            localized = re.sub(rf":{port}(?!\d)", f":{local}", localized)
        return localized

    def resolve_argv0(self) -> None:
        """An argv[0] without a slash is looked up on the container's PATH, as the runtime does."""
        if "/" in self.argv[0]:
            return
        for directory in self.env["PATH"].split(os.pathsep):
            candidate = Path(directory) / self.argv[0]
            if candidate.is_file() and os.access(candidate, os.X_OK):
                self.argv[0] = str(candidate)
                return
        raise FileNotFoundError(f"{self.argv[0]!r} is not on the container's PATH {self.env['PATH']}")

    def start(self) -> LocalContainer:
        self.resolve_argv0()
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        return (
            f"{self.name}: {shlex.join(self.argv)}\n  substitutions:\n    "
            + "\n    ".join(self.substitutions or ["none"])
            + f"\n  log tail:\n{self.tail()}"
        )

    def local_port(self, port: int | str) -> int:
        for name, (container_port, local) in self.ports.items():
            if port in (name, container_port):
                return local
        raise KeyError(f"{self.name} declares no port {port!r} (ports: {sorted(self.ports)})")

    def probe_once(self, probe: dict) -> bool:
        """One readinessProbe check: httpGet (2xx/3xx), tcpSocket (connects), exec (exit 0)."""
        import socket

        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://127.0.0.1:{self.local_port(get['port'])}{get.get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=3) as response:
                    return 200 <= response.status < 400
            except OSError:
                return False
        if "tcpSocket" in probe:
            try:
                socket.create_connection(("127.0.0.1", self.local_port(probe["tcpSocket"]["port"])), timeout=2).close()
                return True
            except OSError:
                return False
        if "exec" in probe:
            command = [self.localize(a, Endpoints(), "probe") for a in probe["exec"]["command"]]
            return subprocess.run(command, env=self.env, cwd=self.cwd, capture_output=True, check=False).returncode == 0
        raise KeyError(f"{self.name}: probe {sorted(probe)} is not one this test runs")

    def wait_ready(self, timeout_s: float, probe: str = "readinessProbe") -> None:
        """Until the container's probe passes; fails at once, with the log, if the process exits."""
        spec = self.spec.get(probe)
        if spec is None:
            raise AssertionError(f"{self.name} has no {probe}")

        def ready() -> bool:
            if not self.running():
                raise AssertionError(f"{self.name} exited with {self.process.returncode}\n{self.describe()}")
            return self.probe_once(spec)

        try:
            wait_until(ready, timeout_s, f"{self.name} {probe}", interval_s=0.5)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    def run_to_completion(self, timeout_s: float) -> int:
        self.start()
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.name} did not finish in {timeout_s} s\n{self.describe()}") from None

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM to the process group (the kubelet's stop), SIGKILL what is left after
        `timeout_s`. The child is reaped first: a zombie would keep its group alive."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def pod_of(workload: dict, namespace: str, ordinal: int = 0) -> tuple[Pod, dict]:
    """The pod a workload creates and its spec: a StatefulSet's pod `<name>-<ordinal>` gets a
    claim `<template>-<name>-<ordinal>` per volumeClaimTemplate, as the controller names them."""
    name = workload["metadata"]["name"]
    spec = dict(workload["spec"]["template"]["spec"])
    account = spec.get("serviceAccountName", "default")
    if workload["kind"] != "StatefulSet":
        return Pod(f"{name}-7d4b9c6f5-x2x9q", namespace, service_account=account), spec
    pod = Pod(f"{name}-{ordinal}", namespace, service_account=account)
    claims = [
        {"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": f"{t['metadata']['name']}-{pod.name}"}}
        for t in workload["spec"].get("volumeClaimTemplates") or []
    ]
    spec["volumes"] = [*(spec.get("volumes") or []), *claims]
    return pod, spec


def mount_volumes(pod_spec: dict, container: dict, context: PodContext, paths: dict[str, Path], localize) -> None:
    """Each volume as a directory (shared by the pod's containers, as a pod's volumes are; a claim
    by every pod that mounts it), each mount path -> that directory or, with subPath, the file in
    it, into `paths`. ConfigMap files pass through `localize` once every mount is in `paths` (a
    script in one may name another's path); Secret files are written as rendered."""
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes") or []}
    to_fill = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise LookupError(
                f"container {container['name']} mounts {mount['name']!r}, a volume the pod does not define"
            )
        if "persistentVolumeClaim" in volume:
            directory = context.claims / volume["persistentVolumeClaim"]["claimName"]
        else:
            directory = context.workdir / "volumes" / mount["name"]
        if not directory.exists():
            directory.mkdir(parents=True)
            to_fill.append((volume, directory))
        paths[mount["mountPath"]] = directory / mount["subPath"] if mount.get("subPath") else directory
    for volume, directory in to_fill:
        _fill(volume, context.objects, directory, container["name"], localize)


def _fill(volume: dict, objects: Objects, directory: Path, where: str, localize) -> None:
    for kind in ("configMap", "secret"):
        if kind not in volume:
            continue
        source = volume[kind]
        name = source.get("name") or source.get("secretName")
        store = objects.configmaps if kind == "configMap" else objects.secrets
        if name not in store:
            if source.get("optional"):
                return
            raise LookupError(f"container {where}: {kind} volume {name!r} is not rendered")
        items = source.get("items") or [{"key": k, "path": k} for k in store[name]]
        for item in items:
            if item["key"] not in store[name] and source.get("optional"):
                continue  # as the kubelet does: an optional volume's missing key is no file
            target = directory / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            value = store[name][item["key"]]
            target.write_text(localize(value) if kind == "configMap" else value)


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"fleet-pod-{prefix}-"))


# --- the jobs image's entrypoint: Flink's /docker-entrypoint.sh ----------------------------------

FLINK_ENTRYPOINT = "/docker-entrypoint.sh"
FLINK_SCRIPTS = {  # the entrypoint's commands -> the bin/ script it execs with start-foreground
    "jobmanager": "jobmanager.sh",
    "standalone-job": "standalone-job.sh",
    "taskmanager": "taskmanager.sh",
    "history-server": "historyserver.sh",
}
# Flink config key -> (which pod's port, port name in that pod's spec).
FLINK_PORT_KEYS = {
    "jobmanager.rpc.port": ("jobmanager", "rpc"),
    "blob.server.port": ("jobmanager", "blob"),
    "rest.port": ("jobmanager", "rest"),
    "taskmanager.rpc.port": ("taskmanager", "rpc"),
    "taskmanager.data.port": ("taskmanager", "data"),
    "metrics.reporter.prom.port": ("self", "metrics"),
}


def flink_entrypoint(container: LocalContainer, peers: dict[str, LocalContainer]) -> None:
    """What the official image's /docker-entrypoint.sh (apache/flink-docker, the 2.x script; not
    vendored here) does before it execs, done on this machine: set jobmanager.rpc.address (from
    JOB_MANAGER_RPC_ADDRESS), blob.server.port and query.server.port and the FLINK_PROPERTIES lines
    (envsubst'ed) into $FLINK_HOME/conf through Flink's own config-parser-utils.sh; then `help`
    exits 0, a known command execs its bin/ script with start-foreground, anything else execs as
    given. The conf is the pod's conf volume (FLINK_CONF_DIR: the wheel's own conf cannot be the
    mount) and lib/ the image's (FLINK_LIB_DIR: the wheel's jars + flink-python + the connector).
    Then the ports: each rendered Flink port key -> the free local port of the pod that owns it."""
    from devstack.flink_cluster import assemble_lib

    if container.argv[0] != FLINK_ENTRYPOINT:
        return
    home = Path(container.env["FLINK_HOME"])
    conf = container.paths["/opt/flink/conf"]
    lib = assemble_lib(container.log_path.parent / "flink-lib")
    container.env.update(FLINK_CONF_DIR=str(conf), FLINK_LIB_DIR=str(lib))
    container.substitutions.append(f"FLINK_CONF_DIR={conf} (the pod's /opt/flink/conf volume), FLINK_LIB_DIR={lib}")
    options = {
        "jobmanager.rpc.address": container.env.get("JOB_MANAGER_RPC_ADDRESS") or container.name,
        "blob.server.port": "6124",
        "query.server.port": "6125",
    }
    for line in (container.env.get("FLINK_PROPERTIES") or "").splitlines():
        key, _, value = "".join(line.split()).partition(":")
        if key:
            options[key] = os.path.expandvars(value) if "$" in value else value
    _flink_config_parser(home, conf, lib, options, container.env)
    _localize_flink_ports(conf / "config.yaml", container, peers)
    command, *rest = container.argv[1:] or ["help"]
    if command in FLINK_SCRIPTS:
        container.argv = [str(home / "bin" / FLINK_SCRIPTS[command]), "start-foreground", *rest]
    elif command == "help":
        container.argv = ["true"]
    else:
        container.argv = [command, *rest]


def _flink_config_parser(home: Path, conf: Path, lib: Path, options: dict[str, str], env: dict[str, str]) -> None:
    script = home / "bin" / "config-parser-utils.sh"
    flags = [f"-D{key}={value}" for key, value in options.items()]
    result = subprocess.run(
        ["bash", str(script), str(conf), str(home / "bin"), str(lib), *flags],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"Flink's config-parser-utils.sh refused {flags}:\n{result.stdout}\n{result.stderr}")


def _localize_flink_ports(config: Path, container: LocalContainer, peers: dict[str, LocalContainer]) -> None:
    import yaml

    document = yaml.safe_load(config.read_text()) or {}
    flat = _flatten(document)
    for key, (owner, port_name) in FLINK_PORT_KEYS.items():
        holder = container if owner == "self" else peers.get(owner)
        if key not in flat or holder is None:
            continue
        local = holder.local_port(port_name)
        container.substitutions.append(f"config.yaml {key}: {flat[key]} -> {local}")
        flat[key] = local
    config.write_text(yaml.safe_dump(flat))


def _flatten(document: dict, prefix: str = "") -> dict:
    """Flink reads nested and dotted keys alike; one flat map is simpler to rewrite."""
    flat = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
