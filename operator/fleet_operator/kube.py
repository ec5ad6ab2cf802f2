"""The few direct Kubernetes API reads/writes the operator makes besides kopf's and Helm's:
readiness of a release's workloads, PVC cleanup on delete, namespace state."""

from __future__ import annotations

import asyncio
import base64
import os

import kubernetes
from kubernetes.client.exceptions import ApiException

INSTANCE = "app.kubernetes.io/instance"


def api_client(context: str | None = None) -> kubernetes.client.ApiClient:
    """In-cluster credentials when running in a pod, else KUBECONFIG / ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()
        return kubernetes.client.ApiClient()
    except kubernetes.config.ConfigException:
        configuration = kubernetes.client.Configuration()
        # KUBECONFIG is read here, not at import (the client library reads it once, at import).
        path = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
        kubernetes.config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
        return kubernetes.client.ApiClient(configuration)


class Kube:
    def __init__(self, client: kubernetes.client.ApiClient):
        self.apps = kubernetes.client.AppsV1Api(client)
        self.core = kubernetes.client.CoreV1Api(client)

    async def not_ready(self, namespace: str, release: str) -> list[str]:
        """Workloads of the release that are not ready yet (empty = ready)."""

        def check() -> list[str]:
            selector = f"{INSTANCE}={release}"
            waiting = []
            workloads = [
                *self.apps.list_namespaced_deployment(namespace, label_selector=selector).items,
                *self.apps.list_namespaced_stateful_set(namespace, label_selector=selector).items,
            ]
            for item in workloads:
                wanted = item.spec.replicas if item.spec.replicas is not None else 1
                status = item.status
                ready = (status.ready_replicas or 0) if status else 0
                current = status is not None and (status.observed_generation or 0) >= item.metadata.generation
                if ready < wanted or not current:
                    waiting.append(f"{item.kind or 'workload'} {item.metadata.name} {ready}/{wanted} ready")
            return waiting

        return await asyncio.to_thread(check)

    async def delete_claims(self, namespace: str, release: str) -> int:
        def delete() -> int:
            claims = self.core.list_namespaced_persistent_volume_claim(
                namespace, label_selector=f"{INSTANCE}={release}"
            )
            for claim in claims.items:
                self.core.delete_namespaced_persistent_volume_claim(claim.metadata.name, namespace)
            return len(claims.items)

        return await asyncio.to_thread(delete)

    async def namespace_terminating(self, namespace: str) -> bool:
        def check() -> bool:
            try:
                item = self.core.read_namespace(namespace)
            except ApiException as error:
                return error.status == 404
            return bool(item.metadata.deletion_timestamp) or (item.status and item.status.phase == "Terminating")

        return await asyncio.to_thread(check)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's keys and decoded values (the kafka release's users and CA)."""

        def read() -> dict[str, str]:
            data = self.core.read_namespaced_secret(name, namespace).data or {}
            return {key: base64.b64decode(value).decode() for key, value in data.items()}

        return await asyncio.to_thread(read)
