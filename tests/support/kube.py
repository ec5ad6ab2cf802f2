"""A small synchronous client of the real API server that devstack.kube starts, for tests: plain
HTTPS with the kubeconfig's token and CA, so what a test sees is what kopf and helm see. Also the
cluster-side levers tests pull: an admission policy (a real ValidatingAdmissionPolicy) and
cordoned nodes (pods stay Pending, workloads never become ready)."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml


class KubeApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, status: dict):
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message, self.status = code, reason, message, status


class Kube:
    def __init__(self, kubeconfig: Path):
        config = yaml.safe_load(Path(kubeconfig).read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        self.kubeconfig = Path(kubeconfig)
        self.url = cluster["server"]
        self._token = user["token"]
        self._context = ssl.create_default_context(cafile=cluster["certificate-authority"])

    # --- REST ------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._context) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            status = json.loads(error.read() or b"{}")
            raise KubeApiError(error.code, status.get("reason", ""), status.get("message", ""), status) from None

    def path(self, api_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        ns = f"/namespaces/{namespace}" if namespace else ""
        return f"{base}{ns}/{plural}" + (f"/{name}" if name else "")

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the API server's discovery."""
        return _discover(self, api_version, kind)

    def create(self, obj: dict, namespace: str | None = None, strict: bool = True) -> dict:
        """POST with strict field validation, as `kubectl apply` does: an unknown field is an error."""
        plural, namespaced = self.resource(obj["apiVersion"], obj["kind"])
        namespace = (namespace or obj.get("metadata", {}).get("namespace")) if namespaced else None
        query = "?fieldValidation=Strict" if strict else ""
        return self.request("POST", self.path(obj["apiVersion"], plural, namespace) + query, obj)

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict | None:
        try:
            return self.request("GET", self.path(api_version, plural, namespace, name))
        except KubeApiError as error:
            if error.code == 404:
                return None
            raise

    def list(self, api_version: str, plural: str, namespace: str | None = None, selector: str = "") -> list[dict]:
        query = f"?labelSelector={urllib.parse.quote(selector)}" if selector else ""
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

    def delete_namespace(self, name: str, timeout: float = 120) -> None:
        """Delete and wait until the namespace controller has emptied and removed it."""
        self.delete("v1", "namespaces", None, name)
        wait_for(lambda: self.get("v1", "namespaces", None, name) is None, timeout, f"namespace {name} removed")

    # --- cluster levers --------------------------------------------------------------------------

    def admit(
        self, name: str, resources: list[str], expression: str, message: str, *, namespace: str, probe: dict
    ) -> None:
        """A ValidatingAdmissionPolicy (CEL, evaluated by the API server itself) that refuses
        writes of `resources` (apps group) in `namespace` for which `expression` is false.
        Returns once the API server refuses a server-side dry run of `probe` (policies take
        effect a moment after they are created)."""
        policy = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": resources,
                        }
                    ]
                },
                "validations": [{"expression": expression, "message": message}],
            },
        }
        binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        }
        self.create(policy)
        self.create(binding)
        plural, _ = self.resource(probe["apiVersion"], probe["kind"])
        path = self.path(probe["apiVersion"], plural, namespace) + "?dryRun=All"

        def refused() -> bool:
            try:
                self.request("POST", path, probe)
                return False
            except KubeApiError as error:
                return message in error.message

        wait_for(refused, 60, f"admission policy {name} in force")

    def remove_admission(self, name: str) -> None:
        for plural in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
            self.delete("admissionregistration.k8s.io/v1", plural, None, name)

    def cordon(self, unschedulable: bool = True) -> None:
        """Cordon (or uncordon) every node: new pods stay Pending, so workloads are not ready."""
        for node in self.list("v1", "nodes"):
            self.patch("v1", "nodes", None, node["metadata"]["name"], {"spec": {"unschedulable": unschedulable}})


@cache
def _discovery(kube: Kube, api_version: str) -> dict:
    return kube.request("GET", f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}")


def _discover(kube: Kube, api_version: str, kind: str) -> tuple[str, bool]:
    for _ in range(2):
        for resource in _discovery(kube, api_version)["resources"]:
            if resource["kind"] == kind and "/" not in resource["name"]:
                return resource["name"], resource["namespaced"]
        _discovery.cache_clear()  # a CRD established since the last look
    raise KeyError(f"the API server serves no {kind} in {api_version}")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
