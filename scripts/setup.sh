#!/usr/bin/env bash
# One-shot development set-up on a fresh machine: system packages, the .venv with every
# component's dependencies, and the pinned Java artifacts (scripts/setup.d). The Kubernetes tools
# are built by scripts/setup-kube.sh (make setup-kube). Idempotent; quiet when done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.fleet-monitor-setup"
log() { echo "setup: $*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

# Java runs the Flink mini-cluster; PostgreSQL binaries back the private test database.
need_apt=()
have java || need_apt+=(openjdk-17-jre-headless)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
have unzip || need_apt+=(unzip)
have openssl || need_apt+=(openssl)  # keys of the local Kubernetes cluster (devstack.kube)
{ have promtool && have prometheus; } || need_apt+=(prometheus)  # promtool, and the server `make run` starts
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then log "please install: ${need_apt[*]}"; exit 1; fi
  log "installing system packages: ${need_apt[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Re-install only when the dependency declaration changed.
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  [ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  log "installing Python dependencies into .venv (one pip call; apache-flink is large)"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e ".[generator,jobs,api,operator,dev]"
  echo "$want" >"$STAMP"
fi

for extra in "$ROOT"/scripts/setup.d/*.sh; do
  [ -e "$extra" ] && bash "$extra"
done
exit 0
