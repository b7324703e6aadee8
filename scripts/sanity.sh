#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of the collection placed at .../ansible_collections/swiftlinux/deploy,
# the path ansible-test insists on. --docker would need pulled images, so this uses --local.
# It tests with the ansible-test first on PATH; each ansible-core gets its own copy, so cores run side by side.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
core=$(python -c 'from ansible.release import __version__; print(__version__)')
dest="$repo/.build/sanity/$core/ansible_collections/swiftlinux/deploy"

# ansible-test downloads get-pip.py from a host this machine cannot reach; it uses a cached copy first.
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
# Copied then renamed, so a sanity run beside this one never reads a half-written file.
for version in 23_1_2 24_2 25_0 25_1 25_2; do
  cp "$repo/scripts/get_pip_standin.py" "$cache/.get_pip_${version}.py.$$"
  mv -f "$cache/.get_pip_${version}.py.$$" "$cache/get_pip_${version}.py"
done

# Only what git would ship (tracked or new, not ignored), so build output never reaches the copy.
rm -rf "$dest" && mkdir -p "$dest"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$dest")
# ansible-test only considers files git knows about when it finds a .git directory; give it one.
(cd "$dest" && git init -q && git add -A)
cd "$dest"
ansible-test sanity --local --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --color no "$@"
