#!/usr/bin/env bash
# Drives a fresh dev-mode idplane with Authlib, a mainstream Python OpenID
# Connect client (check.py: code flow with PKCE, ID token verification,
# userinfo, refresh rotation and reuse, introspection, revocation, logout,
# client credentials, device flow). Needs Python 3 with venv, and access to
# PyPI the first time.
#
#   bash interop/oidc/run.sh            # builds the release binary if needed
#   IDPLANE_BIN=path/to/idplane bash interop/oidc/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${OIDC_VENV:-$HOME/.cache/idplane-oidc-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import authlib, requests' 2>/dev/null ||
    "$venv/bin/pip" install --quiet "authlib==1.6.5" "requests==2.34.2"

port="${PORT:-18490}" name=oidc-check
# shellcheck source=interop/dev-server.sh
source interop/dev-server.sh
"$venv/bin/python" interop/oidc/check.py "$base" "$token"
