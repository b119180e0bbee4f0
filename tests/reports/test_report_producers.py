"""The report reads what enforcement/*.py actually produces (their names, mapped by reports.data)."""

from __future__ import annotations

import pandas as pd

from enforcement.ambient import weekly_pm25_ranking
from enforcement.cems import transmission_monthly
from enforcement.sampling import agency_sampling, station_sampling
from enforcement.vapor import nozzle_alerts
from reports.data import ReportData, conform
from reports.sections import Context, alarm_runs, build_sections


def section(data: ReportData, key: str):
    sections = build_sections(conform(data), Context.for_month("2017-12"))
    return next(s for s in sections if s.key == key)


def rows_of(table) -> list[dict]:
    return [dict(zip(table.headers, row, strict=True)) for row in table.rows]


def test_monthly_transmission_rates_fill_the_transmission_table():
    daily = pd.DataFrame(
        {
            "device_id": ["D1", "D1", "D2", "D2"],
            "day": ["2017-12-01", "2017-12-02"] * 2,
            "received": [1440, 1440, 1440, 0],
            "valid": [1440, 1296, 1400, 0],
            "due": [1440] * 4,
        }
    )
    sec = section(ReportData(transmission=transmission_monthly(daily)), "transmission")
    rows = {r["设备编号"]: r for r in rows_of(sec.tables[0])}
    # D1: 2736 valid of 2880 due = 95 %; D2: 1400 of 2880 = 48.6 %, received 1440 of 2880 = 50 %
    assert rows["D1"]["有效传输率"] == 2736 / 2880 and rows["D1"]["是否达标"] == "是"
    assert rows["D2"]["传输率"] == 0.5 and rows["D2"]["是否达标"] == "否"
    assert abs(rows["D2"]["有效率"] - 1400 / 1440) < 1e-12
    assert "2 台在线监测设备中 1 台有效传输率低于 90%" in sec.summary


def test_nozzle_alert_days_collapse_to_one_row_per_nozzle():
    days = pd.DataFrame(
        {
            "gas_station_id": ["G1"] * 9,
            "nozzle_id": ["3"] * 9,
            "day": [f"2017-12-{d:02d}" for d in range(1, 10)],
            "status": ["pass"] + ["fail"] * 8,  # 8 failing days from the 2nd
        }
    )
    alerts = nozzle_alerts(days)
    runs = alarm_runs(alerts)
    assert runs.to_dict(orient="records") == [
        {
            "gas_station_id": "G1",
            "nozzle_id": "3",
            "consecutive_days": 8,
            "first_day": "2017-12-06",  # the 5th failing day: the warning
            "last_day": "2017-12-09",
            "level": "报警",  # the 7th failing day (8 Dec) raised it to an alarm
        }
    ]


def test_weekly_ranking_from_the_ambient_producer():
    daily = pd.DataFrame(
        {
            "subdistrict": ["甲街道", "乙街道", "丙街道"] * 7,
            "day": [f"2017-12-{d:02d}" for d in range(4, 11) for _ in range(3)],
            "pm25": [60.0, 80.0, 100.0] * 7,
        }
    )
    ranking = weekly_pm25_ranking(daily, area="subdistrict")
    sec = section(ReportData(weekly_ranking=ranking), "ranking")
    digest = next(t for t in sec.tables if not t.in_xlsx)
    assert [r[0] for r in digest.rows] == ["甲街道", "乙街道", "丙街道"]
    assert digest.rows[2][1] == "第3名（100）"
    assert "丙街道（1 周）" in sec.summary and "乙街道（1 周）" in sec.summary


def test_station_and_agency_sampling_share_one_table():
    stations = pd.DataFrame(
        {
            "gas_station_id": [f"G{i}" for i in range(10)],
            "name": ["站"] * 10,
            "subdistrict_id": ["S"] * 10,
        }
    )
    samples = pd.DataFrame(
        {
            "sample_id": ["s1"],
            "gas_station_id": ["G1"],
            "date": ["2017-12-05"],
            "product": ["92号汽油"],
            "sulfur_mg_kg": [6.0],
            "result": ["合格"],
        }
    )
    agencies = pd.DataFrame({"agency_id": ["A1", "A2", "A3", "A4", "A5", "A6"]})
    checks = pd.DataFrame(
        {
            "check_id": ["c1"],
            "agency_id": ["A1"],
            "date": ["2017-12-07"],
            "result": ["pass"],
            "note": [""],
        }
    )
    ratios = pd.concat(
        [
            station_sampling(samples, stations, ["2017-12"]),
            agency_sampling(checks, agencies, ["2017-12"]),
        ],
        ignore_index=True,
    )
    sec = section(ReportData(sampling_ratios=ratios), "sampling")
    rows = rows_of(sec.tables[0])
    assert [(r["类别"], r["抽检数"], r["总数"], r["是否达标"]) for r in rows] == [
        ("加油站油品抽检", 1, 10, "是"),  # 1 of 10 = 10 %: meets ">= 10 %"
        ("机动车检验机构抽查", 1, 6, "否"),  # 1 of 6 = 16.7 % < 20 %
    ]
