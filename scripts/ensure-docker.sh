#!/usr/bin/env bash
# Make sure a Docker engine answers. If none does, start Debian's dockerd with loopback-only
# networking: no default bridge, no iptables, no forwarding. Containers use network none or host.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

docker info >/dev/null 2>&1 && exit 0
command -v dockerd >/dev/null || die "no Docker engine answers and dockerd is missing; install it with 'apt-get install -y docker.io' (make bootstrap does this)"
[ "$(id -u)" -eq 0 ] || die "no Docker engine answers; start one (e.g. 'sudo systemctl start docker') or rerun as root"

log=/var/log/swiftlinux-dockerd.log
note "starting dockerd (loopback-only networking), log in $log"
nohup setsid dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false >"$log" 2>&1 </dev/null &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
tail -n 5 "$log" >&2
die "dockerd did not come up within 30 s (log above, full log in $log)"
