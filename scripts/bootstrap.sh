#!/usr/bin/env bash
# Installs what `make` needs, idempotently: uv (pinned, in the project cache) and the locked
# Python environment (.venv, every extra). Prints the path of uv on stdout.
set -euo pipefail

UV_VERSION=0.13.8
CACHE="${FRAUD_CACHE_DIR:-$HOME/.cache/fraud-detection}"
UV="$CACHE/uv-$UV_VERSION/bin/uv"
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [[ ! -x $UV ]]; then
  echo "[setup] installing uv $UV_VERSION into $CACHE" >&2
  python3.11 -m venv "$CACHE/uv-$UV_VERSION" 2>/dev/null || python3 -m venv "$CACHE/uv-$UV_VERSION" \
    || { echo "bootstrap.sh: python3 -m venv failed (need Python 3.11 with venv)" >&2; exit 1; }
  "$CACHE/uv-$UV_VERSION/bin/pip" install -q "uv==$UV_VERSION" \
    || { echo "bootstrap.sh: pip install uv==$UV_VERSION failed" >&2; exit 1; }
fi

(cd "$ROOT" && "$UV" sync --frozen --all-extras --quiet) \
  || { echo "bootstrap.sh: uv sync failed (see above)" >&2; exit 1; }
echo "$UV"
