"""Every DAG file loads without import errors, without work at parse time, and wires what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = (
    "pandas",
    "great_expectations",
    "openpyxl",
    "matplotlib",
    "fastapi",
    "enforcement",
    "validation",
)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"lantian_daily", "lantian_monthly_report"} <= set(dagbag.dag_ids)


def test_daily_wiring(dagbag):
    dag = dagbag.dags["lantian_daily"]
    ids = set(dag.task_dict)
    assert {
        "resolve_day",
        "sync_registry",
        "validate_cems",
        "validate_ambient",
        "cems_rules",
    } <= ids
    assert "validate_cems" in dag.task_dict["cems_rules"].upstream_task_ids
    assert dag.task_dict["validate_cems"].queue == "validation"
    assert dag.timetable.__class__.__name__ == "CronDataIntervalTimetable"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parse_does_no_heavy_work(path):
    """Parsing a DAG file must not import pandas, GX, SQLAlchemy ORM work or report libraries."""
    code = (
        "import sys, runpy\n"
        f"runpy.run_path({str(path)!r})\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('heavy:' + ','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip().splitlines()[-1] == "heavy:", f"{path.name} imports {proc.stdout}"
