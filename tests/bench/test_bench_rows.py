"""Rows as results.json keeps them (bench.common.normalise_row) and the month extrapolation of
bench/scale_month.py, on figures given here (no pipeline run: that is the benchmark's job)."""

from __future__ import annotations

import pytest

from bench.common import NO_BASELINE, check_row, format_table, normalise_row, row
from bench.scale_month import MONTH_DAYS, Stage, Stages, embedded_rows, month_estimate


def test_a_row_without_target_has_no_verdict() -> None:
    fixed, notes = normalise_row(
        {
            "name": "fixed cost",
            "value": 0.4,
            "unit": "s",
            "baseline": None,
            "ratio": None,
            "target": None,
            "met": True,
        }  # fmt: skip
    )
    assert fixed["met"] is None
    assert fixed["baseline_note"] == NO_BASELINE
    assert any("without a target" in n for n in notes)
    assert any("no baseline" in n for n in notes)
    assert check_row(fixed) == []


def test_a_reasoned_missing_baseline_is_kept_and_not_reported() -> None:
    item = row("load generator CPU", 6.6, "%", baseline=None, target=None, met=None,
               baseline_note="n/a: the client's own cost, shown for context")  # fmt: skip
    fixed, notes = normalise_row(item)
    assert fixed["baseline_note"].startswith("n/a: the client's own cost")
    assert notes == []
    table = format_table([dict(fixed, benchmark="x")])
    assert "n/a" in table.splitlines()[2] and "the client's own cost" in table


def test_ratio_is_filled_when_left_out() -> None:
    fixed, _ = normalise_row(
        {
            "name": "s",
            "value": 3.0,
            "unit": "s",
            "baseline": 2.0,
            "ratio": None,
            "target": 4.0,
            "met": True,
        }  # fmt: skip
    )
    assert fixed["ratio"] == 1.5 and fixed["met"] is True


def _stages(**seconds: float) -> Stages:
    fixed = {"registry", "report"}
    stages = Stages(progress=lambda _: None)
    for name, value in seconds.items():
        stages.stages[name] = Stage(name, value, 100.0 + value, per_day=name not in fixed, runs=1)
    return stages


def test_month_is_extrapolated_linearly_except_fixed_stages() -> None:
    stages = _stages(simulate=10.0, land=20.0, registry=3.0, validate=40.0, report=15.0)
    estimate = month_estimate(stages, days=2)
    factor = MONTH_DAYS / 2
    assert estimate == pytest.approx(
        {
            "simulate": 10 * factor,
            "land": 20 * factor,
            "registry": 3.0,
            "validate": 40 * factor,
            "report": 15.0,
        }  # fmt: skip
    )


def test_embedded_rows_name_the_method_and_obey_the_row_shape() -> None:
    stages = _stages(simulate=10.0, land=20.0, registry=3.0, validate=40.0, report=15.0)
    info = {"days": 2, "scale": "district", "devices": 374, "children_peak_mb": 0.0}
    rows = embedded_rows(stages, info)
    assert all(check_row(r) == [] for r in rows)
    month = next(r for r in rows if "month of" in r["name"])
    assert "extrapolated linearly in days from 2 measured day(s)" in month["name"]
    expected_min = (3.0 + 15.0 + (10 + 20 + 40) * MONTH_DAYS / 2) / 60
    assert month["value"] == pytest.approx(expected_min, abs=0.05)
    assert month["baseline"] == pytest.approx(88.0 / 60, abs=0.05)
    validate = next(r for r in rows if "stage validate" in r["name"])
    assert validate["value"] == 20.0 and "per day" in validate["name"]  # 40 s over 2 days
    peak = next(r for r in rows if "peak RSS" in r["name"] and "over all" in r["name"])
    assert peak["value"] == 140.0 and "highest in validate" in peak["name"]
    full = embedded_rows(stages, dict(info, days=MONTH_DAYS))
    assert any("month of 31 days end to end, measured" in r["name"] for r in full)


def test_arg_option_reads_json_values_else_text() -> None:
    from bench.__main__ import parse_args_option

    assert parse_args_option(["days=31", "celery=false", "scale=demo"]) == {
        "days": 31,
        "celery": False,
        "scale": "demo",
    }
    with pytest.raises(ValueError):
        parse_args_option(["days"])
