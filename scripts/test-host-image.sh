#!/usr/bin/env bash
# Build (once) the Debian test-host image swiftlinux-testhost:SUITE with python3 and systemd, without any registry.
# The recipe (debootstrap a minbase rootfs, then `docker import` it) is the collection's own swiftlinux.deploy.testhost
# role, the same one role authors use; this only skips starting Ansible when the image already exists.
# Usage: test-host-image.sh SUITE
set -euo pipefail
. "$(dirname "$0")/lib.sh"

suite=${1:?usage: test-host-image.sh SUITE}
tag="swiftlinux-testhost:${suite}"

docker image inspect "$tag" >/dev/null 2>&1 && { note "test host $tag is cached"; exit 0; }
note "building test host $tag (debootstrap, about 40 s)"
ansible-playbook swiftlinux.deploy.testhost -e "{\"testhost_suites\": [\"$suite\"]}"
