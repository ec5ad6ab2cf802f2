"""The kopf handlers: reconcile a FleetMonitor into Helm releases, heal drift on a timer, clean up
through a finalizer. Run with `kopf run -m fleet_operator.handlers` or `python -m fleet_operator`."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes

from contracts.kafka_auth import DEFAULT_MECHANISM, OPERATOR_USER, KafkaAuth
from contracts.topics import ALL_TOPICS
from fleet_operator import model, openapi
from fleet_operator.flink import SavepointError, take_savepoint
from fleet_operator.helm import Helm, HelmError
from fleet_operator.kube import Kube, api_client
from fleet_operator.metrics import DRIFT, FAILURES, RECONCILE_SECONDS, RECONCILES, TOPICS_REPROVISIONED
from fleet_operator.settings import Settings
from fleet_operator.topics import missing_topics

_CRD = openapi.read_crd(Settings.from_env().crd_path)
GROUP = _CRD["spec"]["group"]
VERSION = next(v["name"] for v in _CRD["spec"]["versions"] if v.get("storage"))
PLURAL = _CRD["spec"]["names"]["plural"]
RESOURCE = (GROUP, VERSION, PLURAL)


@dataclass
class Runtime:
    settings: Settings
    helm: Helm
    kube: Kube
    custom: kubernetes.client.CustomObjectsApi

    def release_inputs(self) -> tuple:
        """What model.desired_releases needs besides the resource: charts, overlays, this operator's peer."""
        return self.settings.charts_dir, self.settings.environments_dir, self.settings.network_peer


class _State:
    """Set by the startup handler; one operator per process."""

    runtime: Runtime | None = None
    metrics_started = False


def runtime() -> Runtime:
    assert _State.runtime is not None, "the operator's startup handler has not run"
    return _State.runtime


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account. Outside: KUBECONFIG, read now (not at import time)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    config = Settings.from_env()
    problems = config.missing()
    if problems:
        for problem in problems:
            logger.error(f"cannot start: {problem}")
        raise kopf.PermanentError("; ".join(problems))
    # kopf's own records live in status, not in annotations: the resource stays small.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.diffbase")
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Events: kopf posts INFO+ object-log lines; every action also posts its own explicitly.
    client = api_client()
    _State.runtime = Runtime(
        config, Helm(config.helm, config.helm_timeout), Kube(client), kubernetes.client.CustomObjectsApi(client)
    )
    if config.metrics_port and not _State.metrics_started:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port)
        _State.metrics_started = True
    logger.info(f"fleet operator ready: charts {config.charts_dir}, environments {config.environments_dir}")


def _lock(memo: kopf.Memo) -> asyncio.Lock:
    """One reconciliation at a time per resource (handlers and the healer share it)."""
    if "lock" not in memo:
        memo["lock"] = asyncio.Lock()
    return memo["lock"]


def _backoff(retry: int) -> float:
    return min(2 ** min(retry, 6), 60)


