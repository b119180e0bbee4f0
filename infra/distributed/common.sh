# Shared by start.sh, stop.sh and status.sh: the environment, the components and their commands.
# shellcheck shell=bash

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LANTIAN_REPO="${LANTIAN_REPO:-$(cd "$HERE/../.." && pwd)}"
set -a
# shellcheck source=distributed.env
. "$HERE/distributed.env"
if [ -f "$LANTIAN_DIST_DIR/secrets.env" ]; then . "$LANTIAN_DIST_DIR/secrets.env"; fi
set +a

RUN_DIR="$LANTIAN_DIST_DIR/run"
LOG_DIR="$LANTIAN_DIST_DIR/logs"
BIN="$LANTIAN_VENV/bin"
# In start order; stop.sh stops them in reverse (the scheduler before the workers it feeds).
COMPONENTS=(api-server scheduler dag-processor triggerer worker-a worker-b ingest-1 ingest-2)

pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }

alive() {
  local pid
  pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null
}

# The command line of one component, into the array CMD.
command_of() {
  case "$1" in
    api-server) CMD=("$BIN/airflow" api-server --host 127.0.0.1 --port "$LANTIAN_API_PORT") ;;
    # The scheduler runs no tasks with Celery: nothing of its own to serve logs for.
    scheduler) CMD=("$BIN/airflow" scheduler --skip-serve-logs) ;;
    dag-processor) CMD=("$BIN/airflow" dag-processor) ;;
    triggerer) CMD=("$BIN/airflow" triggerer) ;;
    # worker-a serves both queues; worker-b adds capacity for the GX-heavy validations only.
    worker-a) CMD=(env "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$LANTIAN_WORKER_A_LOG_PORT"
                   "$BIN/airflow" celery worker -q default,validation
                   -c "$LANTIAN_WORKER_A_CONCURRENCY" -H "worker-a@%h") ;;
    worker-b) CMD=(env "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$LANTIAN_WORKER_B_LOG_PORT"
                   "$BIN/airflow" celery worker -q validation
                   -c "$LANTIAN_WORKER_B_CONCURRENCY" -H "worker-b@%h") ;;
    # Two replicas, one PostgreSQL index, one landing folder (put a load balancer in front).
    ingest-1|ingest-2)
      local port_var="LANTIAN_INGEST_PORT_${1#ingest-}"
      CMD=("$BIN/lantian" ingest serve --db "$LANTIAN_LANDING_INDEX_URL"
           --landing "$LANTIAN_LANDING_DIR" --host 127.0.0.1 --port "${!port_var}" --workers 1) ;;
    *) echo "unknown component '$1' (known: ${COMPONENTS[*]})" >&2; return 1 ;;
  esac
}

# Components named on the command line, or all of them.
selected() {
  if [ "$#" -eq 0 ]; then printf '%s\n' "${COMPONENTS[@]}"; return; fi
  local c
  for c in "$@"; do command_of "$c" >/dev/null || exit 2; echo "$c"; done
}
