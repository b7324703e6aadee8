#!/usr/bin/env bash
# Print the directory holding the Swift toolchain's `swift` (>= 5.9), or stop with one line saying how to provide it.
# Looks at $SWIFT_TOOLCHAIN_BIN, then PATH, then the usual install prefixes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

for dir in "${SWIFT_TOOLCHAIN_BIN:-}" $(dirname "$(command -v swift 2>/dev/null || echo /nonexistent/swift)") \
           /opt/swift/usr/bin /usr/share/swift/usr/bin /usr/local/swift/usr/bin; do
  if [ -z "$dir" ] || [ ! -x "$dir/swift" ]; then continue; fi
  version=$("$dir/swift" --version 2>/dev/null | sed -nE 's/.*Swift version ([0-9]+)\.([0-9]+).*/\1 \2/p' | head -n 1)
  read -r major minor <<<"${version:-0 0}"
  if [ "$major" -gt 5 ] || { [ "$major" -eq 5 ] && [ "$minor" -ge 9 ]; }; then
    printf '%s\n' "$dir"; exit 0
  fi
  die "Swift toolchain at $dir is ${major}.${minor}; install Swift 5.9 or newer from swift.org and set SWIFT_TOOLCHAIN_BIN to its usr/bin"
done
die "Swift toolchain not found; install Swift 5.9 or newer from swift.org and put its usr/bin on PATH (or set SWIFT_TOOLCHAIN_BIN)"
