"""The whole path once, for real: simulated loggers on ptys → lantian-agent (pyserial) → lantian ingest
serve (uvicorn) → Airflow `dags test` on SQLite (GX validation, hourly means, exceedances) → the monthly
report. Exact numbers: readings emitted = landed = validated (+ quarantined), and the exceedances found
are exactly the hours the simulator planted, each traceable to its raw frames."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import openpyxl
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from lantian.demo import run_demo

    home = tmp_path_factory.mktemp("e2e") / "home"
    old = os.environ.get("LANTIAN_HOME")
    messages: list[str] = []
    summary = run_demo(home, seed=2017, days=1, scale="tiny", progress=messages.append)
    yield summary, home, messages
    if old is None:
        os.environ.pop("LANTIAN_HOME", None)
    else:
        os.environ["LANTIAN_HOME"] = old


def test_every_emitted_reading_lands_exactly_once(demo):
    from agents.simulate.scenario import build_scenario
    from lantian import settings
    from lantian.demo import landed_reading_ids

    summary, _home, messages = demo
    scenario = build_scenario(seed=2017, days=1, scale="tiny")
    expected = set().union(*(scenario.expected_readings(d) for d in scenario.device_ids()))
    landed = landed_reading_ids(settings.landing_index_url(), settings.landing_root())
    assert landed == expected
    assert summary.readings_expected == summary.readings_landed == len(expected) > 5000
    assert any("[3/4] Airflow lantian_daily" in m for m in messages)


def test_every_landed_reading_is_validated_or_quarantined(demo):
    from lantian.pipeline import warehouse

    summary, _home, _ = demo
    wh = warehouse()
    kept: set[str] = set()
    for table in ("measurements", "refuellings", "tank_pressure", "rsd_passes"):
        kept |= set(wh.read(table, day="2017-12-01")["reading_id"])
    quarantined = set(wh.read("quarantine", day="2017-12-01")["reading_id"])
    assert len(kept | quarantined) == summary.readings_landed
    assert summary.readings_validated == len(kept)
    results = wh.read("validation_results", day="2017-12-01")
    assert set(results["stream"]) == {"cems", "ambient", "vapor", "rsd"}
    assert results["element_count"].sum() > 0


def test_exceedances_are_exactly_the_planted_hours_with_evidence(demo):
    from ingest.landing import LandingIndex
    from lantian import settings
    from lantian.pipeline import warehouse

    summary, _home, _ = demo
    assert summary.exceedances_planted, "the tiny scenario must plant exceedances"
    assert summary.exceedances_match
    found = warehouse().read("exceedances", day="2017-12-01")
    assert len(found) == len(summary.exceedances_planted)
    index = LandingIndex(settings.landing_index_url(), settings.landing_root())
    raw_hashes = {}
    for _entry, batch in index.iter_batches():
        for reading in batch["readings"]:
            raw_hashes[reading["id"]] = hashlib.sha256(reading["raw"].encode()).hexdigest()
    for row in found.itertuples():
        assert row.n_readings == len(row.reading_ids) >= 45
        assert row.hourly_mean > row.limit_value
        assert sorted({raw_hashes[r] for r in row.reading_ids}) == sorted(row.raw_sha256s)


def test_report_lists_one_row_per_exceedance(demo):
    summary, _home, _ = demo
    workbook = openpyxl.load_workbook(Path(summary.report["xlsx"]))
    sheet = workbook.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["企业", "排口", "污染物", "时段"] and header[-1] == "数据条数"
    rows = [r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0]]
    assert len(rows) == len(summary.exceedances_found)
    counts = sorted(r[-1] for r in rows)
    assert counts == sorted(e["n_readings"] for e in summary.exceedances_found)
    assert {"pdf", "html"} <= set(summary.report)
