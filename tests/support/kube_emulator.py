"""A Kubernetes API server for tests, built on kmock (by the kopf author), run in its own thread.

kmock serves discovery for the bundled core resources; this subclass adds the parts of the API
server that kopf and helm rely on (TOOLCHAIN.md):

- objects get metadata.uid, resourceVersion, generation (bumped on spec changes only),
  creationTimestamp; writes to the main resource ignore `status` when the status subresource
  exists, and `/status` writes change only `status`;
- PATCH as JSON patch (with `test`, kopf's optimistic finalizer patches), merge patch and
  strategic merge patch (approximated by merge patch), PUT replace with resourceVersion conflicts;
- list/watch honour `resourceVersion`, `labelSelector` and `fieldSelector=metadata.name=`;
- deletion with finalizers (deletionTimestamp, then gone when the last finalizer is removed),
  namespace deletion that deletes everything inside (and waits for their finalizers);
- a created CustomResourceDefinition starts being served, and custom resources are defaulted and
  validated against its openAPIV3Schema (422 naming the field), as the real API server does;
- optional admission hooks (reject a write with a reason) and a stand-in for the controllers that
  make Deployments/StatefulSets ready.

Helm uses it with the default Secret storage driver (release history lives in the emulator like
in a cluster) or with HELM_DRIVER=memory; both ask for /version and discovery first.

    with KubeEmulator(crds=[CRD_PATH]) as kube:
        kube.kubeconfig      # a kubeconfig file for helm, kubectl-like clients and kopf
        kube.create({...}); kube.get("fleet.example.com/v1alpha1", "fleetmonitors", "ns", "name")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import json
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp.web
import attrs
import jsonpatch
import kmock
import pytest
import yaml

Key = tuple[str, str, str | None, str]  # (group, plural, namespace, name)
Admission = Callable[[str, str, dict], str | None]  # (verb, plural, object) -> rejection reason


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _labels_match(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (part.strip() for part in _split_selector(selector))):
        if " notin " in term:
            name, values = term.split(" notin ", 1)
            if labels.get(name.strip()) in values.strip(" ()").split(","):
                return False
        elif " in " in term:
            name, values = term.split(" in ", 1)
            if labels.get(name.strip()) not in [v.strip() for v in values.strip(" ()").split(",")]:
                return False
        elif "!=" in term:
            name, value = term.split("!=", 1)
            if labels.get(name) == value:
                return False
        elif "=" in term:
            name, value = term.replace("==", "=").split("=", 1)
            if labels.get(name) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _split_selector(selector: str) -> Iterator[str]:
    depth, start = 0, 0
    for index, char in enumerate(selector):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            yield selector[start:index]
            start = index + 1
    yield selector[start:]


# --- the protobuf encoding client-go uses for built-in kinds (only what helm writes: Secrets) -------


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, varint or bytes) of one protobuf message."""
    position = 0

    def varint() -> int:
        nonlocal position
        result = shift = 0
        while True:
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while position < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            length = varint()
            yield number, data[position : position + length]
            position += length
        elif wire == 5:
            position += 4
        elif wire == 1:
            position += 8
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported protobuf wire type {wire}")


def _map_entry(entry: bytes) -> tuple[str, bytes]:
    parts = dict(_fields(entry))
    return bytes(parts.get(1, b"")).decode(), bytes(parts.get(2, b""))


def _object_meta(data: bytes) -> dict:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for number, value in _fields(data):
        if number in names:
            meta[names[number]] = bytes(value).decode()
        elif number in (11, 12):
            key, item = _map_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(bytes(value).decode())
    return meta


