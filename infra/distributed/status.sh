#!/usr/bin/env bash
# Each component of the distributed mode: process alive, and healthy (Airflow heartbeats from the
# API's /api/v2/monitor/health, Celery workers connected, ingest /readyz). Exit 1 if any is not.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"
exec "$BIN/python" -m lantian.distributed status
