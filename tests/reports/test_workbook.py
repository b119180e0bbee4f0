"""The workbook read back with openpyxl: exact rows, Chinese headers, layouts, deadlines, empties."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from reports.data import ReportData, conform
from reports.excel import write_xlsx
from reports.sections import Context, build_sections, hour_label, sources_table
from tests.reports.report_frames import hand_report_data, utc

EXCEEDANCE_HEADERS = [
    "企业",
    "排口",
    "污染物",
    "时段",
    "小时均值（折算，mg/m³）",
    "标准限值（mg/m³）",
    "依据",
    "数据条数",
]


def workbook(data: ReportData, tmp_path: Path, month: str = "2017-12", as_of: date | None = None):
    ctx = Context.for_month(month, as_of)
    sections = build_sections(data, ctx)
    path = write_xlsx(
        sections, sources_table(sections), tmp_path / "r.xlsx", title="t", notes=["n"]
    )
    return load_workbook(path), sections


@pytest.fixture(scope="module")
def december(tmp_path_factory):
    """The hand-built data's December workbook, built once for the tests that only read it."""
    return workbook(hand_report_data(), tmp_path_factory.mktemp("december"))[0]


@pytest.fixture(scope="module")
def october(tmp_path_factory):
    return workbook(hand_report_data(), tmp_path_factory.mktemp("october"), month="2017-10")[0]


def values(ws) -> list[list[object]]:
    return [list(row) for row in ws.iter_rows(values_only=True)]


def test_hour_labels_are_beijing_hours_start_to_end():
    assert hour_label(utc("2017-12-05 07:00")) == "2017-12-05 15:00-16:00"
    assert hour_label(utc("2017-12-05 15:00")) == "2017-12-05 23:00-24:00"
    assert hour_label(utc("2017-12-01 16:00")) == "2017-12-02 00:00-01:00"
    assert hour_label(pd.Timestamp("2017-12-01 16:00")) == "2017-12-02 00:00-01:00"  # naive = UTC
    assert hour_label(None) == ""


def test_sheet_one_has_exactly_the_exceedances_given(december):
    ws = december.worksheets[0]
    assert ws.title == "超标情况"
    rows = values(ws)
    assert rows[0] == EXCEEDANCE_HEADERS
    assert rows[1:] == [
        ["郑州乙食品有限公司", "S2", "颗粒物", "2017-12-02 00:00-01:00", 35.5, 30, "GB 13271-2014 表2", 60],
        ["郑州甲热力有限公司", "1号锅炉排口", "二氧化硫", "2017-12-05 15:00-16:00", 123.456, 100, "GB 13271-2014 表3", 58],
        ["郑州甲热力有限公司", "1号锅炉排口", "氮氧化物", "2017-12-05 23:00-24:00", 210, 200, "GB 13271-2014 表3", 46],
    ]  # fmt: skip
    assert ws.freeze_panes == "A2"
    assert ws["E2"].number_format == "0.00" and ws["H2"].number_format == "0"
    assert ws["A1"].font.b and ws["A1"].fill.fgColor.rgb.endswith("DCE6F1")
    # widths follow the text: the enterprise column is wider than the count column
    assert ws.column_dimensions["A"].width > ws.column_dimensions["H"].width >= 6


def test_evidence_sheet_keeps_the_reading_ids(december):
    rows = values(december["超标证据"])
    assert rows[0][:2] == ["超标编号", "企业"]
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id["x-pm"][rows[0].index("原始数据编号")] == "r4; r5; r6"


def test_annex_sheets_have_the_plans_exact_column_order(october):
    wb = october
    expected = {
        "突出问题督办企业名单": ["序号", "市", "县(区)", "污染源名称", "主要问题"],
        "散乱污问题企业名单": ["序号", "市", "县(区)", "污染源名称", "主要问题"],
        "大气专项治理任务突出问题清单": ["序号", "市", "县(区)", "专项方案", "任务要求", "存在问题"],
        "突出问题督办企业查处整改情况": [
            "序号", "市", "县（区）", "污染源名称", "主要问题", "查处情况", "整改（进展）情况", "整改期限",
        ],
        "散乱污问题企业查处整改情况": [
            "序号", "市", "县（区）", "污染源名称", "主要问题", "查处情况", "整改（进展）情况", "整改期限",
        ],
        "大气专项治理任务突出问题整改情况": [
            "序号", "市", "县（区）", "专项方案", "任务要求", "存在问题", "整改（进展）情况", "整改期限",
        ],
    }  # fmt: skip
    for sheet, headers in expected.items():
        rows = values(wb[sheet])
        assert rows[1] == headers, sheet
        assert rows[0][0].endswith("（第3期）"), rows[0]
    key_rows = values(wb["突出问题督办企业查处整改情况"])[2:]
    assert key_rows == [
        ["1", "郑州市", "金水区", "郑州丁铸造厂", "熔炼工序未安装除尘设施", "已责令停产", "整改中", "2017-11-15"],
        ["2", "郑州市", "金水区", "郑州丙化工厂", "在线监测数据超标", "已立案，罚款10万元", "已完成整改", "2017-10-31"],
    ]  # fmt: skip


