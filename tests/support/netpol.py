"""NetworkPolicy semantics for tests: which ingress a set of policies admits. The local cluster
runs no network plugin (kwok nodes), so nothing enforces policies there; this evaluates the real
objects the API server holds, against real pods and namespaces, by the rules of the
networking.k8s.io/v1 API: a pod selected by no policy admits everything; otherwise a connection
is admitted when some selecting policy has an ingress rule whose ports include the port and whose
peers include the source (no `from`: every source)."""

from __future__ import annotations

_OPERATORS = {
    "In": lambda value, values: value in values,
    "NotIn": lambda value, values: value not in values,
    "Exists": lambda value, values: value is not None,
    "DoesNotExist": lambda value, values: value is None,
}


def selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector against labels: {} selects everything."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value = labels.get(expression["key"])
        if not _OPERATORS[expression["operator"]](value, expression.get("values") or []):
            return False
    return True


def _peer_admits(peer: dict, policy_namespace: str, source: dict, source_namespace: dict) -> bool:
    if "ipBlock" in peer:
        return False  # pod traffic is matched by selectors here
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], source_namespace["metadata"].get("labels") or {}):
            return False
    elif source_namespace["metadata"]["name"] != policy_namespace:
        return False  # a podSelector alone means the policy's own namespace
    return "podSelector" not in peer or selects(peer["podSelector"], source["metadata"].get("labels") or {})


def _port_matches(rule_ports: list[dict] | None, target: dict, port: int) -> bool:
    if not rule_ports:
        return True
    named = {p.get("name"): p["containerPort"] for c in target["spec"]["containers"] for p in c.get("ports") or []}
    return any(named.get(item.get("port"), item.get("port")) == port for item in rule_ports)


def admits(policies: list[dict], target: dict, port: int, source: dict, source_namespace: dict) -> bool:
    """Whether `source` (a pod, in `source_namespace`, a Namespace object) may open `port` on
    `target` (a pod) under `policies` (NetworkPolicy objects of the target's namespace)."""
    namespace = target["metadata"]["namespace"]
    applying = [
        policy
        for policy in policies
        if policy["metadata"]["namespace"] == namespace
        and "Ingress" in (policy["spec"].get("policyTypes") or ["Ingress"])
        and selects(policy["spec"].get("podSelector"), target["metadata"].get("labels") or {})
    ]
    if not applying:
        return True
    return any(
        _port_matches(rule.get("ports"), target, port)
        and (
            "from" not in rule or any(_peer_admits(peer, namespace, source, source_namespace) for peer in rule["from"])
        )
        for policy in applying
        for rule in policy["spec"].get("ingress") or []
    )
