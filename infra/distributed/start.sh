#!/usr/bin/env bash
# Start the distributed mode on this host (docs/distributed.md).
#
#   infra/distributed/start.sh                 # everything: checks, databases, migrations, processes
#   infra/distributed/start.sh worker-b        # (re)start only the named components
#
# Each process runs in its own session, its pid in $LANTIAN_DIST_DIR/run/<name>.pid and its output
# in $LANTIAN_DIST_DIR/logs/<name>.log. Settings: infra/distributed/distributed.env.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

START_TIMEOUT_S="${LANTIAN_START_TIMEOUT_S:-240}"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$AIRFLOW_HOME" "$LANTIAN_LANDING_DIR" "$LANTIAN_REGISTRY_DIR" "$LANTIAN_OUT_DIR"

if [ ! -x "$BIN/airflow" ]; then
  echo "start: $BIN/airflow not found; run 'make setup' first" >&2
  exit 1
fi

# Secrets every Airflow process must share (tasks' tokens are signed by the scheduler and checked
# by the API server); generated once, never committed.
if [ ! -f "$LANTIAN_DIST_DIR/secrets.env" ]; then
  umask 077
  {
    echo "AIRFLOW__API_AUTH__JWT_SECRET=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(48))')"
    echo "AIRFLOW__API__SECRET_KEY=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(32))')"
    echo "AIRFLOW__CORE__FERNET_KEY=$("$BIN/python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
  } > "$LANTIAN_DIST_DIR/secrets.env"
  umask 022
  set -a; . "$LANTIAN_DIST_DIR/secrets.env"; set +a
fi

mapfile -t WANTED < <(selected "$@")

if [ "$#" -eq 0 ]; then
  echo ">> checking PostgreSQL and Redis, creating databases if absent"
  "$BIN/python" -m lantian.distributed preflight
  echo ">> airflow db migrate ($LANTIAN_AIRFLOW_DB)"
  "$BIN/airflow" db migrate >"$LOG_DIR/db-migrate.log" 2>&1 \
    || { echo "start: airflow db migrate failed, see $LOG_DIR/db-migrate.log" >&2; tail -20 "$LOG_DIR/db-migrate.log" >&2; exit 1; }
  echo ">> warehouse migrations ($LANTIAN_WAREHOUSE_DB)"
  "$BIN/python" -m lantian.migrate upgrade --url "$LANTIAN_WAREHOUSE_URL"
fi

for component in "${WANTED[@]}"; do
  if alive "$component"; then
    echo "   $component already running (pid $(pid_of "$component"))"
    continue
  fi
  command_of "$component"
  echo "--- start.sh: starting $component at $(date -u +%FT%TZ): ${CMD[*]}" >>"$LOG_DIR/$component.log"
  # setsid: a process group of its own, so stop.sh (and a test's SIGKILL) reach its children.
  setsid "${CMD[@]}" >>"$LOG_DIR/$component.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$component.pid"
  echo "   started $component (pid $!)"
  if [ "$component" = ingest-1 ]; then
    # The first replica creates the landing index tables; the second must not race it.
    "$BIN/python" -m lantian.distributed wait-ready ingest-1 --timeout "$START_TIMEOUT_S"
  fi
done

echo ">> waiting until ${WANTED[*]} report healthy (at most ${START_TIMEOUT_S} s)"
"$BIN/python" -m lantian.distributed wait-ready "${WANTED[@]}" --timeout "$START_TIMEOUT_S" \
  || { echo "start: not healthy; logs in $LOG_DIR; stop with infra/distributed/stop.sh" >&2; exit 1; }
echo ">> up. Airflow UI http://127.0.0.1:$LANTIAN_API_PORT (admin, password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
echo "   ingest http://127.0.0.1:$LANTIAN_INGEST_PORT_1 and http://127.0.0.1:$LANTIAN_INGEST_PORT_2; status: infra/distributed/status.sh"
