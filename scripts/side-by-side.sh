#!/usr/bin/env bash
# Run independent stages of `make test` side by side, each timed by timed.sh into its own log, then print the
# logs one after the other (never interleaved) and fail if any stage failed. Usage: side-by-side.sh NAME=CMD ...
set -uo pipefail
logs=.build/logs
mkdir -p "$logs"
names=() pids=()
for spec in "$@"; do
  name=${spec%%=*}
  names+=("$name")
  scripts/timed.sh "$name" bash -c "${spec#*=}" >"$logs/$name.log" 2>&1 &
  pids+=($!)
done
rc=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || rc=1
done
for name in "${names[@]}"; do
  echo "==> output of stage $name (also in $logs/$name.log)"
  cat "$logs/$name.log"
done
echo "==> side by side:"
for name in "${names[@]}"; do grep -h '^==> stage' "$logs/$name.log" | sed 's/^/    /'; done
exit $rc
