#!/usr/bin/env bash
# Install the Debian packages the test bed needs, when some are missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# libcurl4-openssl-dev and libxml2-dev: FoundationNetworking/FoundationXML link -lcurl -lxml2 in static_stdlib builds.
# debuginfod: serves the debug store in tests (debuginfod, debuginfod-find); iproute2 brings up its namespace's loopback.
packages=(docker.io shellcheck debootstrap patchelf docker-registry skopeo binutils python3-venv curl apache2-utils
          libcurl4-openssl-dev libxml2-dev debuginfod iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

[ -r /etc/debian_version ] || die "missing tools (${missing[*]}) and this is not Debian; install their equivalents by hand"
[ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}; run 'sudo apt-get install -y ${missing[*]}' or rerun as root"
note "installing Debian packages: ${missing[*]}"
log=$(mktemp)
if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 5 "$log" >&2
  die "apt-get could not install ${missing[*]} (log above); check the apt sources and network, then retry"
fi
rm -f "$log"