def decode_protobuf(body: bytes) -> dict:
    """A Secret or ConfigMap sent as application/vnd.kubernetes.protobuf, as its JSON form."""
    if not body.startswith(b"k8s\x00"):
        raise ApiError(415, "UnsupportedMediaType", "protobuf body without the k8s magic prefix")
    envelope = dict(_fields(body[4:]))  # runtime.Unknown: typeMeta=1, raw=2
    type_meta = {n: bytes(v).decode() for n, v in _fields(envelope.get(1, b""))}
    kind = type_meta.get(2)
    obj: dict[str, Any] = {"apiVersion": type_meta.get(1, "v1"), "kind": kind}
    for number, value in _fields(envelope.get(2, b"")):
        if number == 1:
            obj["metadata"] = _object_meta(value)
        elif kind == "Secret" and number == 2:
            key, item = _map_entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(item).decode()
        elif kind == "Secret" and number == 3:
            obj["type"] = bytes(value).decode()
        elif kind == "ConfigMap" and number == 2:
            key, item = _map_entry(value)
            obj.setdefault("data", {})[key] = item.decode()
        elif kind not in ("Secret", "ConfigMap"):
            raise ApiError(415, "UnsupportedMediaType", f"protobuf bodies of kind {kind} are not emulated")
    return obj


