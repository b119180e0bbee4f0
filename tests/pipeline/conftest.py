"""One pipeline run over the tiny simulated district, shared by the tests of this folder.

The tiny scenario (2 days from 2017-12-01) is built once, landed with ``lantian.direct_load``
and taken through the steps in the order the DAGs run them — registry, ``validate_day`` per
stream and day, ``cems_day``, the daily rules, the monthly rules — directly, not through Airflow
(the integrator's end-to-end test covers Airflow), with ``LANTIAN_HOME`` in a temporary folder.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from lantian.settings import PLACE_OVERRIDES

START = date(2017, 12, 1)
DAYS = ("2017-12-01", "2017-12-02")
MONTH = "2017-12"
STREAMS = ("cems", "ambient", "vapor", "rsd")


@contextlib.contextmanager
def lantian_home(home: Path) -> Iterator[None]:
    """``LANTIAN_HOME`` pointed at ``home`` for the steps called inside (restored after)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANTIAN_HOME", str(home))
        for name in PLACE_OVERRIDES:
            mp.delenv(name, raising=False)
        yield


@dataclass
class PipelineRun:
    """What the run produced: the warehouse, and what each step said."""

    home: Path
    scenario: Any
    landed: dict[str, Any]
    validated: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    critical: dict[tuple[str, str], str] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def warehouse(self):
        from enforcement.warehouse import Warehouse

        return Warehouse(f"sqlite:///{self.home / 'warehouse.sqlite'}")

    def figure(self, name: str, part: str = MONTH):
        return self.warehouse.read_derived(name, part)


def run_days(
    days: tuple[str, ...], run: PipelineRun, run_id: str = "test", *, docs: bool = True
) -> None:
    """Validation, CEMS rules and the daily rules of each day, in the DAG's order."""
    from lantian import pipeline, rules_daily
    from validation.run import CriticalValidationError

    for day in days:
        for stream in STREAMS:
            try:
                run.validated[(stream, day)] = pipeline.validate_day(
                    stream, day, run_id=run_id, docs=docs
                )
            except CriticalValidationError as exc:
                # the partition is stored before the check raises; the DAG task would fail here
                run.critical[(stream, day)] = str(exc)
        run.steps[f"cems {day}"] = pipeline.cems_day(day)
        for step in (rules_daily.ambient_day, rules_daily.vapor_day, rules_daily.rsd_day):
            run.steps[f"{step.__name__} {day}"] = step(day, run_id=run_id)
        run.steps[f"transmission_day {day}"] = rules_daily.transmission_day(day, run_id=run_id)


@pytest.fixture(scope="session")
def tiny_scenario():
    from agents.simulate.scenario import build_scenario

    return build_scenario(seed=2017, start=START, days=len(DAYS), scale="tiny")


@pytest.fixture(scope="session")
def tiny_run(tiny_scenario, tmp_path_factory) -> PipelineRun:
    from lantian import pipeline, settings
    from lantian.direct_load import land_scenario
    from lantian.rules_monthly import monthly_rules

    home = tmp_path_factory.mktemp("lantian-home")
    clock = time.monotonic()
    with lantian_home(home):
        tiny_scenario.write_registry(settings.registry_dir())
        landed = land_scenario(tiny_scenario, settings.landing_root(), settings.landing_index_url())
        run = PipelineRun(home, tiny_scenario, landed)
        run.seconds["land"] = time.monotonic() - clock
        run.steps["registry"] = pipeline.sync_registry()
        run_days(DAYS, run)
        run.seconds["daily"] = time.monotonic() - clock - run.seconds["land"]
        run.steps["monthly"] = monthly_rules(MONTH, run_id="test")
        run.seconds["total"] = time.monotonic() - clock
    return run
