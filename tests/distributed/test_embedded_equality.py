"""The distributed mode computes exactly what the embedded mode computes, for the same seed.

One simulated day (``agents.simulate``, seed 2017) is landed twice with ``lantian.direct_load``:
into an embedded home (SQLite landing index and warehouse) and into the cluster's shared landing
folder and PostgreSQL index. ``lantian_daily`` and then ``lantian_monthly_report`` run on each:
embedded through ``airflow dags test`` on SQLite (``lantian.airflow_local``, what ``lantian demo``
runs), distributed through the scheduler and the two Celery workers. Then every warehouse table is
compared row by row, the registry whole, the others on the day's or the month's partition, and
every derived figure of the day and of the month.

Columns left out of the comparison (``IGNORED``), and why:

- ``run_id`` (partitions, validation_results, derived_meta): the Airflow run that wrote the rows;
  the two modes' runs have different ids by design.
- ``built_at`` (partitions, derived_meta): when the step ran.
- ``landed_seq_max`` (partitions): the landing index's sequence number of the last batch read.
  The cluster's index also holds the batches other tests landed before, so the same batches
  get other numbers; what was read is compared through ``n_batches`` / ``n_readings`` instead.

Nothing else is ignored: floats must be equal to 1e-9 relative (the same pandas code on the same
inputs; only the storage differs), JSON texts are compared parsed, rows are compared sorted.
The day and month are chosen apart from the other tests' (2017-12), so the cluster's warehouse
holds nothing else for them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dist_support import write_registry

from lantian.distributed import Cluster
from lantian.settings import PLACE_OVERRIDES

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

SEED = 2017
START = date(2017, 11, 20)
DAY = START.isoformat()
MONTH = DAY[:7]
SCALE = "tiny"
RUN_TIMEOUT_S = 400
#: table -> columns not compared (see the module docstring for why)
IGNORED = {
    "partitions": {"run_id", "built_at", "landed_seq_max"},
    "validation_results": {"run_id"},
    "derived_meta": {"run_id", "built_at"},
}


def _canonical(value: Any) -> Any:
    """A value both databases return alike: JSON text parsed, datetimes naive, floats rounded
    for sorting only (the comparison itself uses :func:`_same`)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _sort_key(row: dict[str, Any]) -> str:
    def rounded(value: Any) -> Any:
        return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value

    return json.dumps({k: rounded(v) for k, v in row.items()}, sort_keys=True, default=str)


def table_rows(url: str, table: str, where: str) -> list[dict[str, Any]]:
    """The table's rows (selected by ``where``: ``day``, ``month`` or ``all``), compared columns
    only, each value canonical, sorted."""
    from enforcement.warehouse_schema import METADATA

    spec = METADATA.tables[table]
    columns = [c for c in spec.columns if c.name not in IGNORED.get(table, ())]
    query = sa.select(*columns)
    if where == "day":
        query = query.where(spec.c.day == DAY)
    elif where == "month":
        query = query.where(spec.c.part.in_([DAY, MONTH]))
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = [
                {k: _canonical(v) for k, v in row._mapping.items()} for row in conn.execute(query)
            ]
    finally:
        engine.dispose()
    return sorted(rows, key=_sort_key)


def _scope(table: str) -> str:
    from enforcement.warehouse_schema import METADATA, REGISTRY_TABLES

    if table in REGISTRY_TABLES:
        return "all"
    columns = METADATA.tables[table].columns
    if "day" in columns:
        return "day"
    if "part" in columns:
        return "month"
    return "all"


def _differences(table: str, embedded: list[dict], distributed: list[dict]) -> list[str]:
    if len(embedded) != len(distributed):
        return [f"{table}: {len(embedded)} rows embedded, {len(distributed)} distributed"]
    out = []
    for k, (a, b) in enumerate(zip(embedded, distributed, strict=True)):
        if a.keys() != b.keys():
            out.append(f"{table} row {k}: columns {sorted(a)} vs {sorted(b)}")
            continue
        bad = [c for c in a if not _same(a[c], b[c])]
        if bad:
            out.append(
                f"{table} row {k}: " + ", ".join(f"{c}={a[c]!r} vs {b[c]!r}" for c in bad[:4])
            )
        if len(out) >= 5:
            break
    return out


