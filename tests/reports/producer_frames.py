"""Report frames made by the producers themselves (enforcement/, lantian.rules_monthly), so the
report meets the English keys and sentences they really write: case refusals and next actions,
alert transitions and their reasons, supervision reasons, device caveats, sampling and dustfall
reasons. A few frames whose producer needs a whole warehouse are written here in the producer's
column layout with its own codes (vapor status, remote-sensing quantities, tamper details).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.data import ReportData

MONTH = "2017-12"


def registry() -> dict[str, pd.DataFrame]:
    stacks = pd.DataFrame(
        {
            "stack_id": ["S1", "S2", "S3"],
            "enterprise_id": ["E1", "E2", "E3"],
            "name": ["1号锅炉排口", "2号窑炉排口", "3号锅炉排口"],
            "device_id": ["D1", "D2", "D3"],
        }
    )
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ["E1", "E2", "E3"],
            "name": ["郑州甲热力有限公司", "郑州乙建材有限公司", "郑州丙食品有限公司"],
            "subdistrict_id": ["SD1", "SD1", "SD2"],
        }
    )
    stations = pd.DataFrame({"station_id": ["ST1"], "device_id": ["M1"], "name": ["微站1"]})
    return {"stacks": stacks, "enterprises": enterprises, "stations": stations}


def exceedances() -> pd.DataFrame:
    hours = pd.to_datetime(["2017-12-05 07:00", "2017-12-06 07:00", "2017-12-07 03:00"], utc=True)
    return pd.DataFrame(
        {
            "exceedance_id": ["x1", "x2", "x3"],
            "stack_id": ["S1", "S2", "S3"],
            "enterprise_id": ["E1", "E2", "E3"],
            "pollutant": ["a21026", "a34013", "a21002"],
            "hour_start": hours,
            "day": ["2017-12-05", "2017-12-06", "2017-12-07"],
            "hourly_mean": [120.0, 40.0, 260.0],
            "limit_value": [100.0, 30.0, 200.0],
            # "standard; category; source" as lantian's stack limits write it
            "limit_source": [
                "GB 13271-2014; special; GB 13271-2014 table 3",
                "GB 13271-2014; new; GB 13271-2014 table 2 (recalled; override per permit)",
                "ZZ low-NOx-2018; low_nox_retrofit; "
                "Zhengzhou gas-boiler low-NOx retrofit requirement (2018)",
            ],
            "n_readings": [60, 60, 58],
        }
    )


def case_events() -> pd.DataFrame:
    rows = [
        # S1: fined and served, waiting for its re-inspection
        ("C1", "S1", "fine", "2017-12-05", 100000, "罚字1号"),
        ("C1", "S1", "correction_order_served", "2017-12-06", None, "改字1号"),
        ("C1", "S1", "fine", "2017-12-08", 50000, "罚字2号"),  # a second fine in the round
        # S2: an order before any fine, a re-inspection before any order, a resume without halt
        ("C2", "S2", "correction_order_served", "2017-12-06", None, "改字2号"),
        ("C2", "S2", "reinspection_failed", "2017-12-07", None, "查字2号"),
        ("C2", "S2", "resume", "2017-12-09", None, ""),
        # unreadable rows
        ("C3", "S9", "fine", "2017-12-10", 1000, "罚字3号"),  # unknown stack
        ("C4", "S3", "penalty", "2017-12-10", 1000, "罚字4号"),  # unknown event
        ("C5", "S3", "fine", "2017-12-11", -5, "罚字5号"),  # negative amount
        ("C1", "S1", "fine", "2017-12-05", 100000, "罚字1号"),  # duplicate
    ]
    return pd.DataFrame(
        rows, columns=["case_id", "stack_id", "event", "date", "amount_yuan", "document_no"]
    )


def rolling_aqi() -> pd.Series:
    """Rolling 24-h AQI: three days above 200 with a peak above 300 (orange), then clean air for
    two days (lifted)."""
    index = pd.date_range("2017-12-09 16:00", periods=24 * 7, freq="h", tz="UTC")
    values = np.full(len(index), 120.0)
    values[24 : 24 + 80] = 230.0
    values[24 + 40 : 24 + 48] = 320.0
    return pd.Series(values, index=index)


def producer_report_data() -> ReportData:
    from enforcement.penalties import check_events, open_cases
    from enforcement.sampling import failed_samples
    from enforcement.supervision import supervision_list
    from lantian.rules_monthly import (
        alert_frames,
        case_rows,
        device_quality,
        dustfall_frames,
        evidence_text,
    )

    reg = registry()
    ex = exceedances()
    events = case_events()
    _, refused = check_events(events, reg["stacks"])
    cases = case_rows(open_cases(ex, events, reg["stacks"]), reg, MONTH)
    episodes, transitions = alert_frames(rolling_aqi(), MONTH)
    rates = pd.DataFrame(
        {
            "device_id": ["D1", "D2", "D3"],
            "month": [MONTH] * 3,
            "due": [44640] * 3,
            "received": [44640, 40000, 44640],
            "valid": [44640, 35000, 44640],
            "rate": [1.0, 35000 / 44640, 1.0],
        }
    )
    supervision = supervision_list(ex, rates, reg["stacks"], reg["enterprises"], [MONTH])
    daily = pd.DataFrame(
        {
            "stream": ["cems", "ambient"],
            "device_id": ["D2", "M1"],
            "day": ["2017-12-01"] * 2,
            "due": [1440, 1440],
            "received": [1300, 1440],
            "valid": [1200, 1400],
        }
    )
    quality = device_quality(daily, reg)
    stations = pd.DataFrame(
        {"gas_station_id": ["G1"], "name": ["金水加油站"], "subdistrict_id": ["SD1"]}
    )
    samples = pd.DataFrame(
        {
            "sample_id": ["F1"],
            "gas_station_id": ["G1"],
            "date": ["2017-12-12"],
            "product": ["92#"],
            "sulfur_mg_kg": [14.0],
            "result": ["fail"],
        }
    )
    records = pd.DataFrame(
        {
            "sample_id": ["J1", "J2", "J3"],
            "site_id": ["P1", "P1", "P2"],
            "site_name": ["点位1", "点位1", "点位2"],
            "subdistrict_id": ["SD1", "SD1", "SD2"],
            "start_date": ["2017-12-01", "2017-12-20", "2017-12-01"],
            "end_date": ["2017-12-31", "2017-12-10", "2017-12-31"],
            "dustfall_t_km2": [8.0, 3.0, None],
            "note": ["", "", "罐破损"],
        }
    )
    sites, areas, invalid = dustfall_frames(records, MONTH)
    return ReportData(
        exceedances=ex.assign(
            stack_name=reg["stacks"]["name"], enterprise_name=reg["enterprises"]["name"]
        ),
        cases=cases,
        case_events_refused=refused,
        supervision=supervision,
        alerts=episodes,
        alert_transitions=transitions,
        quality=quality,
        sampling_failed=failed_samples(samples, stations),
        dustfall=sites,
        dustfall_subdistrict=areas,
        dustfall_invalid=invalid,
        aqi_daily=pd.DataFrame(
            {
                "day": ["2017-12-10", "2017-12-11"],
                "so2": [20.0, 25.0],
                "pm25": [180.0, 60.0],
                "iaqi_so2": [7, 9],
                "iaqi_pm25": [230, 82],
                "aqi": [230, 82],
                "category": ["heavily polluted", "good"],
                "category_zh": ["重度污染", "良"],
                "color": ["#99004C", "#FFFF00"],
                "primary_pollutants": [("PM2.5",), ("PM2.5",)],
                "exceeding_pollutants": [("PM2.5",), ()],
            }
        ),
        vapor_station_efficiency=pd.DataFrame(
            {
                "gas_station_id": ["G1", "G2", "G3"],
                "name": ["金水加油站", "花园路加油站", "文化路加油站"],
                "month": [MONTH] * 3,
                "n_refuellings": [900, 12, 0],
                "efficiency_estimate": [0.91, None, None],
                "status": ["pass", "insufficient", "no_monitor"],
                "met": [True, None, None],
            }
        ),
        rsd_high_emitter_runs=pd.DataFrame(
            {
                "plate": ["豫A12345", "豫A54321"],
                "pollutant": ["opacity_pct", "ringelmann"],
                "fuel_type": ["diesel", "diesel"],
                "gross_weight_t": [18.0, 2.5],
                "n_exceedances": [3, 2],
                "max_value": [45.0, 3.0],
                "limit": [30.0, 1.0],
                "first_seen": pd.to_datetime(["2017-12-02 01:00", "2017-12-03 02:00"], utc=True),
                "last_seen": pd.to_datetime(["2017-12-09 01:00", "2017-12-04 02:00"], utc=True),
                "authority": ["环保部门", "公安交管部门"],
            }
        ),
        rsd_high_emitters=pd.DataFrame(
            {
                "plate": ["豫A12345"],
                "fuel_type": ["diesel"],
                "gross_weight_t": [18.0],
                "weight_class": ["N3"],
                "pollutant": ["no_ppm、opacity_pct"],
                "n_exceedances": [3],
                "heavy_diesel": [True],
                "black_smoke": [False],
                "authority": ["环保部门"],
            }
        ),
        suspicions=pd.DataFrame(
            {
                "device_id": ["D1", "D2"],
                "stack_id": ["S1", "S2"],
                "enterprise_name": ["郑州甲热力有限公司", "郑州乙建材有限公司"],
                "pattern": ["flatline", "ratio_step"],
                "code": ["a21026", "a21026/a21002"],
                "first_seen": pd.to_datetime(["2017-12-03 00:00", "2017-12-04 00:00"], utc=True),
                "last_seen": pd.to_datetime(["2017-12-03 05:00", "2017-12-05 00:00"], utc=True),
                "statistic": [300.0, 2.4],
                "threshold": [240.0, 2.0],
                # the sentences validation.tamper writes for these two rules
                "detail": [
                    "a21026 held 35 for 300 valid minutes (evidence: first 200 of 300 readings)",
                    "median a21026/a21002 rose x2.40 at 2017-12-04T08:00:00+00:00 (9 sigma)",
                ],
                "evidence": [evidence_text(["r1", "r2", "r3", "r4"]), evidence_text(["r9"])],
            }
        ),
    )
