#!/usr/bin/env bash
# Build (once) a Debian test-host image with python3 and systemd, without any registry:
# debootstrap a minbase rootfs, then `docker import` it under a local tag.
# Usage: test-host-image.sh SUITE   -> image swiftlinux-testhost:SUITE
set -euo pipefail
. "$(dirname "$0")/lib.sh"

suite=${1:?usage: test-host-image.sh SUITE}
tag="swiftlinux-testhost:${suite}"

docker image inspect "$tag" >/dev/null 2>&1 && { note "test host $tag is cached"; exit 0; }
command -v debootstrap >/dev/null || die "debootstrap is missing; install it with 'apt-get install -y debootstrap' (make bootstrap does this)"

mirror=$(debian_mirror)
work=$(mktemp -d /var/tmp/testhost-"$suite".XXXXXX)
trap 'rm -rf "$work"' EXIT
note "debootstrap $suite from $mirror (about 40 s)"
if ! debootstrap --variant=minbase --include=python3,systemd,systemd-sysv,dbus \
      "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 5 "$work/debootstrap.log" >&2
  die "debootstrap of $suite failed (log above); check that $mirror serves '$suite'"
fi
# A container has no consoles to log in on and no udev to wait for.
chroot "$work/rootfs" systemctl mask getty@tty1.service console-getty.service \
  systemd-udevd.service systemd-udev-trigger.service systemd-remount-fs.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount >/dev/null 2>&1 || true
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar -C "$work/rootfs" -c . | docker import \
  -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
  - "$tag" >/dev/null
note "built test host $tag"
