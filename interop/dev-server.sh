# Sourced by the interop scripts: starts a fresh dev-mode idplane on
# 127.0.0.1:$port with a random root token and an empty data directory,
# stopped and removed when the script exits; sets `base` and `token`.
#   IDPLANE_BIN: the binary (the release build, built here if unset)
#   port: the loopback port; name: a prefix for the token
bin="${IDPLANE_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release --locked --quiet
    bin="${CARGO_TARGET_DIR:-target}/release/idplane"
fi
base="http://127.0.0.1:$port"
token="$name-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
data="$(mktemp -d)"
"$bin" serve --dev --dev-root-token "$token" --data "$data" --listen "127.0.0.1:$port" \
    --issuer "$base" >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null 2>&1 || {
    echo "idplane did not become ready on $base:" >&2
    cat "$data/server.log" >&2
    exit 1
}