def test_deadline_sheet_puts_the_national_day_deadline_after_the_holiday(october):
    rows = values(october["公开时限"])
    header = rows[0]
    assert header[:7] == [
        "清单",
        "期次",
        "污染源名称",
        "环保部公开日",
        "清单公开时限",
        "清单公开日",
        "清单公开是否按时",
    ]
    record = {r[2]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    bing = record[
        "郑州丙化工厂"
    ]  # found on Sat 30 Sep 2017, the last working day before the holiday
    assert bing["环保部公开日"] == "2017-09-30"
    assert bing["清单公开时限"] == "2017-10-10"
    assert bing["清单公开是否按时"] == "按时"
    assert bing["查处整改公开时限"] == "2017-10-16"
    assert record["郑州丁铸造厂"]["清单公开是否按时"] == "逾期1日"
    assert record["燃煤锅炉综合整治"]["清单公开是否按时"] == "逾期未公开"


def test_deadlines_not_yet_due_when_judged_early(hand_data, tmp_path):
    wb, _ = workbook(hand_data, tmp_path, month="2017-10", as_of=date(2017, 10, 9))
    rows = values(wb["公开时限"])
    header = rows[0]
    special = next(r for r in rows[1:] if r[2] == "燃煤锅炉综合整治")
    assert special[header.index("清单公开是否按时")] == "未到期"


@pytest.mark.parametrize("empty", [None, "frames"])
def test_empty_sections_say_none_this_month_and_why(empty, tmp_path):
    if empty is None:
        data = ReportData()
    else:
        data = ReportData(**{name: pd.DataFrame() for name in ReportData.field_names()})
    wb, sections = workbook(data, tmp_path)
    assert wb.sheetnames[0] == "超标情况"
    assert wb.sheetnames[-1] == "说明"
    first = values(wb["超标情况"])
    assert first[0] == EXCEEDANCE_HEADERS
    text = first[1][0]
    assert text.startswith("本月无：")
    if empty is None:
        assert "未取得该项数据" in text
    else:
        assert "均未超过排口许可限值" in text
    annex = values(wb["突出问题督办企业名单"])
    assert annex[0][0] == "郑州市突出问题督办企业名单" and annex[1][0] == "序号"
    assert annex[2][0].startswith("本月无")
    assert all(s.is_empty for s in sections)


def test_extra_and_missing_columns_do_not_break_a_section(tmp_path):
    transmission = pd.DataFrame(
        {"device_id": ["D9"], "effective_rate": [0.5], "firmware": ["v2"]}  # most columns absent
    )
    alerts = pd.DataFrame({"level": ["橙色"], "new_thing": [3.25]})
    wb, _ = workbook(ReportData(transmission=transmission, alerts=alerts), tmp_path)
    assert values(wb["传输有效率"]) == [["设备编号", "有效传输率"], ["D9", 0.5]]
    assert wb["传输有效率"]["B2"].number_format == "0.0%"
    # an open section shows an unknown column under its own name
    assert values(wb["重污染预警"]) == [["预警级别", "new_thing"], ["橙色", 3.25]]


def test_sources_sheet_names_every_rule_file(december):
    rows = values(december["说明"])
    assert rows[0] == ["项目", "取值", "数据文件", "来源", "可信度"]
    files = {r[2] for r in rows[1:] if r[2]}
    assert "schemas/data/hj212_codes.csv" in files
    assert "schemas/data/thresholds.toml [stack.effective_transmission_min]" in files
    assert "schemas/data/cn_workdays_2017_2018.csv" in files
    transmission = next(r for r in rows if r[0] == "有效传输率达标线")
    assert transmission[1] == "90%" and transmission[4] == "攻坚方案原文（plan）"
    calendar_row = next(r for r in rows if r[0] == "工作日历（节假日与调休上班日）")
    assert (
        "国办发明电〔2016〕17号" in calendar_row[3] and "国办发明电〔2017〕12号" in calendar_row[3]
    )


def test_a_frame_with_none_of_the_expected_columns_does_not_crash_any_section(tmp_path):
    for name in ReportData.field_names():
        data = ReportData(**{name: pd.DataFrame({"foo": [1, 2]})})
        sections = build_sections(conform(data), Context.for_month("2017-12"))
        assert len(sections) == 15, name


def test_exceedances_without_a_count_count_their_reading_ids(tmp_path):
    frame = pd.DataFrame(
        {
            "stack_id": ["S1"],
            "pollutant": ["a21026"],
            "hour_start": [utc("2017-12-05 07:00")],
            "reading_ids": [["r1", "r2", "r3"]],
        }
    )
    wb, _ = workbook(ReportData(exceedances=frame), tmp_path)
    rows = values(wb["超标情况"])
    # no enterprise given: blank; the stack falls back to its id; the count is the ids given
    assert rows[1] == [None, "S1", "二氧化硫", "2017-12-05 15:00-16:00", None, None, None, 3]