def _embedded_env(home: Path) -> dict[str, str]:
    """The embedded mode's Airflow environment for ``home`` (nothing of the cluster's)."""
    from lantian.airflow_local import airflow_env

    saved = {n: os.environ.pop(n, None) for n in ("LANTIAN_HOME", *PLACE_OVERRIDES)}
    os.environ["LANTIAN_HOME"] = str(home)
    try:
        env = airflow_env(home / "airflow")
    finally:
        os.environ.pop("LANTIAN_HOME")
        for n, v in saved.items():
            if v is not None:
                os.environ[n] = v
    for name in PLACE_OVERRIDES:
        env.pop(name, None)
    return {k: v for k, v in env.items() if not k.startswith("AIRFLOW__CELERY")}


def test_distributed_warehouse_equals_embedded(cluster: Cluster, tmp_path: Path) -> None:
    from agents.simulate.scenario import build_scenario
    from enforcement.warehouse_schema import METADATA
    from lantian.airflow_local import run_dag
    from lantian.direct_load import land_scenario

    scenario = build_scenario(seed=SEED, start=START, days=1, scale=SCALE)

    # --- embedded: SQLite warehouse and landing index under its own home, `airflow dags test`
    home = tmp_path / "embedded"
    (home / "registry").mkdir(parents=True)
    scenario.write_registry(home / "registry")
    landed = land_scenario(
        scenario, home / "landing", f"sqlite:///{home / 'landing-index.sqlite'}", batch_size=500
    )
    assert landed["total_readings"] > 0
    env = _embedded_env(home)
    run_dag("lantian_daily", {"day": DAY}, env=env)
    run_dag("lantian_monthly_report", {"month": MONTH}, env=env)
    embedded_url = f"sqlite:///{home / 'warehouse.sqlite'}"

    # --- distributed: the same registry and batches into the cluster's folder and PG index
    registry = Path(cluster.env["LANTIAN_REGISTRY_DIR"])
    try:
        shutil.rmtree(registry)
        scenario.write_registry(registry)
        again = land_scenario(
            scenario,
            cluster.env["LANTIAN_LANDING_DIR"],
            cluster.env["LANTIAN_LANDING_INDEX_URL"],
            batch_size=500,
        )
        assert again["total_readings"] == landed["total_readings"]
        cluster.run_dag("lantian_daily", {"day": DAY}, timeout_s=RUN_TIMEOUT_S)
        cluster.run_dag("lantian_monthly_report", {"month": MONTH}, timeout_s=RUN_TIMEOUT_S)
    finally:
        # the other tests' registry back (one enterprise, one stack), for runs after this one
        shutil.rmtree(registry, ignore_errors=True)
        write_registry(registry)
    distributed_url = cluster.env["LANTIAN_WAREHOUSE_URL"]

    problems: list[str] = []
    compared: dict[str, int] = {}
    for table in sorted(METADATA.tables):
        scope = _scope(table)
        embedded = table_rows(embedded_url, table, scope)
        distributed = table_rows(distributed_url, table, scope)
        problems += _differences(table, embedded, distributed)
        compared[table] = len(embedded)
    print(f"rows compared per table: {compared}")
    assert not problems, "\n".join(problems)

    # The comparison is not vacuous: the day's data, its rules and the month's figures are there.
    for table in ("measurements", "cems_hourly", "validation_results", "partitions", "derived"):
        assert compared[table] > 0, (table, compared)
    names = {r["name"] for r in table_rows(embedded_url, "derived_meta", "month")}
    assert len(names) >= 10, names
