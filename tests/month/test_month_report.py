"""The bureau's workbook for the simulated month lists exactly what the simulator planted.

The month's run (``conftest.month_run``) is reported with ``lantian.pipeline.monthly_report``
and the workbook is read back as the bureau reads it (sheet by sheet, Chinese headers).
Exceedances, high emitters, nozzle warnings and alarms and the unmonitored station are checked
against the simulator's truth; the alerts, the penalty ledger and the suspicions against the
stored figures that ``test_month_run.py`` checks against truth — the chain ends at the planted
facts either way.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from schemas.reading import BEIJING
from tests.month.conftest import MONTH

pytestmark = [pytest.mark.timeout(2400), pytest.mark.month]


@pytest.fixture(scope="module")
def workbook(month_run, tmp_path_factory) -> dict[str, pd.DataFrame]:
    from lantian.pipeline import monthly_report
    from tests.pipeline.conftest import lantian_home

    out = tmp_path_factory.mktemp("month-report")
    with lantian_home(month_run.home):
        monthly_report(MONTH, out=out)
    for kind in ("xlsx", "pdf", "html"):
        assert (out / f"lantian-report-{MONTH}.{kind}").stat().st_size > 0, kind
    return pd.read_excel(out / f"lantian-report-{MONTH}.xlsx", sheet_name=None, dtype=str)


def _hour_label(moment: str) -> str:
    return pd.Timestamp(moment).tz_convert(BEIJING).strftime("%Y-%m-%d %H:00")


def test_exceedance_sheet_is_the_planted_hours(workbook, month_run, month_scenario):
    from reports.vocabulary import pollutant

    wh = month_run.warehouse
    stacks = wh.read("stacks").set_index("stack_id")
    enterprises = wh.read("enterprises").set_index("enterprise_id")["name"]
    expected = Counter()
    for e in month_scenario.truth.exceedances:
        stack = stacks.loc[e["stack_id"]]
        expected[
            (
                enterprises[stack["enterprise_id"]],
                stack["name"],
                pollutant(e["pollutant"]),
                _hour_label(e["hour_start"]),
            )
        ] += 1
    sheet = workbook["超标情况"]
    got = Counter(
        zip(sheet["企业"], sheet["排口"], sheet["污染物"], sheet["时段"].str[:16], strict=True)
    )
    assert got == expected
    # the summary sheet adds up to the same hours per enterprise, stack and pollutant
    summary = workbook["超标汇总"]
    per_key = Counter()
    for (ent, stack, pol, _), n in expected.items():
        per_key[(ent, stack, pol)] += n
    assert {
        (r["企业"], r["排口"], r["污染物"]): int(r["超标小时数"]) for _, r in summary.iterrows()
    } == dict(per_key)


def test_vapor_sheets_name_the_planted_nozzles_and_station(workbook, month_scenario):
    from schemas.rules import threshold
    from tests.month.test_month_run import _expected_runs

    warning, alarm = int(threshold("vapor.warning_days")), int(threshold("vapor.alarm_days"))
    peak: dict[tuple[str, str], int] = {}
    for (gas, nozzle), runs in _expected_runs(month_scenario).items():
        longest = max((run for _, run in runs), default=0)
        level = "报警" if longest >= alarm else ("预警" if longest >= warning else "")
        if level:
            peak[(gas, nozzle)] = level
    sheet = workbook["油气回收报警"]
    got = {(r["加油站编号"], r["油枪"].zfill(2)): r["预警级别"] for _, r in sheet.iterrows()}
    assert got == peak
    assert {n for _, n in peak} == {d["nozzle"] for d in month_scenario.truth.nozzle_drift}
    missing = workbook["未装在线监控加油站"]
    assert list(missing["加油站编号"]) == month_scenario.truth.unmonitored_large_stations


def test_remote_sensing_sheet_is_the_planted_high_emitters(workbook, month_scenario):
    authority = {"environment_bureau": "环保部门", "traffic_police": "公安交管部门"}
    sheet = workbook["遥感高排放车"].set_index("车牌号")
    planted = month_scenario.truth.high_emitters
    assert sorted(sheet.index) == sorted(h["plate"] for h in planted)
    for h in planted:
        routed = {authority[r] for routes in h["routes"].values() for r in routes}
        assert set(sheet.loc[h["plate"], "移交部门"].split("、")) == routed, h["plate"]


def test_alerts_ledger_and_suspicions_are_the_stored_figures(workbook, month_run):
    alerts = month_run.figure("alerts")
    sheet = workbook["重污染预警"]
    starts = pd.to_datetime(alerts["start"], utc=True).dt.tz_convert(BEIJING)
    assert list(sheet["开始时间"]) == list(starts.dt.strftime("%Y-%m-%d %H:%M"))
    assert list(sheet["预警级别"]) == list(alerts["level_zh"])
    ledger = month_run.figure("penalty_ledger")
    book = workbook["按日计罚"]
    assert sorted(zip(book["案件编号"], book["日历天数"].astype(int), strict=True)) == sorted(
        zip(ledger["case_id"], ledger["calendar_days"].astype(int), strict=True)
    )
    suspicions = month_run.figure("suspicions")
    tamper = workbook["疑似数据造假"]
    assert len(tamper) == len(suspicions) and len(tamper) > 0
    assert set(tamper["设备编号"]) == set(suspicions["device_id"])
