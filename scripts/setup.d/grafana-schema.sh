#!/usr/bin/env bash
# Grafana dashboard JSON schema for the dashboard tests: there is no Grafana server here, so the
# Dashboard type of the pinned npm package @grafana/schema (same version as the chart's Grafana
# image) is turned into a JSON schema with ts-json-schema-generator. Idempotent: re-runs only when
# scripts/grafana-schema/package-lock.json changes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/scripts/grafana-schema"
DEST="${FLEET_TOOLS_DIR:-$ROOT/.tools}/grafana-schema"
SCHEMA="$DEST/dashboard.schema.json"
STAMP="$DEST/.lock-sha256"
want="$(sha256sum "$SRC/package-lock.json" | cut -d' ' -f1)"

if [ -f "$SCHEMA" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then exit 0; fi
if ! command -v npm >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "grafana-schema: please install: nodejs npm" >&2; exit 1; }
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
(cd "$DEST" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
"$DEST/node_modules/.bin/ts-json-schema-generator" --no-type-check --type Dashboard \
  --path "$DEST/node_modules/@grafana/schema/dist/types/raw/dashboard/x/dashboard_types.gen.d.ts" \
  --out "$SCHEMA.tmp"
mv "$SCHEMA.tmp" "$SCHEMA"
echo "$want" >"$STAMP"
echo "grafana-schema: generated $SCHEMA from @grafana/schema $(node -p "require('$DEST/node_modules/@grafana/schema/package.json').version")" >&2
