#!/usr/bin/env bash
# Deploy or remove one fleet-monitor environment on the current Kubernetes cluster.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  cat <<USAGE
usage: scripts/deploy.sh [--undeploy] [--check] <dev|qa|prod>

Installs (or upgrades) the operator chart charts/fleet-operator, applies
environments/<env>/fleetmonitor.yaml and waits until the FleetMonitor is Ready.
--undeploy deletes the FleetMonitor (the operator removes its releases in reverse order,
keeping volumes unless storage.deleteClaim is set), then the operator when no FleetMonitor is left.
--check only validates the environment's FleetMonitor file against the CRD (no cluster needed).

environment:
  KUBECONFIG          which cluster (default ~/.kube/config)
  KUBE_CONTEXT        kube context to use (default: the current one)
  OPERATOR_NAMESPACE  where the operator runs (fleet-system)
  OPERATOR_IMAGE      operator image repository:tag (default: the chart's)
  WATCH_NAMESPACES    namespaces the operator may manage, comma-separated: a Role in each
                      instead of a ClusterRole (default: all namespaces). Deleting a watched
                      namespace directly (not through --undeploy) then hangs on the
                      FleetMonitor's finalizer: known, being fixed
  WAIT_TIMEOUT        how long to wait for Ready (15m)
USAGE
}
die() { echo "deploy: $*" >&2; exit 1; }

undeploy=0 check=0 env=""
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --undeploy) undeploy=1 ;;
    --check) check=1 ;;
    dev|qa|prod) env="$arg" ;;
    *) usage >&2; die "unknown argument: $arg" ;;
  esac
done
[ -n "$env" ] || { usage >&2; die "which environment? dev, qa or prod"; }
resource="$ROOT/environments/$env/fleetmonitor.yaml"
[ -f "$resource" ] || die "missing $resource"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
"$PY" -m fleet_operator.validate "$resource" >/dev/null || die "$resource is invalid (see above)"
[ "$check" = 1 ] && { echo "deploy: $resource is valid"; exit 0; }

export PATH="$ROOT/.tools/bin:$PATH"
command -v helm >/dev/null || die "helm not found: run 'make setup' (installs .tools/bin/helm)"
command -v kubectl >/dev/null || die "kubectl not found: run 'make setup' (installs .tools/bin/kubectl)"
context=()
[ -n "${KUBE_CONTEXT:-}" ] && context=(--context "$KUBE_CONTEXT")
helm_context=()
[ -n "${KUBE_CONTEXT:-}" ] && helm_context=(--kube-context "$KUBE_CONTEXT")
kubectl "${context[@]}" version --request-timeout=5s >/dev/null 2>&1 \
  || die "no Kubernetes cluster reachable (KUBECONFIG=${KUBECONFIG:-~/.kube/config}, context=${KUBE_CONTEXT:-current}); point KUBECONFIG/KUBE_CONTEXT at one"

operator_ns="${OPERATOR_NAMESPACE:-fleet-system}"
namespace="$(sed -n 's/^  namespace: *//p' "$resource" | head -1)"
name="$(sed -n 's/^  name: *//p' "$resource" | head -1)"

if [ "$undeploy" = 1 ]; then
  echo "deploy: deleting FleetMonitor $namespace/$name (releases go in reverse order)"
  kubectl "${context[@]}" delete -f "$resource" --ignore-not-found --wait --timeout="${WAIT_TIMEOUT:-15m}"
  left="$(kubectl "${context[@]}" get fleetmonitors -A --no-headers 2>/dev/null | wc -l)"
  if [ "$left" = 0 ]; then
    echo "deploy: no FleetMonitor left, uninstalling the operator (the CRD stays)"
    helm "${helm_context[@]}" uninstall fleet-operator -n "$operator_ns" --ignore-not-found
  fi
  exit 0
fi

image=()
if [ -n "${OPERATOR_IMAGE:-}" ]; then
  image=(--set "image.repository=${OPERATOR_IMAGE%:*}" --set "image.tag=${OPERATOR_IMAGE##*:}")
fi
# The FleetMonitor's namespace first: with watchNamespaces the operator chart puts its Role there.
kubectl "${context[@]}" create namespace "$namespace" --dry-run=client -o yaml | kubectl "${context[@]}" apply -f -
scope=()
[ -n "${WATCH_NAMESPACES:-}" ] && scope=(--set "watchNamespaces={$WATCH_NAMESPACES}")
echo "deploy: operator chart -> $operator_ns (watching: ${WATCH_NAMESPACES:-all namespaces})"
helm "${helm_context[@]}" upgrade --install fleet-operator "$ROOT/charts/fleet-operator" \
  -n "$operator_ns" --create-namespace "${image[@]}" "${scope[@]}" --wait --timeout 5m
kubectl "${context[@]}" apply -f "$ROOT/charts/fleet-operator/crds/"  # helm never upgrades CRDs
echo "deploy: FleetMonitor $namespace/$name ($env)"
kubectl "${context[@]}" apply -f "$resource"
echo "deploy: waiting for Ready (kubectl get fm -n $namespace shows progress)"
kubectl "${context[@]}" wait --for=condition=Ready "fleetmonitor/$name" -n "$namespace" --timeout="${WAIT_TIMEOUT:-15m}"
kubectl "${context[@]}" get fleetmonitor "$name" -n "$namespace"
