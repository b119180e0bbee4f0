"""One pipeline run over a whole simulated month (December 2017), shared by this folder's tests.

The ``month`` scale (agents/simulate/registry.py) is the tiny district with the four stacks the
bureau's simulated case events need; its plan (agents/simulate/plan.py) plants, over 31 days,
exceedances every few days on two stacks, a nozzle that warns, one that alarms and recovers,
one out of range all month, a zero-pressure day and a tank-pressure alarm day, three
heavy-pollution episodes, smoking trucks, a station that copies another's particulate series
and a stack that fakes a too-smooth day. The bureau's files of the month (case events, fuel
samples ...) are simulated from the planted exceedances (``lantian.direct_load.load_bureau_inputs``).

The scenario is landed with ``lantian.direct_load`` (no HTTP, no Airflow: the end-to-end test
covers those) and taken through the steps in the DAGs' order — registry, ``validate_day`` per
stream and day, ``cems_day``, the daily rules, the monthly rules — as tests/pipeline/conftest.py
does for two days. GX Data Docs are not rendered (``validate_day(docs=False)``): they cost half a
second a partition and nothing here reads them.

The run is built once per session (the tests of this folder share it); the wall and CPU time of
each stage is printed with ``-s`` and kept in ``run.seconds``. For debugging a test,
``LANTIAN_MONTH_HOME=<folder>`` keeps the run's home there and, when that folder already holds a
finished run (``month-run.json``), reuses it instead of running the month again.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.pipeline.conftest import PipelineRun, lantian_home, run_days

SEED = 2017
START = date(2017, 12, 1)
N_DAYS = 31
MONTH = "2017-12"
DAYS = tuple((START + timedelta(days=i)).isoformat() for i in range(N_DAYS))


@pytest.fixture(scope="session")
def month_scenario():
    from agents.simulate.scenario import build_scenario

    return build_scenario(seed=SEED, start=START, days=N_DAYS, scale="month")


@pytest.fixture(scope="session")
def month_run(month_scenario, tmp_path_factory) -> PipelineRun:
    from lantian import pipeline, settings
    from lantian.direct_load import land_scenario, load_bureau_inputs
    from lantian.rules_monthly import monthly_rules

    kept = os.environ.get("LANTIAN_MONTH_HOME")
    home = Path(kept) if kept else tmp_path_factory.mktemp("lantian-month")
    marker = home / "month-run.json"
    seconds: dict[str, float] = {}
    clock, cpu = time.monotonic(), time.process_time()

    def lap(name: str) -> None:
        nonlocal clock, cpu
        now, now_cpu = time.monotonic(), time.process_time()
        seconds[name] = now - clock
        seconds[f"{name} cpu"] = now_cpu - cpu
        clock, cpu = now, now_cpu

    month_scenario.truth  # noqa: B018 — computed once here, so the stages below time only themselves
    lap("truth")
    if kept and marker.exists():
        saved = json.loads(marker.read_text())
        run = PipelineRun(home, month_scenario, saved["landed"])
        run.steps, run.seconds = saved["steps"], saved["seconds"]
        run.critical = saved["critical"]
        run.validated = {tuple(k.split("|")): v for k, v in saved["validated"].items()}
        return run
    home.mkdir(parents=True, exist_ok=True)
    with lantian_home(home):
        month_scenario.write_registry(settings.registry_dir())
        bureau = load_bureau_inputs(settings.registry_dir(), month_scenario, MONTH, SEED)
        landed = land_scenario(
            month_scenario, settings.landing_root(), settings.landing_index_url()
        )
        run = PipelineRun(home, month_scenario, landed)
        run.steps["bureau_truth"] = bureau
        lap("land")
        run.steps["registry"] = pipeline.sync_registry()
        run_days(DAYS, run, "month", docs=False)
        lap("daily")
        run.steps["monthly"] = monthly_rules(MONTH, run_id="month")
        lap("monthly")
    seconds["total"] = sum(v for k, v in seconds.items() if not k.endswith("cpu"))
    seconds["total cpu"] = sum(v for k, v in seconds.items() if k.endswith("cpu"))
    run.seconds = seconds
    print(
        "\nsimulated month: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
        + f"; {landed['total_readings']} readings landed"
    )
    if kept:
        saved = {
            "landed": landed, "steps": run.steps, "seconds": seconds, "critical": run.critical,
            "validated": {"|".join(k): v for k, v in run.validated.items()},
        }  # fmt: skip
        marker.write_text(json.dumps(saved, default=str))
    return run
