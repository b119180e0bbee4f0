"""The real lantian_daily DAG on the distributed mode: scheduler, two Celery workers, PG, Redis.

Expected values are computed by hand from the data each test lands: the test stack burns coal,
reports O2 at exactly the 9 % reference (so the O2-corrected mean equals the measured mean) and its
SO2 limit is 200 mg/m3; an hour exceeds only when its mean is strictly above the limit.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from dist_support import DEVICE_ID, ENTERPRISE_ID, SO2, STACK_ID, SUBDISTRICT_ID, DayPlan, land_day

from lantian.distributed import COMPONENTS, Cluster, http_status

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

DAG = "lantian_daily"
STREAMS = ("cems", "ambient", "vapor", "rsd")
RUN_TIMEOUT_S = 200


def _query(url: str, sql: str, **params: object) -> list[sa.Row]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def _explain(cluster: Cluster, run_id: str) -> str:
    """What to show when a run did not go as expected: task states and the workers' logs."""
    tasks = cluster.task_instances(DAG, run_id)
    lines = [
        f"{t}: {i['state']} (try {i['try_number']}, queue {i['queue']})"
        for t, i in sorted(tasks.items())
    ]
    for component in ("scheduler", "worker-a", "worker-b"):
        lines.append(f"--- {component} ---\n{cluster.log_tail(component, 15)}")
    return "\n".join(lines)


def _utc(day: str, beijing_hour: int) -> datetime:
    """The naive UTC instant the warehouse stores for a Beijing clock hour of ``day``."""
    return (
        datetime.fromisoformat(f"{day}T{beijing_hour:02d}:00:00+08:00")
        .astimezone(UTC)
        .replace(tzinfo=None)
    )


def test_daily_dag_runs_on_two_celery_workers(cluster: Cluster) -> None:
    plan = DayPlan("2017-12-01", {8: 150.0, 9: 250.0})
    assert land_day(cluster.env, plan) == 2
    for url in cluster.ingest_urls:  # both replicas serve the same index and landing folder
        assert http_status(f"{url}/readyz")[0] == 200

    run_id = cluster.trigger(DAG, {"day": plan.day})
    state = cluster.wait_for_run(DAG, run_id, RUN_TIMEOUT_S)
    assert state == "success", _explain(cluster, run_id)

    tasks = cluster.task_instances(DAG, run_id)
    assert {t for t, i in tasks.items() if i["state"] != "success"} == set()
    validations = {f"validate_{s}" for s in STREAMS}
    assert {"resolve_day", "sync_registry", "cems_rules"} | validations <= set(tasks)
    # GX-heavy tasks went through the "validation" queue, light ones through "default".
    assert {tasks[t]["queue"] for t in validations} == {"validation"}
    assert {tasks[t]["queue"] for t in ("resolve_day", "sync_registry", "cems_rules")} == {
        "default"
    }

    url = cluster.env["LANTIAN_WAREHOUSE_URL"]
    # 120 minute readings, each with an SO2 and an O2 value: 240 long-form rows, all valid.
    rows = _query(
        url,
        "SELECT count(*), count(DISTINCT (reading_id, code)), sum(CASE WHEN valid THEN 1 ELSE 0 END) "
        "FROM measurements WHERE day = :d",
        d=plan.day,
    )
    assert tuple(rows[0]) == (240, 240, 240)
    assert _query(url, "SELECT DISTINCT device_id FROM measurements")[0][0] == DEVICE_ID

    hourly = _query(
        url,
        "SELECT stack_id, pollutant, hour_start, n_valid_minutes, mean_corrected, valid "
        "FROM cems_hourly WHERE day = :d ORDER BY hour_start",
        d=plan.day,
    )
    assert [tuple(r) for r in hourly] == [
        (STACK_ID, SO2, _utc(plan.day, 8), 60, pytest.approx(150.0), True),
        (STACK_ID, SO2, _utc(plan.day, 9), 60, pytest.approx(250.0), True),
    ]

    found = _query(
        url,
        "SELECT stack_id, enterprise_id, subdistrict_id, pollutant, hour_start, hourly_mean, "
        "limit_value, n_readings FROM exceedances WHERE day = :d",
        d=plan.day,
    )
    assert [tuple(r) for r in found] == [
        (
            STACK_ID,
            ENTERPRISE_ID,
            SUBDISTRICT_ID,
            SO2,
            _utc(plan.day, 9),
            pytest.approx(250.0),
            pytest.approx(200.0),
            60,  # the hour's 60 minute readings (SO2 and O2 travel in the same reading)
        )
    ]

    partitions = _query(
        url, "SELECT stream, run_id, n_readings FROM partitions WHERE day = :d", d=plan.day
    )
    by_stream = {r.stream: r for r in partitions}
    assert sorted(by_stream) == sorted(STREAMS) and len(partitions) == len(STREAMS)
    assert by_stream["cems"].n_readings == 120
    assert {r.run_id for r in partitions} == {run_id}


