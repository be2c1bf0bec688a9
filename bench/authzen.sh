#!/usr/bin/env bash
# AuthZEN decisions over HTTP against a release build: 1,000 Cedar policies
# and 10,000 people with two roles each (bench/authzen_fixture.py), loaded
# through `idplane apply`; then wrk on `evaluation` with two mixes (random
# person, document and action: mostly denies, each one logged; or the
# action everyone may take: mostly allows, 1 % logged) and on a 100-item
# `evaluations` batch.
#
#   bash bench/authzen.sh                 # c = 64
#   CONC="16 64" DURATION=10s bash bench/authzen.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONC="${CONC:-64}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-3s}"
PORT="${PORT:-19400}"
USERS="${USERS:-10000}"
POLICIES="${POLICIES:-1000}"
ROOT="bench-root-$RANDOM$RANDOM"
BIN="${CARGO_TARGET_DIR:-target}/release/idplane"
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release --bin idplane
DATA="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
python3 bench/authzen_fixture.py "$DATA/fixture" "$USERS" "$POLICIES"
"$BIN" serve --dev --dev-root-token "$ROOT" --data "$DATA/store" --listen "127.0.0.1:$PORT" \
  --issuer "http://127.0.0.1:$PORT" >"$DATA/server.log" 2>&1 &
SERVER=$!
BASE="http://127.0.0.1:$PORT"
until curl -sf "$BASE/readyz" >/dev/null; do sleep 0.05; done
start=$(date +%s%N)
IDPLANE_SERVER="$BASE" IDPLANE_TOKEN="$ROOT" "$BIN" apply "$DATA/fixture/idplane.yaml" >/dev/null
echo "seeded $USERS people, $((USERS * 2)) role assignments, $POLICIES policies in $(( ($(date +%s%N) - start) / 1000000 )) ms"
PDP="$(curl -sf -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' \
  -d '{"name":"bench-pep","scope":"pdp"}' "$BASE/api/v1/tokens" | sed -E 's/.*"secret":"([^"]+)".*/\1/')"

cat >"$DATA/evaluation.lua" <<LUA
math.randomseed(42)
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer $PDP"}
request = function()
  local u, a, level = math.random(0, $USERS - 1), math.random(0, 19), math.random(0, 9)
  local body = string.format('{"subject":{"type":"user","id":"u%d"},"action":{"name":"a%d"},'
    .. '"resource":{"type":"Doc","id":"d%d","properties":{"owner":"u%d","level":%d}}}', u, a, u, u, level)
  return wrk.format("POST", "/access/v1/evaluation", headers, body)
end
LUA
sed -e 's/math.random(0, 19), math.random(0, 9)/0, math.random(0, 8)/' -e 's/randomseed(42)/randomseed(44)/' \
  "$DATA/evaluation.lua" >"$DATA/evaluation-allow.lua"
cat >"$DATA/evaluations.lua" <<LUA
math.randomseed(43)
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer $PDP"}
request = function()
  local u = math.random(0, $USERS - 1)
  local items = {}
  for i = 1, 100 do
    items[i] = string.format('{"action":{"name":"a%d"},"resource":{"type":"Doc","id":"d%d",'
      .. '"properties":{"owner":"u%d","level":%d}}}', math.random(0, 19), i, u, math.random(0, 9))
  end
  local body = string.format('{"subject":{"type":"user","id":"u%d"},"evaluations":[%s]}', u, table.concat(items, ","))
  return wrk.format("POST", "/access/v1/evaluations", headers, body)
end
LUA

echo "idplane $("$BIN" --version | awk '{print $2}'), $(nproc) CPUs, wrk -t1"
run() { # scenario lua connections
  wrk -t1 -c"$3" -d"$WARMUP" -s "$2" "$BASE" >/dev/null 2>&1 || true
  out="$(wrk -t1 -c"$3" -d"$DURATION" --latency --timeout 10s -s "$2" "$BASE")"
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '/ 50%/ {print $2}' <<<"$out")"; p99="$(awk '/ 99%/ {print $2}' <<<"$out")"
  errors="$(grep -E 'Non-2xx|Socket errors' <<<"$out" || echo none)"
  echo "$1 c=$3: $rps/s, p50 $p50, p99 $p99, errors: $errors"
}
for c in $CONC; do run "evaluation (random: mostly denies)" "$DATA/evaluation.lua" "$c"; done
for c in $CONC; do run "evaluation (mostly allows)" "$DATA/evaluation-allow.lua" "$c"; done
run "evaluations (100 items)" "$DATA/evaluations.lua" 1
run "evaluations (100 items)" "$DATA/evaluations.lua" 8
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER/status")"
