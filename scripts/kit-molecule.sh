#!/usr/bin/env bash
# Run the kit's example role (examples/roles/my_service) the way a role author does, on the ansible-core of one venv:
# the collection built with `ansible-galaxy collection build` and installed into a fresh path, the role copied out of
# this repository (so neither its ansible.cfg, its .config/molecule nor its collection link applies), then
# `molecule test`.
# Usage: kit-molecule.sh VENV   (a venv with ansible-core, molecule, molecule-plugins[docker] and pytest-testinfra)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$(cd "${1:?usage: kit-molecule.sh VENV}" && pwd)
core=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
work="${TMPDIR:-/tmp}/swiftlinux-kit/$core"

# molecule's docker driver needs community.docker and ansible.posix. A user installs them from Galaxy, which this
# machine cannot reach, so the copies the pinned `ansible` package brought are installed beside the collection.
sites=("$repo"/.venv/lib/python3*/site-packages/ansible_collections)
site=${sites[0]}
for needed in community/docker ansible/posix; do
  [ -d "$site/$needed" ] || die "${needed/\//.} is missing from .venv; run 'make venv'"
done

rm -rf "$work" && mkdir -p "$work/collections/ansible_collections/community" "$work/collections/ansible_collections/ansible"
export PATH="$venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$work/collections"
unset ANSIBLE_CONFIG MOLECULE_GLOB
ansible-galaxy collection build --output-path "$work" "$repo" >/dev/null
ansible-galaxy collection install --no-deps -p "$work/collections" "$work"/swiftlinux-deploy-*.tar.gz >/dev/null
for needed in community/docker ansible/posix; do cp -a "$site/$needed" "$work/collections/ansible_collections/$needed"; done
cp -a "$repo/examples/roles/my_service" "$work/my_service"

# The program my_service deploys: the http-service fixture, built static by the scenario's converge into the build
# cache make test's builds stage fills (then swift_build finds it current and reports changed=false).
export MY_SERVICE_PACKAGE="$repo/tests/fixtures/http-service"
export MY_SERVICE_BUILD_DIR="$repo/.build/test-cache/artifacts/http-service/static_executable"
base="$work/collections/ansible_collections/swiftlinux/deploy/kit/molecule/base.yml"
[ -r "$base" ] || die "the installed collection has no kit/molecule/base.yml; check galaxy.yml's build_ignore"

note "molecule test of examples/roles/my_service on ansible-core $core"
cd "$work/my_service"
MOLECULE_EPHEMERAL_DIRECTORY="$work/ephemeral" molecule --base-config "$base" test