def _blocked_validation_delete(url: str) -> list[sa.Row]:
    """Warehouse sessions waiting for a row lock in ``DELETE FROM validation_results``."""
    return _query(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query ILIKE 'DELETE FROM validation_results%'",
    )


def test_worker_killed_mid_task_leaves_no_duplicates(cluster: Cluster) -> None:
    """SIGKILL the worker running validate_cems while the task is between two of its writes;
    the scheduler retries it and the day ends up exactly as a clean run leaves it."""
    plan = DayPlan("2017-12-02", {6: 120.0, 7: 180.0, 8: 200.0, 9: 201.0, 10: 260.0, 11: 90.0})
    assert land_day(cluster.env, plan) == 6
    url = cluster.env["LANTIAN_WAREHOUSE_URL"]

    # Park validate_cems inside the warehouse: a row of its (day, stream) partition of
    # validation_results is locked, so the task's replace (DELETE, then INSERT) waits there,
    # after it has already replaced the day's measurements. Other streams' deletes match
    # other rows and pass.
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO validation_results (run_id, day, stream, suite, expectation) "
                "VALUES ('sentinel', :d, 'cems', 'sentinel', 'sentinel')"
            ),
            {"d": plan.day},
        )
    holder = engine.connect()
    try:
        holder.execute(
            sa.text("SELECT 1 FROM validation_results WHERE run_id = 'sentinel' FOR UPDATE")
        )
        run_id = cluster.trigger(DAG, {"day": plan.day})

        victim = None
        deadline = time.monotonic() + 150
        while victim is None:
            task = cluster.task_instances(DAG, run_id).get("validate_cems", {})
            if (
                task.get("state") == "running"
                and task.get("pid")
                and _blocked_validation_delete(url)
            ):
                victim = cluster.component_of(task["pid"])
            elif time.monotonic() > deadline:
                pytest.fail(
                    "validate_cems never reached its validation_results write\n"
                    + _explain(cluster, run_id)
                )
            else:
                time.sleep(0.3)
        assert victim in ("worker-a", "worker-b")
        partial = _query(url, "SELECT count(*) FROM measurements WHERE day = :d", d=plan.day)[0][0]
        print(f"killing {victim}; measurements of the day already written by try 1: {partial}")
        cluster.kill(victim)
    finally:
        holder.rollback()  # the killed task's session now fails and rolls back
        holder.close()
        engine.dispose()

    # A supervisor (systemd, Kubernetes) would restart the dead worker; so do we.
    cluster.start([victim], timeout_s=150)
    state = cluster.wait_for_run(DAG, run_id, RUN_TIMEOUT_S)
    assert state == "success", _explain(cluster, run_id)
    tasks = cluster.task_instances(DAG, run_id)
    assert tasks["validate_cems"]["try_number"] >= 2, tasks["validate_cems"]

    # 360 minute readings x 2 codes, each exactly once.
    rows = _query(
        url,
        "SELECT count(*), count(DISTINCT (reading_id, code)) FROM measurements WHERE day = :d",
        d=plan.day,
    )
    assert tuple(rows[0]) == (720, 720)
    # validation_results of the partition: only the successful try's rows, each expectation once,
    # and the sentinel the killed try could not delete is gone.
    results = _query(
        url,
        "SELECT run_id, expectation FROM validation_results WHERE day = :d AND stream = 'cems'",
        d=plan.day,
    )
    assert results and {r.run_id for r in results} == {run_id}
    assert len(results) == len({r.expectation for r in results})
    partitions = _query(
        url, "SELECT stream, run_id, n_readings FROM partitions WHERE day = :d", d=plan.day
    )
    assert sorted(r.stream for r in partitions) == sorted(STREAMS)
    assert [r.n_readings for r in partitions if r.stream == "cems"] == [360]
    # Strictly above 200 mg/m3: 09:00 (201) and 10:00 (260); 08:00 at exactly 200 is not.
    found = _query(
        url,
        "SELECT hour_start, hourly_mean FROM exceedances WHERE day = :d ORDER BY hour_start",
        d=plan.day,
    )
    assert [tuple(r) for r in found] == [
        (_utc(plan.day, 9), pytest.approx(201.0)),
        (_utc(plan.day, 10), pytest.approx(260.0)),
    ]
    hourly = _query(
        url,
        "SELECT count(*), count(DISTINCT hour_start) FROM cems_hourly WHERE day = :d",
        d=plan.day,
    )
    assert tuple(hourly[0]) == (6, 6)

    checks = {c.component: c.healthy for c in cluster.checks()}
    assert checks == {c: True for c in COMPONENTS}, checks
