#!/usr/bin/env bash
# Java artifacts from Maven Central, pinned by the poms in scripts/java and checked jar by jar
# against scripts/java/SHA256SUMS: the Apache Kafka broker (kafka/) and the Flink connectors
# (flink/). Installed outside the work tree (FLEET_JAVA_DIR, default ~/.cache/fleet-monitor/java)
# so fresh clones and CI on this machine reuse them; re-run only when a pin changes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/scripts/java"
DEST="${FLEET_JAVA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleet-monitor/java}"
STAMP="$DEST/.setup-sha256"
want="$(cat "$SRC"/*.pom.xml "$SRC/SHA256SUMS" | sha256sum | cut -d' ' -f1)"
log() { echo "java-artifacts: $*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then exit 0; fi
if ! command -v mvn >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { log "please install: maven"; exit 1; }
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends maven >/dev/null
fi

work="$(mktemp -d "${DEST%/*}/.java-XXXXXX" 2>/dev/null || { mkdir -p "${DEST%/*}"; mktemp -d "${DEST%/*}/.java-XXXXXX"; })"
trap 'rm -rf "$work"' EXIT
started=$SECONDS
for part in kafka:kafka-broker flink:flink-connectors; do
  dir="${part%%:*}" pom="$SRC/${part#*:}.pom.xml"
  log "resolving $(basename "$pom") into $dir/"
  # --strict-checksums: Maven refuses a jar whose Central checksum does not match.
  mvn -B -q --strict-checksums -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$work/$dir" >"$work/mvn.log" 2>&1 \
    || { cat "$work/mvn.log" >&2; exit 1; }
done
# Exactly the pinned set: every listed jar with its sha256, and nothing else.
rm -f "$work/mvn.log"
(cd "$work" && sha256sum --check --quiet "$SRC/SHA256SUMS") || { log "checksum mismatch (see above)"; exit 1; }
listed="$(awk '{print $2}' "$SRC/SHA256SUMS" | sort)"
found="$(cd "$work" && find . -name '*.jar' | sed 's#^\./##' | sort)"
[ "$listed" = "$found" ] || { log "resolved jars differ from SHA256SUMS:"; diff <(echo "$listed") <(echo "$found") >&2; exit 1; }

rm -rf "$DEST"
mv "$work" "$DEST"
trap - EXIT
echo "$want" >"$STAMP"
log "installed $(echo "$listed" | wc -l) verified jars into $DEST in $((SECONDS - started)) s"
