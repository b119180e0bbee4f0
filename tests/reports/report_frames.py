"""Hand-built report frames: few rows, each with a value worked out by hand in the tests."""

from __future__ import annotations

from datetime import date

import pandas as pd

from reports.data import ReportData


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def exceedances() -> pd.DataFrame:
    """Three exceedance hours given out of time order, one with an extra column."""
    return pd.DataFrame(
        {
            "exceedance_id": ["x-so2", "x-nox", "x-pm"],
            "stack_id": ["S1", "S1", "S2"],
            "stack_name": ["1号锅炉排口", "1号锅炉排口", None],  # S2 has no name: falls back to id
            "enterprise_id": ["E1", "E1", "E2"],
            "enterprise_name": ["郑州甲热力有限公司", "郑州甲热力有限公司", "郑州乙食品有限公司"],
            "subdistrict": ["丰产路街道", "丰产路街道", "丰产路街道"],
            "pollutant": ["a21026", "a21002", "a34013"],
            # 07:00Z = 15:00 Beijing; 15:00Z = 23:00 Beijing; 16:00Z on the 1st = 00:00 on the 2nd
            "hour_start": [
                utc("2017-12-05 07:00"),
                utc("2017-12-05 15:00"),
                utc("2017-12-01 16:00"),
            ],
            "hourly_mean": [123.456, 210.0, 35.5],
            "limit_value": [100.0, 200.0, 30.0],
            "limit_source": ["GB 13271-2014 表3", "GB 13271-2014 表3", "GB 13271-2014 表2"],
            "n_readings": [58, 46, 60],
            "reading_ids": [["r1", "r2"], ["r3"], ["r4", "r5", "r6"]],
            "an_extra_column": [1, 2, 3],
        }
    )


def findings() -> pd.DataFrame:
    """Inspection findings around National Day 2017 (for a September/October report)."""
    return pd.DataFrame(
        {
            "list_kind": ["key_enterprise", "key_enterprise", "散乱污问题企业", "special_task"],
            "issue_no": [3, 3, 3, 3],
            "source_name": ["郑州丙化工厂", "郑州丁铸造厂", "金水区某家具作坊", ""],
            "special_plan": ["", "", "", "燃煤锅炉综合整治"],
            "task_requirement": ["", "", "", "10月底前完成燃煤小锅炉清零"],
            "problem": [
                "在线监测数据超标",
                "熔炼工序未安装除尘设施",
                "露天喷漆",
                "3台燃煤锅炉未拆除",
            ],
            "investigation": ["已立案，罚款10万元", "已责令停产", "已取缔", ""],
            "rectification": ["已完成整改", "整改中", "已两断三清", "已拆除2台"],
            "rectify_by": ["2017-10-31", "2017-11-15", "2017-10-20", "2017-10-31"],
            # Sat 30 Sep 2017 was the last working day before the holiday (a make-up workday)
            "found_date": ["2017-09-30", "2017-09-29", "2017-09-30", "2017-09-30"],
            "published_date": ["2017-10-10", "2017-10-10", "2017-10-11", None],
            "letter_date": ["2017-09-30", "2017-09-29", "2017-09-30", "2017-09-30"],
            "progress_published_date": ["2017-10-16", "2017-10-13", None, None],
        }
    )


def hand_report_data() -> ReportData:
    return ReportData(
        exceedances=exceedances(),
        cems_hourly=pd.DataFrame(
            {
                "stack_id": ["S1"] * 3,
                "pollutant": ["a21026"] * 3,
                "hour_start": [utc(f"2017-12-05 0{h}:00") for h in (6, 7, 8)],
                "mean_corrected": [80.0, 123.456, 90.0],
                "valid": [True, True, False],
            }
        ),
        transmission=pd.DataFrame(
            {
                "device_id": ["D1", "D2"],
                "owner": ["郑州甲热力有限公司", "郑州乙食品有限公司"],
                "subdistrict": ["丰产路街道", "丰产路街道"],
                "month": ["2017-12", "2017-12"],
                "due": [44640, 44640],
                "received": [44640, 40176],
                "valid": [44640, 36158],
                "transmission_rate": [1.0, 0.9],
                "validity_rate": [1.0, 0.9],
                "effective_rate": [1.0, 0.81],
                "compliant": [True, False],
            }
        ),
        aqi_daily=pd.DataFrame(
            {
                "date": [date(2017, 12, d) for d in (1, 2, 3)],
                "aqi": [45, 160, 305],
                "category": ["优", "中度污染", "严重污染"],
                "primary": ["", "PM2.5", "PM2.5"],
            }
        ),
        cases=pd.DataFrame(),  # ran, found nothing
        disclosure=findings(),
    )