class Target(NamedTuple):
    """What an object URL points at."""

    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    sub: str | None
    info: kmock.ResourceInfo


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "details": self.details,
        }


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesScaffold):
    """The stateful part. Runs inside the emulator thread's event loop; use KubeEmulator from tests."""

    workloads_ready: bool = True
    admissions: list[Admission] = attrs.field(factory=list)
    store: dict[Key, dict] = attrs.field(factory=dict, init=False)
    events: list[tuple[int, str, str, dict]] = attrs.field(factory=list, init=False)  # rv, group, plural, event
    crds: dict[tuple[str, str], dict] = attrs.field(factory=dict, init=False)
    watches: list[tuple[str, str]] = attrs.field(factory=list, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _changed: asyncio.Condition | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources.load_bundled()  # kopf stalls without core discovery

    @staticmethod
    def _openapi_v2() -> aiohttp.web.Response:
        """helm validates manifests against the server's OpenAPI (v2, protobuf). An empty document
        (swagger "2.0", no definitions) makes it skip kinds it does not know, i.e. all of them:
        fields are checked offline by kubernetes-validate, custom resources by their CRD here."""

        def field(number: int, payload: bytes) -> bytes:  # protobuf length-delimited field
            return bytes([number << 3 | 2, len(payload)]) + payload

        info = field(1, b"Kubernetes") + field(2, b"v1.26.4")
        document = field(1, b"2.0") + field(2, info)
        return aiohttp.web.Response(
            body=document, content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )

    # --- routing -------------------------------------------------------------------------------

    @staticmethod
    def _target(path: str) -> tuple[str, str, str, str | None, str | None, str | None] | None:
        """(group, version, plural, namespace, name, subresource) of an object URL, else None."""
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), ("/".join(rest[2:]) or None)
        return group, version, plural, namespace, name, sub

    def _info(self, group: str, version: str, plural: str) -> kmock.ResourceInfo:
        key = f"{group}/{version}/{plural}" if group else f"v1/{plural}"
        if key not in self.resources:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural})")
        return self.resources[key]

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        where = self._target(raw.path)
        if raw.path == "/openapi/v2":
            return self._openapi_v2()
        if where is None:
            return await super().__call__(raw)  # discovery: /version, /api, /apis/... (kmock's own)
        # Object URLs bypass kmock's request parsing (it cannot parse /api/v1/namespaces).
        if self._changed is None:
            self._changed = asyncio.Condition()
        try:
            body = await raw.read()
            if raw.content_type == "application/vnd.kubernetes.protobuf" and raw.method != "DELETE":
                data = decode_protobuf(body)  # helm's Secret storage driver writes protobuf
            elif raw.method == "DELETE":
                data = None  # DeleteOptions: propagation is not emulated
            else:
                try:
                    data = json.loads(body) if body else None
                except ValueError:
                    raise ApiError(415, "UnsupportedMediaType", f"cannot read a {raw.content_type} body") from None
            params = dict(raw.query)
            group, version, plural, namespace, name, sub = where
            info = self._info(group, version, plural)
            if not info.namespaced and plural != "namespaces":
                namespace = None
            target = Target(group, version, plural, namespace, name, sub, info)
            method = raw.method.upper()
            if method == "GET" and params.get("watch") in ("true", "1"):
                return await self._watch(raw, target, params)
            if method == "GET" and name is None:
                return self._json(self._list(target, params))
            if method == "GET":
                return self._json(self._get(group, plural, namespace, name))
            if method == "POST" and name is None:
                return self._json(await self._create(target, data or {}), 201)
            if method in ("PATCH", "PUT") and name is not None:
                content = raw.headers.get("Content-Type", "application/json").split(";")[0]
                return self._json(await self._update(target, data, content, method))
            if method == "DELETE" and name is not None:
                return self._json(await self._delete(group, plural, namespace, name))
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {raw.path}")
        except ApiError as error:
            return aiohttp.web.json_response(error.status(), status=error.code)

    @staticmethod
    def _json(body: dict, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.json_response(body, status=status)

    # --- reads ---------------------------------------------------------------------------------

    def _get(self, group: str, plural: str, namespace: str | None, name: str) -> dict:
        key = (group, plural, namespace if plural != "namespaces" else None, name)
        if key not in self.store:
            what = f"{plural}.{group}" if group else plural
            raise ApiError(404, "NotFound", f'{what} "{name}" not found', {"name": name, "kind": plural})
        return self.store[key]

    def _select(self, params: dict, group: str, plural: str, namespace: str | None) -> Callable[[dict], bool]:
        labels = params.get("labelSelector", "")
        fields = dict(term.split("=", 1) for term in params.get("fieldSelector", "").split(",") if "=" in term)

        def selected(obj: dict) -> bool:
            meta = obj.get("metadata", {})
            return (
                (namespace is None or plural == "namespaces" or meta.get("namespace") == namespace)
                and all(meta.get(field.split(".", 1)[-1]) == value for field, value in fields.items())
                and _labels_match(labels, meta.get("labels") or {})
            )

        return selected

    def _list(self, target: Target, params: dict) -> dict:
        group, version, plural, namespace, _, _, info = target
        selected = self._select(params, group, plural, namespace)
        items = [obj for (g, p, _, _), obj in self.store.items() if (g, p) == (group, plural) and selected(obj)]
        return {
            "apiVersion": f"{group}/{version}" if group else version,
            "kind": f"{info.kind or plural}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": sorted(items, key=lambda obj: int(obj["metadata"]["resourceVersion"])),
        }

    async def _watch(self, raw, target: Target, params: dict) -> aiohttp.web.StreamResponse:
        group, _, plural, namespace, name, _, _ = target
        if name:
            params["fieldSelector"] = f"metadata.name={name}"
        selected = self._select(params, group, plural, namespace)
        since = params.get("resourceVersion") or "0"
        deadline = time.monotonic() + float(params.get("timeoutSeconds", 3600))
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        self.watches.append((group, plural))
        assert self._changed is not None
        if since == "0":  # no version: the current state first, as synthetic ADDED events
            items = [o for (g, p, _, _), o in self.store.items() if (g, p) == (group, plural) and selected(o)]
            for obj in sorted(items, key=lambda o: int(o["metadata"]["resourceVersion"])):
                await response.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            position = self._rv
        else:
            position = int(since)
        try:
            while time.monotonic() < deadline and raw.transport is not None and not raw.transport.is_closing():
                fresh = [e for rv, g, p, e in self.events if rv > position and (g, p) == (group, plural)]
                position = self._rv
                for event in fresh:
                    if selected(event["object"]):
                        await response.write(json.dumps(event).encode() + b"\n")
                async with self._changed:
                    if self._rv == position:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), timeout=1)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    # --- writes --------------------------------------------------------------------------------

    async def _record(self, key: Key, obj: dict | None, event_type: str, last: dict | None = None) -> None:
        """Store a change under a fresh resourceVersion and tell the watchers."""
        self._rv += 1
        if obj is None:
            gone = self.store.pop(key, None) or last
            assert gone is not None
            gone = copy.deepcopy(gone)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self.events.append((self._rv, key[0], key[1], {"type": "DELETED", "object": gone}))
        else:
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self.store[key] = obj
            self.events.append((self._rv, key[0], key[1], {"type": event_type, "object": copy.deepcopy(obj)}))
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _check(self, verb: str, group: str, plural: str, obj: dict) -> dict:
        """Defaults + schema validation for custom resources, then admission hooks."""
        crd = self.crds.get((group, plural))
        if crd is not None:
            from fleet_operator import openapi

            schema = openapi.version_schema(crd, obj.get("apiVersion", "/").split("/")[-1])
            obj = openapi.apply_defaults(schema, obj)
            problems = openapi.validate(schema, obj)
            if problems:
                kind = crd["spec"]["names"]["kind"]
                name = obj.get("metadata", {}).get("name")
                message = f'{kind}.{group} "{name}" is invalid: ' + ", ".join(problems)
                causes = [{"field": p.split(":", 1)[0], "message": p.split(": ", 1)[-1]} for p in problems]
                raise ApiError(422, "Invalid", message, {"name": name, "group": group, "kind": kind, "causes": causes})
        for admission in self.admissions:
            reason = admission(verb, plural, obj)
            if reason:
                raise ApiError(403, "Forbidden", f"admission webhook denied the request: {reason}")
        return obj

    async def _create(self, target: Target, body: dict) -> dict:
        group, version, plural, namespace, _, _, info = target
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if info.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            owner = self.store.get(("", "namespaces", None, namespace))
            if owner and owner["metadata"].get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", f"namespace {namespace} is being terminated")
            meta["namespace"] = namespace
        else:
            namespace = None
        key = (group, plural, namespace, meta["name"])
        if key in self.store:
            what = f"{plural}.{group}" if group else plural
            raise ApiError(409, "AlreadyExists", f'{what} "{meta["name"]}" already exists', {"name": meta["name"]})
        obj.setdefault("apiVersion", f"{group}/{version}" if group else version)
        obj.setdefault("kind", info.kind)
        obj = self._check("create", group, plural, obj)
        if "status" in info.subresources and plural != "namespaces":
            obj.pop("status", None)
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        for field in ("deletionTimestamp", "resourceVersion"):
            meta.pop(field, None)
        if plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        await self._record(key, obj, "ADDED")
        if (group, plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._serve_crd(obj)
        await self._controllers(key)
        return obj

    async def _update(self, target: Target, data: Any, content: str, method: str) -> dict:
        group, _, plural, namespace, name, sub, info = target
        key = (group, plural, namespace if plural != "namespaces" else None, name)
        current = self._get(group, plural, namespace, name)
        if content == "application/json-patch+json":
            try:
                new = jsonpatch.apply_patch(current, data)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                raise ApiError(422, "Invalid", f"the server rejected our request: {error}") from None
        elif content in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            new = merge_patch(current, data)
        elif method == "PUT":
            new = copy.deepcopy(data)
            sent = new.get("metadata", {}).get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{name}": '
                    "the object has been modified; please apply your changes to the latest version",
                )
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content}")
        # The status subresource splits who may write what.
        if sub == "status":
            new = {**current, "status": new.get("status")}
        elif "status" in info.subresources and plural != "namespaces":
            new = {**new, "status": current.get("status")}
        if new.get("status") is None:
            new.pop("status", None)
        # Identity fields stay the server's.
        meta = new.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace", "name"):
            if field in current["metadata"]:
                meta[field] = current["metadata"][field]
        if sub != "status":
            new = self._check("update", group, plural, new)
        if _spec_of(new) != _spec_of(current):
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current:
            return current  # a no-op write keeps the resourceVersion, like the real server
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            await self._record(key, None, "DELETED", last=new)
            await self._namespace_gc(namespace)
            return new
        await self._record(key, new, "MODIFIED")
        if sub != "status":
            await self._controllers(key)
        return new

    async def _delete(self, group, plural, namespace, name) -> dict:
        key = (group, plural, namespace if plural != "namespaces" else None, name)
        current = self._get(group, plural, namespace, name)
        if plural == "namespaces":
            return await self._delete_namespace(key, current)
        if current["metadata"].get("finalizers"):
            if not current["metadata"].get("deletionTimestamp"):
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = _now()
                await self._record(key, new, "MODIFIED")
                return new
            return current
        await self._record(key, None, "DELETED")
        if (group, plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.crds = {k: v for k, v in self.crds.items() if v["metadata"]["name"] != name}
        await self._namespace_gc(namespace)
        return current

    async def _delete_namespace(self, key: Key, current: dict) -> dict:
        name = key[3]
        if not current["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = _now()
            new["status"] = {"phase": "Terminating"}
            await self._record(key, new, "MODIFIED")
        for group, plural, namespace, obj_name in list(self.store):
            if namespace == name and plural != "namespaces":
                await self._delete(group, plural, namespace, obj_name)
        await self._namespace_gc(name)
        return self.store.get(key, current)

    async def _namespace_gc(self, namespace: str | None) -> None:
        """A terminating namespace disappears once nothing (no finalizer) is left in it."""
        key = ("", "namespaces", None, namespace)
        ns = self.store.get(key) if namespace else None
        if ns and ns["metadata"].get("deletionTimestamp") and not any(k[2] == namespace for k in self.store):
            await self._record(key, None, "DELETED")

    def _serve_crd(self, crd: dict) -> None:
        spec = crd["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            self.resources[f"{spec['group']}/{version['name']}/{names['plural']}"] = kmock.ResourceInfo(
                kind=names["kind"],
                singular=names.get("singular"),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                shortnames=set(names.get("shortNames", [])),
                categories=set(names.get("categories", [])),
                verbs={"create", "delete", "get", "list", "patch", "update", "watch", "deletecollection"},
                subresources=set(version.get("subresources", {})),
            )
        self.crds[(spec["group"], names["plural"])] = crd

    async def _controllers(self, key: Key) -> None:
        """Stand-in for the kube-controller-manager + kubelet: workloads report ready replicas,
        Jobs complete (Helm hooks wait for them)."""
        group, plural, _, _ = key
        if (group, plural) == ("batch", "jobs") and self.workloads_ready:
            job = copy.deepcopy(self.store[key])
            if not job.get("status", {}).get("succeeded"):
                job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
                await self._record(key, job, "MODIFIED")
            return
        if not self.workloads_ready or (group, plural) not in (("apps", "deployments"), ("apps", "statefulsets")):
            return
        obj = copy.deepcopy(self.store[key])
        replicas = obj.get("spec", {}).get("replicas", 1)
        status = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "updatedReplicas": replicas,
        }
        if obj.get("status") != status:
            obj["status"] = status
            await self._record(key, obj, "MODIFIED")

    # Core discovery reports "groupVersion: /v1" for /api/v1; real servers (and kopf) say "v1".
    async def _serve_version(self, request: kmock.Request) -> dict:
        document = await super()._serve_version(request)
        if request.resource is not None and request.resource.group == "":
            document["groupVersion"] = document["groupVersion"].lstrip("/")
        return document


def _spec_of(obj: dict) -> dict:
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


class KubeEmulator:
    """The API server in a background thread with its own event loop, plus a small sync client.

    Everything goes over real HTTP, so what tests see is what kopf and helm see.
    """

    def __init__(self, crds: list[Path] = (), workloads_ready: bool = True):
        self.server = ApiServer(workloads_ready=workloads_ready)
        self._crds = [Path(path) for path in crds]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="kube-emulator-")
        self.url = ""
        self.kubeconfig = Path(self._tmp.name) / "kubeconfig"

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._started.wait(15) or self._error:
            raise RuntimeError(f"kube emulator did not start: {self._error!r}")
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                    "users": [{"name": "emulator", "user": {"token": "emulator"}}],
                    "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
                    "current-context": "emulator",
                }
            )
        )
        self.kubeconfig.chmod(0o600)  # helm warns about group/world-readable kubeconfigs
        for path in self._crds:
            for document in yaml.safe_load_all(path.read_text()):
                if document:
                    self.create(document)
        return self

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with self.server, kmock.Server(self.server) as http:
                self.url = str(http.url).rstrip("/")
                self._started.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as error:  # surfaced by start()
            self._error = error
            self._started.set()

    def stop(self) -> None:
        if self._loop and self._stop and self._thread:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(15)
        self._tmp.cleanup()

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- thread-safe access to server state ------------------------------------------------------

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn inside the server's loop (for settings such as admissions) and return its result."""
        assert self._loop is not None

        async def wrapped():
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(10)

    def admit(self, hook: Admission) -> None:
        """Reject writes for which hook(verb, plural, object) returns a reason (like a webhook)."""
        self.call(lambda: self.server.admissions.append(hook))

    def set_workloads_ready(self, ready: bool) -> None:
        """Switch the stand-in controllers on/off; switching on makes existing workloads ready."""

        async def switch() -> None:
            self.server.workloads_ready = ready
            for key in [
                key for key in self.server.store if key[:2] in (("apps", "deployments"), ("apps", "statefulsets"))
            ]:
                await self.server._controllers(key)

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(switch(), self._loop).result(10)

    def watching(self, group: str, plural: str) -> bool:
        return self.call(lambda: (group, plural) in self.server.watches)

    def wait_for_watch(self, group: str, plural: str, timeout: float = 30) -> None:
        """kopf misses nothing created after its watch request: wait for that before creating."""
        wait_for(lambda: self.watching(group, plural), timeout, f"a watch on {plural}.{group}")

    # --- a tiny client ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            status = json.loads(error.read() or b"{}")
            raise KubeApiError(error.code, status.get("reason", ""), status.get("message", ""), status) from None

    def path(self, api_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        ns = f"/namespaces/{namespace}" if namespace else ""
        return f"{base}{ns}/{plural}" + (f"/{name}" if name else "")

    def plural(self, api_version: str, kind: str) -> str:
        group, _, version = api_version.rpartition("/")

        def find() -> str:
            for resource in self.server.resources:
                info = self.server.resources[resource]
                if resource.group == group and resource.version == version and info.kind == kind:
                    return resource.plural
            raise KeyError(f"unknown kind {kind} in {api_version}")

        return self.call(find)

    def create(self, obj: dict, namespace: str | None = None) -> dict:
        namespace = namespace or obj.get("metadata", {}).get("namespace")
        plural = self.plural(obj["apiVersion"], obj["kind"])
        namespaced = plural != "namespaces" and namespace is not None
        return self.request("POST", self.path(obj["apiVersion"], plural, namespace if namespaced else None), obj)

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict | None:
        try:
            return self.request("GET", self.path(api_version, plural, namespace, name))
        except KubeApiError as error:
            if error.code == 404:
                return None
            raise

    def list(self, api_version: str, plural: str, namespace: str | None = None, selector: str = "") -> list[dict]:
        query = f"?labelSelector={urllib.request.quote(selector)}" if selector else ""
        return self.request("GET", self.path(api_version, plural, namespace) + query)["items"]

    def patch(self, api_version: str, plural: str, namespace: str | None, name: str, patch: dict) -> dict:
        path = self.path(api_version, plural, namespace, name)
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict | None:
        try:
            return self.request("DELETE", self.path(api_version, plural, namespace, name))
        except KubeApiError as error:
            if error.code == 404:
                return None
            raise

    def ensure_namespace(self, name: str) -> None:
        try:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except KubeApiError as error:
            if error.code != 409:
                raise


class KubeApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, status: dict):
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message, self.status = code, reason, message, status


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """A fresh, empty Kubernetes API emulator per test (no CRDs installed)."""
    with KubeEmulator() as emulator:
        yield emulator
