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

port="${PORT:-18480}" name=scim-check
# shellcheck source=interop/dev-server.sh
source interop/dev-server.sh
"$venv/bin/python" interop/scim/check.py "$base/scim/v2" "$token"
