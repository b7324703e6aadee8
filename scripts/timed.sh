#!/usr/bin/env bash
# Run a stage of `make test` and report how long it took, so the total can be read off CI's log.
set -uo pipefail
stage=$1; shift
start=$(date +%s)
"$@"; rc=$?
printf '==> stage %-9s %4ss  %s\n' "$stage" "$(( $(date +%s) - start ))" "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
exit $rc
