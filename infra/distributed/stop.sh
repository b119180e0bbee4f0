#!/usr/bin/env bash
# Stop the distributed mode (or the named components): SIGTERM to each process group, then SIGKILL
# after LANTIAN_STOP_TIMEOUT_S (default 60; a Celery worker finishes its running tasks first).
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

STOP_TIMEOUT_S="${LANTIAN_STOP_TIMEOUT_S:-60}"
mapfile -t WANTED < <(selected "$@")

# The scheduler first (nothing new is queued while the workers drain), then reverse start order.
ORDER=(scheduler)
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  [ "${COMPONENTS[$i]}" = scheduler ] || ORDER+=("${COMPONENTS[$i]}")
done

for component in "${ORDER[@]}"; do
  [[ " ${WANTED[*]} " == *" $component "* ]] || continue
  pid="$(pid_of "$component")"
  if [ -z "$pid" ]; then continue; fi
  if alive "$component"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$((STOP_TIMEOUT_S * 2))"); do alive "$component" || break; sleep 0.5; done
    if alive "$component"; then
      echo "   $component did not stop in ${STOP_TIMEOUT_S} s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    echo "   stopped $component (pid $pid)"
  fi
  # Children that outlived their leader (uvicorn or Celery pool processes) share its group.
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN_DIR/$component.pid"
done
