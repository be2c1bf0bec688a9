#!/usr/bin/env bash
# Starts a dev server and drives its pages in Chromium with a virtual passkey.
# Needs Debian's chromium and npm (`npm install` here fetches playwright-core,
# no browser download). Not part of .ci/run: it needs a browser.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund --silent
bin="${IDPLANE_BIN:-${CARGO_TARGET_DIR:-../../target}/debug/idplane}"
port=18700
"$bin" serve --dev --dev-root-token browser-interop-root --listen 127.0.0.1:$port --issuer http://localhost:$port >/tmp/idplane-browser.log 2>&1 &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 100); do curl -sf localhost:$port/readyz >/dev/null && break; sleep 0.05; done
export IDPLANE_SERVER=http://localhost:$port IDPLANE_TOKEN=browser-interop-root
"$bin" user create pat --email pat@example.com >/dev/null
"$bin" user set-password pat --password-stdin --permanent <<< 'correct horse battery staple 42' >/dev/null
node passkey.mjs "http://localhost:$port" pat 'correct horse battery staple 42' "${1:-}"
