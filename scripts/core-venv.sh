#!/usr/bin/env bash
# Make the venv of one older ansible-core line for `make cores`: .build/cores/LINE from the pins in tests/cores/LINE.txt.
# Usage: core-venv.sh LINE   (for example 2.16)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
line=${1:?usage: core-venv.sh LINE}
pins="$repo/tests/cores/$line.txt"
venv="$repo/.build/cores/$line"
if [ ! -r "$pins" ]; then
  lines=("$repo"/tests/cores/*.txt); lines=("${lines[@]##*/}")
  die "no pins for ansible-core $line in tests/cores/; supported lines: ${lines[*]%.txt}"
fi

rm -rf "$venv"
python3 -m venv "$venv" || die "could not create a venv; install 'python3-venv' and retry"
note "installing ansible-core $line into .build/cores/$line"
"$repo/scripts/pip-install.sh" "$venv" "$pins"
touch "$venv/.installed"
