"""Fixtures of the distributed-mode tests: a private cluster on this machine's PostgreSQL and Redis.

Each test session gets its own databases (``lantian_t<hex>_{airflow,warehouse,landing}``), its own
Redis key prefix, free ports, and temporary LANTIAN_HOME / AIRFLOW_HOME; everything is stopped,
dropped and deleted at the end (set LANTIAN_KEEP_TEST_HOME=1 to keep the logs).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dist_support import (
    PG_URL,
    REDIS_URL,
    services_missing,
    wait_for_validation_code,
    write_registry,
)

from lantian.distributed import (
    Cluster,
    DistributedError,
    clear_broker,
    database_names,
    drop_databases,
    environment,
    private_overrides,
)

# --- the cluster ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """Airflow (api-server, scheduler, dag-processor, triggerer, two Celery workers) and two
    ingest replicas, started by infra/distributed/start.sh on private databases and ports."""
    reason = services_missing()
    if reason:
        pytest.skip(reason)
    wait_for_validation_code()
    home = Path(tempfile.mkdtemp(prefix="lantian-dist-test-"))
    overrides = private_overrides(home, PG_URL, REDIS_URL, "test")
    overrides.update(
        {
            # A killed worker's task is declared dead after 20 s instead of minutes.
            "LANTIAN_TASK_HEARTBEAT_TIMEOUT_S": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "LANTIAN_START_TIMEOUT_S": "150",
            "LANTIAN_STOP_TIMEOUT_S": "20",
        }
    )
    # Never inherit the developer's own distributed settings or Airflow home.
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    base = {k: v for k, v in base.items() if not k.startswith("LANTIAN_")}
    env = environment(overrides, base=base)
    instance = Cluster(env)
    try:
        write_registry(Path(env["LANTIAN_REGISTRY_DIR"]))
        instance.start(timeout_s=300)
        yield instance
    finally:
        try:
            instance.stop(timeout_s=120)
        except DistributedError as exc:
            print(f"stop failed: {exc}")
        drop_databases(PG_URL, database_names(env))
        clear_broker(REDIS_URL, env["LANTIAN_REDIS_PREFIX"])
        if not os.environ.get("LANTIAN_KEEP_TEST_HOME"):
            shutil.rmtree(home, ignore_errors=True)