async def _wait_ready(kube: Kube, namespace: str, releases: list[model.Release], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        waiting = [item for release in releases for item in await kube.not_ready(namespace, release.name)]
        if not waiting or time.monotonic() > deadline:
            return waiting
        await asyncio.sleep(0.5)


async def reconcile(body: kopf.Body, logger: logging.Logger) -> dict:
    """Make the releases match the spec; returns the new status (the caller writes it).
    Raises kopf.TemporaryError for what is worth retrying, after putting progress into `.status`
    of the exception (so the caller can still write it)."""
    rt = runtime()
    name, namespace = body.metadata.name, body.metadata.namespace
    spec, old = dict(body.spec), copy.deepcopy(dict(body.status))
    generation = body.metadata.get("generation")
    conditions = old.get("conditions") or []
    components = copy.deepcopy(old.get("components") or {})
    status: dict[str, Any] = {"observedGeneration": generation}

    def finish(phase: str, ready: bool, degraded: str | None, progressing: str | None, message: str = "") -> dict:
        nonlocal conditions
        conditions = model.set_condition(
            conditions, "Ready", ready, "Ready" if ready else phase, "" if ready else message, generation=generation
        )
        conditions = model.set_condition(
            conditions,
            "Progressing",
            progressing is not None,
            progressing or "Idle",
            message if progressing else "",
            generation=generation,
        )
        conditions = model.set_condition(
            conditions,
            "Degraded",
            degraded is not None,
            degraded or "AsExpected",
            message if degraded else "",
            generation=generation,
        )
        status.update(phase=phase, conditions=conditions, components=components)
        return status

    if spec["paused"]:
        was_paused = (model.condition(conditions, "Paused") or {}).get("status") == "True"
        conditions = model.set_condition(
            conditions, "Paused", True, "PausedBySpec", "spec.paused is true", generation=generation
        )
        if not was_paused:
            kopf.info(body, reason="Paused", message="spec.paused is true: no changes are made until it is false")
        status.update(phase="Paused", conditions=conditions)
        return status
    conditions = model.set_condition(conditions, "Paused", False, "Running", "", generation=generation)

    try:
        releases = model.desired_releases(name, spec, *rt.release_inputs())
    except model.SpecError as error:
        FAILURES.labels("invalid-spec").inc()
        kopf.warn(body, reason="InvalidSpec", message=str(error))
        return finish("Degraded", False, "InvalidSpec", None, str(error))

    failed: list[str] = []
    for stage in model.by_stage(releases):
        changed = []
        for release in stage:
            entry = components.setdefault(release.component, {})
            try:
                outcome = await _converge(rt, body, namespace, release, entry)
            except (HelmError, SavepointError) as error:  # only temporary ones arrive here
                reason = "SavepointFailed" if isinstance(error, SavepointError) else "Retrying"
                raise _temporary(finish("Progressing", False, None, reason, str(error)), str(error)) from None
            if outcome == "failed":
                failed.append(release.component)
            elif outcome == "changed":
                changed.append(release)
        pending = [r for r in stage if r.enabled and components[r.component].get("state") == "Deployed"]
        waiting = await _wait_ready(rt.kube, namespace, pending, rt.settings.ready_timeout_s) if pending else []
        if waiting:
            message = "waiting for readiness: " + ", ".join(waiting)
            raise _temporary(finish("Progressing", False, None, "WaitingForReadiness", message), message)
        for release in pending:
            components[release.component]["state"] = "Ready"
            if release in changed:
                kopf.info(body, reason="Ready", message=f"{release.name} is ready")
        if failed:
            break  # later stages depend on this one
    if failed:
        message = "failed releases: " + ", ".join(f"{c}: {components[c].get('message', '')}" for c in failed)
        return finish("Degraded", False, "ReleaseFailed", None, message)
    return finish("Ready", True, None, None)


async def _converge(rt: Runtime, body: kopf.Body, namespace: str, release: model.Release, entry: dict) -> str:
    """One release towards the spec: "unchanged", "changed" or "failed" (rolled back, not retried
    for the same inputs). Temporary Helm failures and savepoint failures propagate."""
    entry.update(release=release.name, chart=release.chart)
    if not release.enabled:
        if entry.get("state") not in (None, "Disabled"):
            await rt.helm.uninstall(release.name, namespace)
            kopf.info(body, reason="Uninstalled", message=f"{release.name}: disabled in the spec")
        entry.update(state="Disabled", revision=None, inputsHash=None, message="disabled in the spec")
        return "unchanged"
    if entry.get("inputsHash") == release.inputs_hash and entry.get("state") in ("Deployed", "Ready"):
        return "unchanged"  # nothing changed: no Helm call
    if entry.get("failedHash") == release.inputs_hash:
        return "failed"  # these exact inputs failed before; wait for a spec change
    try:
        await _apply(rt, body, namespace, release, entry)
    except HelmError as error:
        if error.temporary:
            raise
        await _roll_back(rt, body, namespace, release, entry, error=error)
        return "failed"
    except SavepointError as error:
        FAILURES.labels("savepoint").inc()
        kopf.warn(body, reason="SavepointFailed", message=f"{release.name}: {error}")
        raise
    return "changed"


def _temporary(status: dict, message: str) -> kopf.TemporaryError:
    error = kopf.TemporaryError(message)
    error.status = status  # type: ignore[attr-defined]
    return error


async def _apply(rt: Runtime, body: kopf.Body, namespace: str, release: model.Release, entry: dict) -> None:
    values = release.values
    upgrading = bool(entry.get("revision"))
    if release.upgrade_mode == "savepoint" and upgrading:
        url = rt.settings.flink_rest.format(release=release.name, namespace=namespace)
        location = await take_savepoint(url, rt.settings.savepoint_timeout_s)
        if location:
            kopf.info(body, reason="SavepointTaken", message=f"{release.name}: {location}")
            entry["savepoint"] = location
            values = model.merge_values(values, {"job": {"initialSavepointPath": location}})
    chart = rt.settings.charts_dir / release.chart
    revision = await rt.helm.upgrade(release.name, chart, values, namespace)
    entry.update(
        revision=revision,
        chartVersion=model.chart_version(rt.settings.charts_dir, release.chart),
        state="Deployed",
        inputsHash=release.inputs_hash,
        failedHash=None,
        message="",
        drift=None,
    )
    kopf.info(body, reason="Upgraded" if upgrading else "Installed", message=f"{release.name} revision {revision}")


async def _roll_back(
    rt: Runtime, body: kopf.Body, namespace: str, release: model.Release, entry: dict, *, error: HelmError
) -> None:
    """A failed release goes back to its last good revision; these inputs are not retried."""
    FAILURES.labels("release").inc()
    message = error.message.splitlines()[-1][:300] if error.message else str(error)
    good = entry.get("revision")
    if good:
        try:
            await rt.helm.rollback(release.name, good, namespace)
            message += f" (rolled back to revision {good})"
            kopf.warn(body, reason="RolledBack", message=f"{release.name}: back to revision {good}")
        except HelmError as rollback_error:
            message += f" (rollback failed: {rollback_error.message[:200]})"
    entry.update(state="Failed", message=message, failedHash=release.inputs_hash)
    kopf.warn(body, reason="ReleaseFailed", message=f"{release.name}: {message}")


async def _reconcile_into(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, retry: int):
    started = time.monotonic()
    async with _lock(memo):
        try:
            status = await reconcile(body, logger)
        except kopf.TemporaryError as error:
            patch.status.update(getattr(error, "status", {}))
            RECONCILES.labels("retry").inc()
            raise kopf.TemporaryError(str(error), delay=_backoff(retry)) from None
        except Exception:
            RECONCILES.labels("error").inc()
            raise
        finally:
            RECONCILE_SECONDS.observe(time.monotonic() - started)
    patch.status.update(status)
    RECONCILES.labels(status.get("phase", "unknown").lower()).inc()


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def reconcile_handler(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger, retry: int, **_: Any
) -> None:
    await _reconcile_into(body, patch, memo, logger, retry)


@kopf.on.delete(*RESOURCE, retries=5, backoff=5)
async def delete_handler(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, retry: int, **_: Any) -> None:
    """Releases go in reverse dependency order; volumes stay unless storage.deleteClaim says so.
    A terminating namespace is not waited for: one best-effort pass, then the finalizer goes."""
    rt = runtime()
    name, namespace = body.metadata.name, body.metadata.namespace
    spec = dict(body.spec)
    terminating = await rt.kube.namespace_terminating(namespace)
    problems = []
    async with _lock(memo):
        for stage in reversed(model.STAGES):
            for component in stage:
                release = f"{name}-{component}"
                try:
                    await rt.helm.uninstall(release, namespace)
                    if not model.keeps_volumes(spec, component):
                        await rt.kube.delete_claims(namespace, release)
                except (HelmError, kubernetes.client.exceptions.ApiException) as error:
                    problems.append(f"{release}: {error}")
        if problems and not terminating and retry < 4:
            raise kopf.TemporaryError("; ".join(problems), delay=_backoff(retry))
        if problems:
            kopf.warn(body, reason="CleanupIncomplete", message="; ".join(problems)[:1000])
    kopf.info(body, reason="Deleted", message="releases removed in reverse dependency order")


@kopf.daemon(*RESOURCE, cancellation_timeout=5)
async def healer(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, stopped: kopf.DaemonStopped, **_: Any):
    """Self-healing on a timer: the topics exist (else the kafka release is upgraded once, so its
    topics Job, their owner, runs again); releases are still deployed at the revisions the status
    records. Missing releases are reinstalled; drift is reported."""
    rt = runtime()
    while not stopped:
        await stopped.wait(rt.settings.heal_interval_s)
        if stopped or body.spec["paused"] or body.metadata.get("deletionTimestamp"):
            continue
        try:
            await heal_once(rt, body, memo, logger)
        except Exception as error:  # the healer never dies; the next round tries again
            FAILURES.labels("heal").inc()
            logger.warning(f"self-healing failed: {error}")


async def _kafka_auth(rt: Runtime, namespace: str, kafka_values: dict) -> KafkaAuth | None:
    """The operator's Kafka user when the kafka release runs SASL_SSL: its password and the
    brokers' CA from the release's Secrets (None: PLAINTEXT)."""
    secrets = model.kafka_secrets(kafka_values)
    if secrets is None:
        return None
    users = await rt.kube.secret_data(namespace, secrets.users)
    tls = await rt.kube.secret_data(namespace, secrets.tls)
    return KafkaAuth("SASL_SSL", DEFAULT_MECHANISM, OPERATOR_USER, users[OPERATOR_USER], ca_pem=tls["ca.crt"])


async def _check_topics(rt: Runtime, body: kopf.Body, spec: dict, previous: dict) -> tuple[dict, bool]:
    """status.topics (contracts' topics missing on the broker) and whether to re-provision: upgrade
    the kafka release so the chart's topics Job, their one owner, runs again. Once per missing set:
    still missing after that, the Job's own failure (a failed hook fails the release) says why."""
    name, namespace = body.metadata.name, body.metadata.namespace
    kafka = spec["components"]["kafka"]
    bootstrap = kafka.get("bootstrapServers") or f"{name}-kafka.{namespace}.svc:9092"
    values = model.kafka_values(model.desired_releases(name, spec, *rt.release_inputs()), rt.settings.charts_dir)
    missing = await missing_topics(bootstrap, ALL_TOPICS, auth=await _kafka_auth(rt, namespace, values))
    again = bool(missing) and sorted(missing) != sorted(previous.get("missing") or [])
    if again:
        TOPICS_REPROVISIONED.inc(len(missing))
        kopf.warn(
            body, reason="TopicsMissing", message="re-provisioning through the kafka release: " + ", ".join(missing)
        )
    return {"missing": missing, "checkedAt": model.now()}, again


async def heal_once(rt: Runtime, body: kopf.Body, memo: kopf.Memo, logger: logging.Logger) -> None:
    name, namespace = body.metadata.name, body.metadata.namespace
    spec, status = dict(body.spec), copy.deepcopy(dict(body.status))
    if status.get("phase") not in ("Ready", "Degraded"):
        return  # a reconciliation is in progress or pending; it will settle things
    patch: dict[str, Any] = {}
    drifted = 0
    reprovision = False
    if spec["components"]["kafka"]["enabled"]:
        patch["topics"], reprovision = await _check_topics(rt, body, spec, status.get("topics") or {})
        drifted += len(patch["topics"]["missing"])
    deployed = await rt.helm.list(namespace)
    components = status.get("components") or {}
    reinstall = False
    for component, entry in components.items():
        if entry.get("state") not in ("Deployed", "Ready"):
            continue
        if component == "kafka" and reprovision:
            reinstall = True
            entry.update(inputsHash=None)  # an upgrade with the same values: the topics Job runs again
        found = deployed.get(entry.get("release", ""))
        drift = None
        if found is None:
            drift, reinstall = "release missing: reinstalling", True
            entry.update(inputsHash=None)
        elif found.status != "deployed":
            drift = f"release status {found.status}"
        elif found.revision != entry.get("revision"):
            drift = f"revision {found.revision}, expected {entry.get('revision')}"
        if drift:
            drifted += 1
            kopf.warn(body, reason="ReleaseDrift", message=f"{entry.get('release')}: {drift}")
        if entry.get("drift") != drift:
            patch.setdefault("components", {})[component] = {"drift": drift}
    DRIFT.labels(namespace, name).set(drifted)
    if reinstall:
        async with _lock(memo):
            working = copy.deepcopy(body)
            working["status"]["components"] = components
            try:
                patch.update(await reconcile(working, logger))
            except kopf.TemporaryError as error:
                patch.update(getattr(error, "status", {}))
    if patch:
        await asyncio.to_thread(
            rt.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, PLURAL, name, {"status": patch}
        )
