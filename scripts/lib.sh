# shellcheck shell=bash
# Shared helpers for the set-up scripts. Sourced, never run.
# Every failure ends in one line naming what is missing and how to provide it.

die() { printf 'swiftlinux.deploy: %s\n' "$*" >&2; exit 1; }
note() { printf '==> %s\n' "$*" >&2; }

# The Debian archive URL this machine's own apt sources use (never a hard-coded host).
debian_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -E '/debian/?$' | head -n 1)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | awk '{print $2}' | grep -E '/debian/?$' | head -n 1)
  [ -n "$uri" ] || die "no Debian archive found in /etc/apt/sources.list*; add one (e.g. a 'deb <mirror>/debian bookworm main' line) and retry"
  printf '%s\n' "${uri%/}"
}
