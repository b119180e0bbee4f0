"""The distributed mode's settings and helpers that need no running service (default test run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lantian.distributed import (
    COMPONENTS,
    START_MARK,
    Cluster,
    airflow_health,
    ancestors,
    day_range,
    descendants,
    describe_progress,
    environment,
    pid_alive,
    worker_ready,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LANTIAN_"))}
    return environment({"LANTIAN_HOME": str(tmp_path), "LANTIAN_API_PORT": "18123"}, base=base)


def test_env_file_wires_celery_postgres_and_redis(env: dict[str, str], tmp_path: Path) -> None:
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    pg = "postgresql://postgres@127.0.0.1:5432"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"{pg}/lantian_airflow"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{pg}/lantian_airflow"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert env["LANTIAN_WAREHOUSE_URL"] == f"{pg}/lantian_warehouse"
    assert env["LANTIAN_LANDING_INDEX_URL"] == f"{pg}/lantian_landing"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "default"
    # The execution API URL follows the API port, or every task would fail to report.
    assert env["AIRFLOW__API__PORT"] == "18123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18123/execution/"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    # Everything of this mode lives under LANTIAN_HOME.
    assert env["AIRFLOW_HOME"] == str(tmp_path / "distributed" / "airflow")
    assert env["LANTIAN_LANDING_DIR"] == str(tmp_path / "landing")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")


def test_airflow_home_is_never_inherited(tmp_path: Path) -> None:
    """The embedded mode (and tests) export their own AIRFLOW_HOME; the distributed mode must
    not pick it up and mix the two metadata databases' files."""
    env = environment({"LANTIAN_HOME": str(tmp_path), "AIRFLOW_HOME": "/elsewhere"})
    assert env["AIRFLOW_HOME"] == str(tmp_path / "distributed" / "airflow")


def test_visibility_timeout_outlasts_the_task_heartbeat_timeout(env: dict[str, str]) -> None:
    """A dead worker's task must be retried by the scheduler (heartbeat timeout) long before the
    broker would hand the same message to another worker (visibility timeout)."""
    visibility = int(env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"])
    heartbeat = int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"])
    assert visibility >= 3600 and heartbeat < visibility
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) <= 4  # a 2-core host


def test_celery_executor_loads_with_the_pinned_celery(env: dict[str, str]) -> None:
    """The Celery provider (3.26) imports ``celery.backends.database.retry``, which Celery 5.7
    removed: requirements pin Celery below 5.7, and the executor must import in this mode's
    environment with nothing patched."""
    code = (
        "import celery\n"
        "from airflow.providers.celery.executors import celery_executor_utils as u\n"
        "from airflow.providers.celery.executors.celery_executor import CeleryExecutor\n"
        "print(celery.__version__, callable(u.retry))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    version, retry_ok = proc.stdout.strip().splitlines()[-1].split()
    assert retry_ok == "True"
    lock = (REPO / "requirements" / "server.lock").read_text().splitlines()
    assert f"celery=={version}" in lock
    assert tuple(int(p) for p in version.split(".")[:2]) < (5, 7)


def test_airflow_health_reads_each_component() -> None:
    body = (
        '{"metadatabase": {"status": "healthy"}, "scheduler": {"status": "unhealthy", '
        '"latest_scheduler_heartbeat": null}, "triggerer": {"status": "healthy"}}'
    )
    assert airflow_health(body) == {
        "metadatabase": "healthy",
        "scheduler": "unhealthy",
        "triggerer": "healthy",
        "dag_processor": "unknown",
    }
    assert set(airflow_health("<html>502</html>").values()) == {"unknown"}


def test_worker_ready_only_counts_the_latest_start(tmp_path: Path) -> None:
    log = tmp_path / "worker-a.log"
    assert not worker_ready(log)
    log.write_text(f"{START_MARK}worker-a\nworker-a@vm ready.\n")
    assert worker_ready(log)
    with log.open("a") as handle:  # restarted: the old "ready." must not count
        handle.write(f"{START_MARK}worker-a\nconnecting to redis\n")
    assert not worker_ready(log)


def test_process_tree_helpers_find_our_processes(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        child = int(parent.stdout.readline())
        assert descendants(parent.pid) == [child]
        assert ancestors(child)[:2] == [parent.pid, os.getpid()]
        # A Cluster maps any process in a component's tree back to the component.
        cluster = Cluster({"LANTIAN_DIST_DIR": str(tmp_path)})
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "worker-b.pid").write_text(str(parent.pid))
        assert cluster.component_of(child) == "worker-b"
        assert cluster.component_of(os.getpid()) is None
        groups = cluster.kill("worker-b", signal.SIGKILL)
        assert groups == [parent.pid]  # the child shares its parent's group here
        parent.wait(10)
        deadline = time.monotonic() + 10
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_every_component_has_a_command() -> None:
    """common.sh knows each component Python expects, and refuses unknown ones."""
    script = REPO / "infra" / "distributed" / "common.sh"
    for component in COMPONENTS:
        proc = subprocess.run(
            ["bash", "-c", f'. "$1" && command_of {component} && echo "${{CMD[*]}}"', "x", script],
            env={**os.environ, "LANTIAN_REPO": str(REPO), "LANTIAN_HOME": "/nonexistent"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip()
    bad = subprocess.run(
        ["bash", "-c", '. "$1" && command_of nonsense', "x", script],
        env={**os.environ, "LANTIAN_REPO": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0 and "unknown component" in bad.stderr


def test_day_range_is_inclusive_and_crosses_months() -> None:
    assert day_range("2017-11-30", "2017-12-02") == ["2017-11-30", "2017-12-01", "2017-12-02"]
    assert day_range("2017-12-01", "2017-12-01") == ["2017-12-01"]
    with pytest.raises(ValueError):
        day_range("2017-12-02", "2017-12-01")


def test_progress_line_counts_finished_tasks_and_names_running_and_failed() -> None:
    tasks = {
        "resolve_day": {"state": "success"},
        "validate_cems": {"state": "running"},
        "validate_rsd": {"state": "failed"},
        "cems_rules": {"state": "upstream_failed"},
        "vapor_rules": {"state": None},
    }
    line = describe_progress("lantian_daily", tasks, 42.4)
    assert line == (
        "lantian_daily: 3/5 tasks done after 42 s; running validate_cems; "
        "FAILED cems_rules, validate_rsd"
    )
