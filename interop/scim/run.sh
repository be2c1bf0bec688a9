#!/usr/bin/env bash
# Runs the independent SCIM compliance checker scim2-tester against a fresh
# dev-mode idplane. Needs Python 3 with venv, and network access to PyPI the
# first time.
#
#   bash interop/scim/run.sh            # builds the release binary if needed
#   IDPLANE_BIN=path/to/idplane bash interop/scim/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${SCIM_VENV:-$HOME/.cache/idplane-scim-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "scim2-tester[httpx2]==0.5.2"
fi

bin="${IDPLANE_BIN:-target/release/idplane}"
if [ -z "${IDPLANE_BIN:-}" ]; then
    cargo build --release --locked --quiet
    bin="${CARGO_TARGET_DIR:-target}/release/idplane"
fi

port="${PORT:-18480}"
token="scim-check-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
data="$(mktemp -d)"
"$bin" serve --dev --dev-root-token "$token" --data "$data" --listen "127.0.0.1:$port" \
    >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
"$venv/bin/python" interop/scim/check.py "http://127.0.0.1:$port/scim/v2" "$token"
