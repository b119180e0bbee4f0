"""Supervised issues, dustfall and refused case events: from the simulated bureau files, through
the registry folder and the monthly steps into the warehouse, and into the report.

The bureau files need at least four stacks, so this runs on the demo-scale registry (no device
data). Expected values are the simulator's truth (what it planted) and, for December 2017, worked
out by hand on the working calendar.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from tests.pipeline.conftest import MONTH, lantian_home

SEED = 2017
VERDICTS = {
    "on_time": "按时",
    "overdue_unpublished": "逾期未公开",
    "not_due": "未到期",
    "no_start": "无起算日期",
}


@pytest.fixture(scope="module")
def bureau(tmp_path_factory):
    from agents.simulate.registry import build_registry, write_registry
    from enforcement.warehouse import Warehouse
    from lantian import pipeline, rules_monthly, settings
    from lantian.direct_load import load_bureau_inputs

    home = tmp_path_factory.mktemp("bureau-report-home")
    registry = build_registry(SEED, date(2017, 12, 1), 3, "demo")
    with lantian_home(home):
        write_registry(registry, settings.registry_dir())
        truth = load_bureau_inputs(settings.registry_dir(), registry, MONTH, SEED)
        pipeline.sync_registry()
        for step in (
            rules_monthly.cases_month,
            rules_monthly.dustfall_month,
            rules_monthly.disclosure_month,
        ):
            step(MONTH)
    return truth, Warehouse(f"sqlite:///{home / 'warehouse.sqlite'}")


def _verdict(key: str) -> str:
    return f"逾期{key.split(':')[1]}日" if key.startswith("late:") else VERDICTS[key]


def test_each_planted_finding_in_its_list_with_its_deadline_verdict(bureau):
    from reports import disclosure
    from reports.data import load_report_data
    from reports.layouts import list_names

    truth, wh = bureau
    planted = truth["disclosure"]["findings"]
    data = load_report_data(wh, MONTH)
    stored = set(data.disclosure["finding_id"])
    assert stored == {k for k, v in planted.items() if v["in_report"]}
    findings = disclosure.normalise(data.disclosure)
    table = disclosure.deadline_table(findings, date(2017, 12, 31))
    blocks = disclosure.annex_blocks(findings)
    for index, rec in findings.iterrows():
        want = planted[rec["finding_id"]]
        got = table.loc[index]
        assert got["list_name"] == list_names()[want["list_kind"]]
        assert got["list_deadline"].isoformat() == want["list_deadline"]
        assert got["list_status"] == _verdict(want["list_verdict"]), rec["finding_id"]
        progress = got["progress_deadline"]
        assert (progress.isoformat() if progress else None) == want["progress_deadline"]
        assert got["progress_status"] == _verdict(want["progress_verdict"]), rec["finding_id"]
        # the finding is printed in its own list's annex 1-2 and annex 3 tables, in its issue
        for version in ("list", "progress"):
            block = next(
                b for b in blocks[f"{want['list_kind']}_{version}"] if b.issue == want["issue_no"]
            )
            assert any(want["name"] in row for row in block.rows), (rec["finding_id"], version)
    # by hand: found Fri 29 Dec 2017; 30-31 Dec weekend, 1 Jan 元旦 → 2 Jan, 3 Jan
    first = table[findings["found_date"] == date(2017, 12, 29)].iloc[0]
    assert first["list_deadline"] == date(2018, 1, 3) and first["list_status"] == "按时"
    # letter Fri 15 Dec + 15 = Sat 30 Dec → Sun 31 Dec, Mon 1 Jan 元旦 → Tue 2 Jan 2018
    rolled = table[findings["letter_date"] == date(2017, 12, 15)].iloc[0]
    assert rolled["progress_deadline"] == date(2018, 1, 2)
    assert rolled["progress_status"] == "按时" and rolled["list_status"] == "逾期1日"


def test_dustfall_per_site_and_subdistrict(bureau):
    from reports.data import load_report_data

    truth, wh = bureau
    planted = truth["dustfall"]
    data = load_report_data(wh, MONTH)
    sites = data.dustfall.set_index("site_id")
    assert set(sites.index) == set(planted["sites"])  # the broken jar has no monthly value
    for site, want in planted["sites"].items():
        assert sites.loc[site, "dustfall"] == pytest.approx(want["dustfall_30d"], abs=1e-9)
        assert bool(sites.loc[site, "exceeds"]) is (not want["meets"]), site
    # last month's jar (twice the limit) does not count; the replaced jar is pooled by time
    assert sites.loc[planted["above_alone"], "n_samples"] == 1
    assert sites.loc[planted["pooled_site"], "n_samples"] == 2
    areas = data.dustfall_subdistrict.set_index("subdistrict_id")
    for sub, want in planted["subdistricts"].items():
        assert areas.loc[sub, "dustfall"] == pytest.approx(want["dustfall_30d"], abs=1e-9)
        assert bool(areas.loc[sub, "exceeds"]) is (not want["meets"]), sub
    # a site above the limit in a subdistrict whose mean meets it, and a subdistrict above
    alone = planted["sites"][planted["above_alone"]]["subdistrict_id"]
    assert not planted["sites"][planted["above_alone"]]["meets"]
    assert planted["subdistricts"][alone]["meets"]
    assert any(not v["meets"] for v in planted["subdistricts"].values())
    assert list(data.dustfall_invalid["sample_id"]) == planted["invalid_samples"]


def test_the_report_prints_them(bureau, tmp_path):
    from openpyxl import load_workbook

    from reports.data import load_report_data
    from reports.monthly import build_report

    truth, wh = bureau
    paths = build_report(MONTH, load_report_data(wh, MONTH), tmp_path)
    wb = load_workbook(paths.xlsx, read_only=True)
    for sheet in (
        "超标汇总", "挂牌督办", "未采纳的案件事件", "有效传输率不足", "街道有效传输率",
        "预警级别变化", "遥感连续超标记录", "重点运输企业国四占比", "降尘", "街道降尘",
        "降尘无效样品", "突出问题督办企业名单", "散乱污问题企业查处整改情况", "公开时限",
    ):  # fmt: skip
        assert sheet in wb.sheetnames, sheet
    refused = [r for r in wb["未采纳的案件事件"].iter_rows(values_only=True)][1:]
    assert {r[0] for r in refused} == {e["case_id"] for e in truth["cases"]["refused"]}
    quality = [r for r in wb["数据质量"].iter_rows(values_only=True)]
    assert any("dustfall_records.csv" in str(r) for r in quality)
    assert "街道均值超过限值的" in paths.summary
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", "-layout", str(paths.pdf), "-"], capture_output=True, text=True
        ).stdout
        assert "逾期1日" in text and "逾期未公开" in text
        assert "不在登记名录中" in text  # the refusal reason is printed, in Chinese
        assert "无效降尘样品" in text


def test_the_dag_runs_every_monthly_step():
    from lantian import rules_monthly

    tree = ast.parse(
        (Path(__file__).parents[2] / "dags" / "lantian_monthly_report.py").read_text(
            encoding="utf-8"
        )
    )
    steps = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MONTHLY_STEPS"
    )
    assert list(steps) == [step.__name__ for step in rules_monthly.MONTHLY_STEPS]
