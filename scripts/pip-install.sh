#!/usr/bin/env bash
# Install a pinned requirements file into a venv. uv (pinned in requirements.txt, in the project's venv) does it in
# seconds where pip takes minutes; if uv is missing or fails, pip does it instead.
# Usage: pip-install.sh VENV REQUIREMENTS
set -euo pipefail
. "$(dirname "$0")/lib.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:?usage: pip-install.sh VENV REQUIREMENTS} requirements=${2:?usage: pip-install.sh VENV REQUIREMENTS}
uv="$repo/.venv/bin/uv"
# uv reads the system's CA bundle (as pip does here) instead of its own, so a TLS-inspecting proxy works too.
if [ -x "$uv" ] && UV_NATIVE_TLS=1 "$uv" pip install --quiet --python "$venv/bin/python" -r "$requirements"; then
  exit 0
fi
[ ! -x "$uv" ] || note "uv could not install $requirements (above); installing it with pip instead"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
  || die "pip could not install $requirements (above); check the network to PyPI and retry"
