#!/usr/bin/env bash
# Run independent stages of `make test` side by side, each timed by timed.sh into its own log, then print the
# logs one after the other (never interleaved) and fail if any stage failed. Usage: side-by-side.sh NAME=CMD ...
# A stage still running after SIDE_BY_SIDE_DEADLINE seconds (default 4200) is stopped with its whole process
# group, so a hang ends as a failure whose log is printed, well inside CI's own limit.
set -uo pipefail
logs=.build/logs
deadline=${SIDE_BY_SIDE_DEADLINE:-4200}
mkdir -p "$logs"
names=() pids=()
for spec in "$@"; do
  name=${spec%%=*}
  names+=("$name")
  scripts/timed.sh "$name" timeout --kill-after=60 "$deadline" bash -c "${spec#*=}" >"$logs/$name.log" 2>&1 &
  pids+=($!)
done
rc=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; stage_rc=$?
  if [ "$stage_rc" -eq 124 ] || [ "$stage_rc" -eq 137 ]; then
    echo "==> stage ${names[$i]} was stopped after ${deadline} s (SIDE_BY_SIDE_DEADLINE); its log so far is above" \
      >>"$logs/${names[$i]}.log"
  fi
  [ "$stage_rc" -eq 0 ] || rc=1
done
for name in "${names[@]}"; do
  echo "==> output of stage $name (also in $logs/$name.log)"
  cat "$logs/$name.log"
done
echo "==> side by side:"
for name in "${names[@]}"; do grep -h '^==> stage' "$logs/$name.log" | sed 's/^/    /'; done
exit $rc
