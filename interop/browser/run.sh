#!/usr/bin/env bash
# Starts a dev server, has an admin create a user with the CLI, walks the
# sign-in story in Chromium (signin.mjs: password, TOTP, recovery code,
# passkey, sessions; forms without script), then reads the audit log over the
# admin API and checks it recorded each step.
# Needs Debian's chromium, npm (`npm install` here fetches playwright-core,
# no browser download), curl and jq. Not part of .ci/run: it needs a browser.
# Usage: run.sh [SCREENSHOT_DIR]
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund --silent
bin="${IDPLANE_BIN:-${CARGO_TARGET_DIR:-../../target}/debug/idplane}"
port=18700
token=browser-interop-root
log="${TMPDIR:-/tmp}/idplane-browser.log"
"$bin" serve --dev --dev-root-token $token --listen 127.0.0.1:$port --issuer http://localhost:$port >"$log" 2>&1 &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 100); do curl -sf localhost:$port/readyz >/dev/null && break; sleep 0.05; done
export IDPLANE_SERVER=http://localhost:$port IDPLANE_TOKEN=$token
"$bin" user create pat --email pat@example.com >/dev/null
"$bin" user set-password pat --password-stdin --permanent <<< 'correct horse battery staple 42' >/dev/null
echo "ok - an admin created user pat with a permanent password (CLI)"
node signin.mjs "http://localhost:$port" pat 'correct horse battery staple 42' "${1:-}"

# The audit log, as an admin reads it.
audit=$(curl -sf -H "Authorization: Bearer $token" "http://localhost:$port/api/v1/audit?limit=1000")
failed=0
expect() {
  if jq -e "def ev(a; o): [.items[] | select(.action == a and .outcome == o)]; $2" <<<"$audit" >/dev/null; then
    echo "ok - audited: $1"
  else
    echo "not ok - audited: $1"
    failed=1
  fi
}
expect "the wrong password, as a failure" \
  'ev("auth.password"; "failure") | map(.details.reason) == ["wrong_password"]'
expect "three password sign-ins" 'ev("auth.password"; "success") | length == 3'
expect "the TOTP enrollment, with ten recovery codes" \
  '(ev("totp.begin"; "success") | length == 1) and (ev("totp.confirm"; "success") | length == 1)
   and (ev("recovery.regenerate"; "success") | map(.details.count) == [10])'
expect "the replayed TOTP code, refused" \
  'ev("auth.totp"; "failure") | map(.details.reason) == ["replayed_code"]'
expect "the used recovery code, refused" \
  'ev("auth.recovery"; "failure") | length == 1'
expect "a fresh TOTP code and a recovery code, accepted" \
  '(ev("auth.totp"; "success") | length == 1) and (ev("auth.recovery"; "success") | map(.details.left) == [9])'
expect "the passkey registration, named" \
  'ev("passkey.register"; "success") | map(.details.name) == ["virtual authenticator"]'
expect "the phishing-resistant passkey sign-in" \
  'ev("passkey.sign_in"; "success") | map(.details.phishing_resistant) == [true]'
expect "four sessions: password, recovery code, TOTP, passkey" \
  'ev("session.create"; "success") | map(.details.acr)
   == ["urn:idplane:acr:1fa", "urn:idplane:acr:mfa", "urn:idplane:acr:mfa", "urn:idplane:acr:phr"]'
expect "three sign-outs" 'ev("session.end"; "success") | map(select(.details.reason == "signed out")) | length == 3'
expect "the passkey session, ended by the person from their other session" \
  '(ev("session.create"; "success") | map(select(.details.acr == "urn:idplane:acr:phr")) | .[0]) as $s
   | ev("session.end"; "success")
   | map(select(.target == $s.target and .actor == $s.details.principal and .details.principal == $s.details.principal))
   | length == 1'
if [ $failed != 0 ]; then
  jq -c '.items[] | [.seq, .actor, .action, .target, .outcome, .details]' <<<"$audit" >&2
  exit 1
fi
