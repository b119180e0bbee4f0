"""Publication deadlines on the working calendar, and the plan's annex layouts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from reports import disclosure
from reports.layouts import annexes, deadlines
from tests.reports.report_frames import findings

PLAN = (
    Path(__file__).resolve().parents[3] / "shared" / "seed" / "jinshui-2017-autumn-winter-plan.txt"
)


def rules():
    r = deadlines()
    return r["list_publication"], r["progress_publication"]


def test_the_two_deadlines_are_two_working_days_and_fifteen_calendar_days():
    list_rule, progress_rule = rules()
    assert (list_rule.value, list_rule.unit, list_rule.counted_from) == (
        2,
        "working_days",
        "found_date",
    )
    assert (progress_rule.value, progress_rule.unit) == (15, "calendar_days")
    assert progress_rule.counted_from == "letter_date"
    assert progress_rule.mark == list_rule.mark == "plan"


def test_list_published_on_the_last_day_before_national_day_is_due_after_the_holiday():
    list_rule, _ = rules()
    # found on the make-up Saturday 30 Sep 2017: Mon 9 Oct is day 1, Tue 10 Oct day 2
    assert disclosure.deadline_for(date(2017, 9, 30), list_rule) == date(2017, 10, 10)
    on_time = disclosure.check_deadline(
        date(2017, 9, 30), date(2017, 10, 10), list_rule, date(2017, 10, 31)
    )
    assert (on_time.deadline, on_time.status, on_time.met) == (date(2017, 10, 10), "按时", True)
    late = disclosure.check_deadline(
        date(2017, 9, 29), date(2017, 10, 10), list_rule, date(2017, 10, 31)
    )
    assert (late.deadline, late.status, late.met) == (date(2017, 10, 9), "逾期1日", False)


def test_fifteen_days_are_calendar_days_moved_off_a_rest_day():
    _, progress_rule = rules()
    # 30 Sep + 15 = Sun 15 Oct, a rest day: the period ends Mon 16 Oct
    assert disclosure.deadline_for(date(2017, 9, 30), progress_rule) == date(2017, 10, 16)
    # 29 Sep + 15 = Sat 14 Oct: also moved to Mon 16 Oct
    assert disclosure.deadline_for(date(2017, 9, 29), progress_rule) == date(2017, 10, 16)
    # 1 Dec 2017 + 15 = Sat 16 Dec -> Mon 18 Dec (calendar days: not 22 Dec as 15 working days)
    assert disclosure.deadline_for(date(2017, 12, 1), progress_rule) == date(2017, 12, 18)


def test_unpublished_items_are_not_due_or_overdue_depending_on_the_day_judged():
    list_rule, _ = rules()
    not_due = disclosure.check_deadline(date(2017, 9, 30), None, list_rule, date(2017, 10, 10))
    assert (not_due.status, not_due.met) == ("未到期", None)
    overdue = disclosure.check_deadline(date(2017, 9, 30), None, list_rule, date(2017, 10, 11))
    assert (overdue.status, overdue.met) == ("逾期未公开", False)
    no_start = disclosure.check_deadline(None, date(2017, 10, 1), list_rule, date(2017, 10, 11))
    assert (no_start.status, no_start.met) == ("无起算日期", None)
    off_calendar = disclosure.check_deadline(date(2019, 6, 3), None, list_rule, date(2019, 6, 30))
    assert off_calendar.status == "日历未覆盖"


def test_deadline_table_for_hand_built_findings():
    table = disclosure.deadline_table(disclosure.normalise(findings()), as_of=date(2017, 10, 31))
    assert (
        table["list_deadline"].tolist()
        == [date(2017, 10, 10), date(2017, 10, 9)] + [date(2017, 10, 10)] * 2
    )
    assert table["list_status"].tolist() == ["按时", "逾期1日", "逾期1日", "逾期未公开"]
    assert table["progress_deadline"].tolist() == [date(2017, 10, 16)] * 4
    assert table["progress_status"].tolist() == ["按时", "按时", "逾期未公开", "逾期未公开"]
    # the Chinese list name given by a producer is understood
    assert table["list_name"].tolist()[2] == "散乱污问题企业"


def test_normalise_fills_city_county_and_parses_dates():
    out = disclosure.normalise(findings().drop(columns=["issue_no"]))
    assert set(out["city"]) == {"郑州市"} and set(out["county"]) == {"金水区"}
    assert out["list_kind"].tolist() == [
        "key_enterprise",
        "key_enterprise",
        "scattered",
        "special_task",
    ]
    assert out.loc[0, "found_date"] == date(2017, 9, 30)
    assert out.loc[3, "published_date"] is None
    assert set(out["issue_no"]) == {""}


def test_annex_blocks_follow_the_plan_layout_and_number_rows_per_issue():
    frame = disclosure.normalise(findings())
    extra = frame.iloc[[0]].assign(issue_no="4", source_name="郑州戊厂")
    blocks = disclosure.annex_blocks(pd.concat([frame, extra], ignore_index=True))
    key_list = blocks["key_enterprise_list"]
    assert [b.title for b in key_list] == [
        "郑州市突出问题督办企业名单（第3期）",
        "郑州市突出问题督办企业名单（第4期）",
    ]
    # found 29 Sep sorts before found 30 Sep
    assert key_list[0].rows == [
        ["1", "郑州市", "金水区", "郑州丁铸造厂", "熔炼工序未安装除尘设施"],
        ["2", "郑州市", "金水区", "郑州丙化工厂", "在线监测数据超标"],
    ]
    assert key_list[1].rows == [["1", "郑州市", "金水区", "郑州戊厂", "在线监测数据超标"]]
    special = blocks["special_task_progress"][0]
    assert special.annex.headers == [
        "序号", "市", "县（区）", "专项方案", "任务要求", "存在问题", "整改（进展）情况", "整改期限",
    ]  # fmt: skip
    assert special.rows == [
        ["1", "郑州市", "金水区", "燃煤锅炉综合整治", "10月底前完成燃煤小锅炉清零", "3台燃煤锅炉未拆除", "已拆除2台", "2017-10-31"]
    ]  # fmt: skip
    assert blocks["scattered_progress"][0].title == "郑州市散乱污问题企业查处整改情况（第3期）"


def test_month_relevance_keeps_open_items_from_earlier_months():
    frame = disclosure.normalise(findings())
    november = disclosure.relevant_to_month(frame, date(2017, 11, 1), date(2017, 11, 30))
    # the two items never published stay in every later report until published
    assert november["source_name"].tolist() == ["金水区某家具作坊", ""]
    october = disclosure.relevant_to_month(frame, date(2017, 10, 1), date(2017, 10, 31))
    assert len(october) == 4


@pytest.mark.skipif(
    not PLAN.exists(), reason="the bureau's plan (shared/seed) is not beside the repo"
)
def test_every_annex_header_line_is_printed_in_the_plan_exactly():
    text = PLAN.read_text(encoding="utf-8")
    for annex in annexes():
        assert "\t".join(annex.headers) in text, annex.key
        title = annex.title.split("{city}")[1].split("（第")[0]
        assert title in text.replace(" ", ""), annex.key


def test_unknown_list_kinds_are_reported():
    frame = disclosure.normalise(
        findings().assign(list_kind=["key_enterprise", "odd", "odd", "special_task"])
    )
    assert disclosure.unknown_lists(frame) == ["odd"]
