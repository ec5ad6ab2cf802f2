#!/usr/bin/env bash
# Forward Grafana, the API and the Flink UIs of one environment to localhost and print the URLs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  cat <<USAGE
usage: scripts/port-forward.sh <dev|qa|prod>

Forwards (until Ctrl-C):  Grafana -> http://localhost:3000   API -> http://localhost:8000
Flink UIs of the jobs aggregates, alarms, inactivity, kpis -> http://localhost:8081..8084
environment: KUBECONFIG, KUBE_CONTEXT (as for deploy.sh), GRAFANA_PORT, API_PORT, FLINK_PORT
USAGE
}
die() { echo "port-forward: $*" >&2; exit 1; }
case "${1:-}" in -h|--help) usage; exit 0 ;; dev|qa|prod) env="$1" ;; *) usage >&2; die "which environment?" ;; esac
resource="$ROOT/environments/$env/fleetmonitor.yaml"
export PATH="$ROOT/.tools/bin:$PATH"
command -v kubectl >/dev/null || die "kubectl not found: run 'make setup'"
context=()
[ -n "${KUBE_CONTEXT:-}" ] && context=(--context "$KUBE_CONTEXT")
kubectl "${context[@]}" version --request-timeout=5s >/dev/null 2>&1 \
  || die "no Kubernetes cluster reachable (KUBECONFIG=${KUBECONFIG:-~/.kube/config}, context=${KUBE_CONTEXT:-current})"
namespace="$(sed -n 's/^  namespace: *//p' "$resource" | head -1)"
name="$(sed -n 's/^  name: *//p' "$resource" | head -1)"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
forward() { # release, local port, label[, service name suffix]
  local service port
  service="$(kubectl "${context[@]}" get svc -n "$namespace" -l "app.kubernetes.io/instance=$1" \
    -o jsonpath='{range .items[*]}{.metadata.name} {.spec.ports[0].port}{"\n"}{end}' | grep -v headless \
    | grep -e "${4:-} " | head -1)" || true
  [ -n "$service" ] || { echo "  $3: no service for release $1 (disabled or not deployed)"; return; }
  port="${service##* }"; service="${service%% *}"
  kubectl "${context[@]}" port-forward -n "$namespace" "svc/$service" "$2:$port" >/dev/null 2>&1 &
  pids+=($!)
  echo "  $3: http://localhost:$2  (svc/$service:$port)"
}
echo "fleet-monitor $env ($namespace):"
forward "$name-grafana" "${GRAFANA_PORT:-3000}" "Grafana"
forward "$name-api" "${API_PORT:-8000}" "API    "
flink="${FLINK_PORT:-8081}"
for job in aggregates alarms inactivity kpis; do
  # the REST/UI Service (the -jobmanager one serves RPC first)
  forward "$name-job-$job" "$flink" "Flink UI ($job)" "-rest"; flink=$((flink + 1))
done
echo "Grafana credentials: user and password in Secret $name-grafana-admin: kubectl get secret $name-grafana-admin -n $namespace -o jsonpath='{.data.admin-password}' | base64 -d"
echo "API key (reads need one): TOKEN=\$(kubectl get secret $name-api-admin-token -n $namespace -o jsonpath='{.data.token}' | base64 -d); curl -H \"Authorization: Bearer \$TOKEN\" http://localhost:${API_PORT:-8000}/fleet"
echo "Ctrl-C stops the forwards."
wait
