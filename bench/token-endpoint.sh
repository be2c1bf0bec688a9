#!/usr/bin/env bash
# Client-credentials grants and introspection against a release build of
# idplane, loaded with wrk exactly as ../shared/peers/oidc-provider/run.sh
# loads the peer (one wrk thread, keep-alive, 2 s warm-up), so the figures
# compare side by side.
#
#   bash bench/token-endpoint.sh                      # SQLite, c = 16 64 256
#   DB=postgres://postgres@127.0.0.1:5432/test bash bench/token-endpoint.sh
#   CONC="64" DURATION=10s bash bench/token-endpoint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONC="${CONC:-16 64 256}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
PORT="${PORT:-19300}"
ROOT="bench-root-$RANDOM$RANDOM"
BIN="${CARGO_TARGET_DIR:-target}/release/idplane"
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release --bin idplane
DATA="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$DATA" "$LUA"' EXIT
ARGS=(serve --dev --dev-root-token "$ROOT" --data "$DATA" --listen "127.0.0.1:$PORT"
      --issuer "http://127.0.0.1:$PORT")
[ -n "${DB:-}" ] && ARGS+=(--database-url "$DB")
"$BIN" "${ARGS[@]}" >"$DATA/server.log" 2>&1 &
SERVER=$!
BASE="http://127.0.0.1:$PORT"
until curl -sf "$BASE/readyz" >/dev/null; do sleep 0.05; done
CLIENT="bench-$RANDOM"
SECRET="$(curl -sf -H "Authorization: Bearer $ROOT" -H 'Content-Type: application/json' \
  -d "{\"client_id\":\"$CLIENT\",\"name\":\"bench\",\"grant_types\":[\"client_credentials\"],\"scopes\":[\"api\"]}" \
  "$BASE/api/v1/clients" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')"
BASIC="$(printf '%s:%s' "$CLIENT" "$SECRET" | base64 -w0)"
TOKEN="$(curl -sf -u "$CLIENT:$SECRET" -d grant_type=client_credentials -d scope=api "$BASE/oauth2/token" \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')"
LUA="$(mktemp)"
cat >"$LUA" <<'LUA'
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("WRK_BASIC")
LUA
echo "idplane $("$BIN" --version | awk '{print $2}'), $(nproc) CPUs, store ${DB:-sqlite}, wrk -t1"
for scenario in client_credentials introspect; do
  if [ "$scenario" = client_credentials ]; then path=/oauth2/token; body="grant_type=client_credentials&scope=api"
  else path=/oauth2/introspect; body="token=$TOKEN"; fi
  for c in $CONC; do
    WRK_BODY="$body" WRK_BASIC="$BASIC" wrk -t1 -c"$c" -d"$WARMUP" -s "$LUA" "$BASE$path" >/dev/null 2>&1 || true
    out="$(WRK_BODY="$body" WRK_BASIC="$BASIC" wrk -t1 -c"$c" -d"$DURATION" --latency --timeout 10s -s "$LUA" "$BASE$path")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1=="50%" {print $2}' <<<"$out")"; p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
    non2xx="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
    rss="$(ps -o rss= -p "$SERVER" | awk '{printf "%.0f MiB", $1/1024}')"
    echo "$scenario c=$c: ${rps} req/s, p50 ${p50}, p99 ${p99}, non-2xx ${non2xx:-0}, server RSS ${rss}"
  done
done
