#!/usr/bin/env bash
# Builds the Kubernetes tools from the Go modules pinned in tools/*/go.mod (every module checked
# against the go.sum beside it): etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl (tools/kube), kwok (tools/kwok) and helm (tools/helm). Built once per machine into
# FLEET_KUBE_DIR (default ~/.cache/fleet-monitor/kube), outside the work tree so that fresh
# clones and CI reuse them; linked into .tools/bin. A second run builds nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${FLEET_KUBE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleet-monitor/kube}"
LINKS="${FLEET_TOOLS_DIR:-$ROOT/.tools}/bin"
log() { echo "setup-kube: $*" >&2; }

command -v go >/dev/null || { log "please install Go >= 1.26 (the modules in tools/ say which)"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=readonly

# The version a module's go.mod requires, e.g. `module_version tools/kube k8s.io/kubernetes`.
module_version() {
  awk -v m="$2" '/^\/\// { next } { for (i = 1; i < NF; i++) if ($i == m) { print $(i + 1); exit } }' "$ROOT/$1/go.mod"
}

# build <tools dir> <ldflags> <package>...: the packages' binaries into $DEST/bin, unless the
# module's go.mod and go.sum are the ones they were last built from.
build() {
  local dir="$1" ldflags="$2"; shift 2
  local stamp="$DEST/.${dir##*/}.sha256" want started
  want="$(cat "$ROOT/$dir/go.mod" "$ROOT/$dir/go.sum" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  started=$SECONDS
  local names="${*##*/}"
  log "building ${names/v3/etcd} from $dir (once per machine; the control plane takes 15-30 min on 2 cores)"
  mkdir -p "$DEST/bin"
  (cd "$ROOT/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$DEST/bin/" "$@")
  echo "$want" >"$stamp"
  log "built ${names/v3/etcd} in $((SECONDS - started)) s"
}

kube="$(module_version tools/kube k8s.io/kubernetes)"   # v1.37.2
minor="${kube#v1.}" minor="${minor%%.*}"
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
helm="$(module_version tools/helm helm.sh/helm/v3)"
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in chartutil lint/rules; do   # the Kubernetes version `helm template` and `helm lint` assume
  helm_ldflags+=" -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMinor=$minor"
done

# Small and needed by most tests first; the control plane last.
build tools/helm "$helm_ldflags" helm.sh/helm/v3/cmd/helm
build tools/kwok "" sigs.k8s.io/kwok/cmd/kwok
build tools/kube "$kube_ldflags" k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3 \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler

# go build names etcd's main package (go.etcd.io/etcd/server/v3) `server`.
if [ -x "$DEST/bin/server" ]; then mv -f "$DEST/bin/server" "$DEST/bin/etcd"; fi
mkdir -p "$LINKS"
for tool in helm kubectl kwok etcd kube-apiserver kube-controller-manager kube-scheduler; do
  [ "$(readlink "$LINKS/$tool" 2>/dev/null)" = "$DEST/bin/$tool" ] || ln -sfn "$DEST/bin/$tool" "$LINKS/$tool"
done
