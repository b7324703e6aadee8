#!/usr/bin/env bash
# Render CHANGELOG.md from changelogs/fragments/ with antsibull-changelog, the release in progress included.
# `antsibull-changelog release` consumes fragments, so it runs on a copy (at the ansible_collections/... path, where
# it finds the modules and roles to list as new) and only CHANGELOG.md comes back. The date is the last commit's
# that touched the fragments, so the output changes only when they do.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
root="$repo/.build/changelog"
copy="$root/ansible_collections/swiftlinux/deploy"

command -v antsibull-changelog >/dev/null || die "antsibull-changelog is missing; run 'make venv' (it is pinned in requirements.txt)"
(cd "$repo" && antsibull-changelog lint) || die "a changelog fragment is malformed (above); fix it and retry"
version=$(sed -nE 's/^version: *"?([^" ]+)"?.*/\1/p' "$repo/galaxy.yml")
date=$(cd "$repo" && git log -1 --format=%cs -- changelogs 2>/dev/null)
rm -rf "$root" && mkdir -p "$copy"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy")
(cd "$copy" && ANSIBLE_COLLECTIONS_PATH="$root" antsibull-changelog release --version "$version" --date "${date:-$(date +%F)}")
cp "$copy/CHANGELOG.md" "$repo/CHANGELOG.md"
note "CHANGELOG.md rendered for $version from $(find "$repo/changelogs/fragments" -name '*.yml' | wc -l) fragments"
