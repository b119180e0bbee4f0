"""A synthetic :class:`~reports.data.ReportData` of a whole district-month, deterministic from a seed.

For the report benchmark and the visual check of the PDF: realistic sizes (40 stacks with hourly
means for three pollutants, 300 micro-stations, 17 subdistricts, about 100 gas stations with 8
nozzles each) and realistic shapes (a few stacks exceed, some devices transmit poorly, a heavy
pollution episode mid-month). It is not the device simulator: no readings, only report frames.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from reports.data import ReportData

SUBDISTRICTS = (
    "经八路街道", "花园路街道", "人民路街道", "杜岭街道", "大石桥街道", "南阳路街道",
    "南阳新村街道", "文化路街道", "丰产路街道", "东风路街道", "北林路街道", "未来路街道",
    "凤凰台街道", "兴达路街道", "国基路街道", "杨金路街道", "丰庆路街道",
)  # fmt: skip
POLLUTANTS = {"a34013": 30.0, "a21026": 100.0, "a21002": 150.0}  # code -> typical limit
INDUSTRIES = ("热力", "食品", "印刷", "建材", "机械", "医药", "包装", "餐饮")


def _month_days(month: str) -> list[date]:
    year, mon = (int(p) for p in month.split("-"))
    first = date(year, mon, 1)
    last = date(year + (mon == 12), mon % 12 + 1, 1)
    return [first + timedelta(days=i) for i in range((last - first).days)]


def synthetic_report_data(
    month: str = "2017-12",
    *,
    seed: int = 7,
    n_stacks: int = 40,
    n_stations: int = 300,
    n_gas_stations: int = 100,
    nozzles: int = 8,
) -> ReportData:
    rng = np.random.default_rng(seed)
    days = _month_days(month)
    start = pd.Timestamp(days[0]).tz_localize("Asia/Shanghai").tz_convert("UTC")
    hours = pd.date_range(start, periods=24 * len(days), freq="h")

    stacks = pd.DataFrame(
        {
            "stack_id": [f"S{i:03d}" for i in range(n_stacks)],
            "stack_name": [f"{i % 3 + 1}号锅炉排口" for i in range(n_stacks)],
            "enterprise_id": [f"E{i // 2:03d}" for i in range(n_stacks)],
            "subdistrict": [SUBDISTRICTS[(i // 2) % len(SUBDISTRICTS)] for i in range(n_stacks)],
        }
    )
    stacks["enterprise_name"] = [
        f"郑州{SUBDISTRICTS[(i // 2) % 17][:2]}{INDUSTRIES[(i // 2) % len(INDUSTRIES)]}有限公司"
        for i in range(n_stacks)
    ]
    hourly, exceed = _cems(rng, stacks, hours)
    return ReportData(
        exceedances=exceed,
        cems_hourly=hourly,
        cases=_cases(exceed, days),
        penalty_ledger=_ledger(exceed, days),
        transmission=_transmission(rng, stacks, month, len(days)),
        upload_rates=_upload(rng, n_stations, len(days)),
        weekly_ranking=_ranking(rng, days),
        aqi_daily=_aqi(rng, days),
        alerts=_alerts(days),
        vapor_nozzle_days=_nozzle_days(rng, n_gas_stations, nozzles, days),
        vapor_alarms=_vapor_alarms(rng, n_gas_stations, days),
        vapor_station_efficiency=_vapor_efficiency(rng, n_gas_stations),
        vapor_stations_without_monitor=pd.DataFrame(
            {
                "gas_station_id": ["G900", "G901"],
                "gas_station_name": ["中石化金水路加油站", "中石油花园路加油站"],
                "subdistrict": ["未来路街道", "花园路街道"],
                "annual_gasoline_sales_t": [6200.0, 5480.0],
            }
        ),
        rsd_high_emitters=_rsd(rng),
        rsd_repeat_offenders=_rsd(rng).head(15).rename(columns={"authority": "routed_to"}),
        sampling_ratios=pd.DataFrame(
            {
                "kind": ["加油站油品抽检", "机动车检验机构抽查"],
                "sampled": [11, 2],
                "total": [100, 12],
                "ratio": [0.11, 2 / 12],
                "target": [0.10, 0.20],
                "met": [True, False],
            }
        ),
        sampling_failed=pd.DataFrame(
            {
                "sample_id": ["FS-1712-03"],
                "gas_station_name": ["金水区某加油站"],
                "sampled_on": [days[9]],
                "product": ["车用柴油（Ⅵ）"],
                "sulfur_mg_kg": [14.2],
                "result": ["不合格"],
            }
        ),
        dustfall=pd.DataFrame(
            {
                "site": [f"降尘点{i + 1}" for i in range(17)],
                "subdistrict": list(SUBDISTRICTS),
                "dustfall": rng.normal(7.5, 1.5, 17).round(2),
            }
        ),
        accountability=pd.DataFrame(
            {
                "subdistrict": ["北林路街道", "杨金路街道"],
                "overdue_issues": [1, 0],
                "new_issue_score": [0.5, 2.0],
                "accountable": ["分管副职", "街道办事处主任"],
            }
        ),
        quality=pd.DataFrame(
            {
                "figure": ["CEMS 小时均值", "微站小时值", "油气回收"],
                "stream": ["cems", "ambient", "vapor"],
                "n_total": [len(hourly), n_stations * len(hours), n_gas_stations * len(days)],
                "n_invalid": [int((~hourly["valid"]).sum()), 4210, 310],
                "n_missing": [0, 18300, 95],
                "note": [
                    "不足45分钟的小时视为无效，不参与超标判定",
                    "离线微站的缺失小时不插补",
                    "加油次数不足的油枪日记为“数据不足”",
                ],
            }
        ),
        suspicions=pd.DataFrame(
            {
                "device_id": ["DEV-S017"],
                "stack_id": ["S017"],
                "enterprise_name": [stacks.loc[17, "enterprise_name"]],
                "pattern": ["浓度长时间恒定（疑似探头堵塞或信号线加装电阻）"],
                "first_seen": [hours[200]],
                "last_seen": [hours[420]],
                "evidence": ["连续 220 小时 SO2 折算浓度波动小于 0.1 mg/m³"],
            }
        ),
        disclosure=_findings(days),
    )


def _cems(
    rng: np.random.Generator, stacks: pd.DataFrame, hours: pd.DatetimeIndex
) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = []
    n = len(hours)
    for i, stack in enumerate(stacks.itertuples()):
        for code, limit in POLLUTANTS.items():
            level = limit * rng.uniform(0.3, 0.7)
            values = level * (1 + 0.15 * rng.standard_normal(n))
            if i % 7 == 3:  # a few stacks have exceeding episodes
                burst = rng.integers(0, n - 12)
                values[burst : burst + 6 + i % 5] = limit * rng.uniform(1.05, 1.6, 6 + i % 5)
            valid = rng.random(n) > 0.02
            frames.append(
                pd.DataFrame(
                    {
                        "stack_id": stack.stack_id,
                        "pollutant": code,
                        "hour_start": hours,
                        "mean_corrected": values.round(2),
                        "valid": valid,
                        "limit": limit,
                    }
                )
            )
    hourly = pd.concat(frames, ignore_index=True)
    over = hourly[hourly["valid"] & (hourly["mean_corrected"] > hourly["limit"])]
    exceed = over.merge(stacks, on="stack_id").rename(
        columns={"mean_corrected": "hourly_mean", "limit": "limit_value"}
    )
    exceed["limit_source"] = "GB 13271-2014 表3 特别排放限值（燃气锅炉）"
    exceed["n_readings"] = rng.integers(45, 61, len(exceed))
    exceed["exceedance_id"] = [f"X{i:05d}" for i in range(len(exceed))]
    exceed["reading_ids"] = [
        [f"r{i:05d}{k:02d}" for k in range(int(m))] for i, m in enumerate(exceed["n_readings"])
    ]
    exceed = exceed.drop(columns="valid")
    return hourly.drop(columns="limit"), exceed


def _cases(exceed: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    firsts = exceed.sort_values("hour_start").groupby("stack_id").head(1)
    return pd.DataFrame(
        {
            "case_id": [f"金环罚〔2017〕{100 + i}号" for i in range(len(firsts))],
            "enterprise_name": firsts["enterprise_name"].to_numpy(),
            "stack_name": firsts["stack_name"].to_numpy(),
            "pollutant": firsts["pollutant"].to_numpy(),
            "opened": [days[min(i * 3, len(days) - 1)] for i in range(len(firsts))],
            "measure": ["责令改正，罚款" for _ in range(len(firsts))],
            "status": ["复查中" if i % 2 else "已结案" for i in range(len(firsts))],
            "fine_yuan": [100000.0 for _ in range(len(firsts))],
        }
    )


def _ledger(exceed: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    cases = _cases(exceed, days)
    ongoing = cases[cases["status"] == "复查中"]
    return pd.DataFrame(
        {
            "case_id": ongoing["case_id"].to_numpy(),
            "enterprise_name": ongoing["enterprise_name"].to_numpy(),
            "round": 1,
            "start": [days[2] for _ in range(len(ongoing))],
            "end": [days[12] for _ in range(len(ongoing))],
            "penalty_days": 10,
            "daily_fine_yuan": 100000.0,
            "total_yuan": 1000000.0,
        }
    )


def _transmission(
    rng: np.random.Generator, stacks: pd.DataFrame, month: str, n_days: int
) -> pd.DataFrame:
    due = 1440 * n_days
    received = (due * rng.uniform(0.9, 1.0, len(stacks))).astype(int)
    valid = (received * rng.uniform(0.93, 1.0, len(stacks))).astype(int)
    frame = pd.DataFrame(
        {
            "device_id": "DEV-" + stacks["stack_id"],
            "owner": stacks["enterprise_name"] + " " + stacks["stack_name"],
            "subdistrict": stacks["subdistrict"],
            "month": month,
            "due": due,
            "received": received,
            "valid": valid,
        }
    )
    frame["transmission_rate"] = frame["received"] / frame["due"]
    frame["validity_rate"] = frame["valid"] / frame["received"]
    frame["effective_rate"] = frame["transmission_rate"] * frame["validity_rate"]
    frame["compliant"] = frame["effective_rate"] >= 0.9
    return frame


def _upload(rng: np.random.Generator, n: int, n_days: int) -> pd.DataFrame:
    due = 24 * n_days
    received = np.minimum(due, (due * rng.beta(30, 1.2, n)).astype(int))
    frame = pd.DataFrame(
        {
            "station_id": [f"W{i:03d}" for i in range(n)],
            "station_name": [f"{SUBDISTRICTS[i % 17]}微站{i // 17 + 1}" for i in range(n)],
            "subdistrict": [SUBDISTRICTS[i % 17] for i in range(n)],
            "due": due,
            "received": received,
        }
    )
    frame["upload_rate"] = frame["received"] / frame["due"]
    frame["compliant"] = frame["upload_rate"] >= 0.9
    return frame


def _ranking(rng: np.random.Generator, days: list[date]) -> pd.DataFrame:
    weeks = sorted({f"{d.isocalendar().year}-W{d.isocalendar().week:02d}" for d in days})
    rows = []
    for week in weeks:
        values = rng.normal(95, 18, len(SUBDISTRICTS)).round(1)
        order = np.argsort(values)
        ranks = np.empty(len(values), dtype=int)
        ranks[order] = np.arange(1, len(values) + 1)
        for name, value, rank in zip(SUBDISTRICTS, values, ranks, strict=True):
            rows.append(
                {
                    "subdistrict": name,
                    "week": week,
                    "pm25": value,
                    "rank": int(rank),
                    "bottom_two": rank > len(values) - 2,
                }
            )
    return pd.DataFrame(rows)


def _aqi(rng: np.random.Generator, days: list[date]) -> pd.DataFrame:
    base = rng.normal(130, 45, len(days))
    base[10:14] = [215, 268, 312, 240]  # the heavy-pollution episode
    aqi = np.clip(base, 25, 500).round().astype(int)
    bounds = [(50, "优"), (100, "良"), (150, "轻度污染"), (200, "中度污染"), (300, "重度污染")]

    def category(v: int) -> str:
        return next((name for upper, name in bounds if v <= upper), "严重污染")

    return pd.DataFrame(
        {
            "date": days,
            "aqi": aqi,
            "category": [category(v) for v in aqi],
            "primary": ["PM2.5" if v > 50 else "" for v in aqi],
        }
    )


def _alerts(days: list[date]) -> pd.DataFrame:
    at = pd.Timestamp(days[9]).tz_localize("Asia/Shanghai")
    return pd.DataFrame(
        {
            "level": ["橙色", "橙色"],
            "action": ["启动", "解除"],
            "started_at": [at + pd.Timedelta(hours=12), at + pd.Timedelta(hours=12)],
            "ended_at": [pd.NaT, at + pd.Timedelta(days=5)],
            "peak_aqi": [312, 312],
            "reason": ["预测AQI>200持续3天且1天>300", "连续36小时轻度污染及以下"],
        }
    )


def _nozzle_days(
    rng: np.random.Generator, n_stations: int, nozzles: int, days: list[date]
) -> pd.DataFrame:
    n = n_stations * nozzles * len(days)
    al = rng.normal(1.1, 0.08, n)
    drift = rng.random(n_stations * nozzles) < 0.05  # a few nozzles drift low
    al[np.repeat(drift, len(days))] -= 0.35
    return pd.DataFrame(
        {
            "gas_station_id": np.repeat(
                [f"G{i:03d}" for i in range(n_stations)], nozzles * len(days)
            ),
            "nozzle_id": np.tile(np.repeat(np.arange(1, nozzles + 1), len(days)), n_stations),
            "day": np.tile(days, n_stations * nozzles),
            "n_refuellings": rng.integers(5, 80, n),
            "al_mean": al.round(3),
        }
    )


def _vapor_alarms(rng: np.random.Generator, n_stations: int, days: list[date]) -> pd.DataFrame:
    ids = rng.choice(n_stations, 12, replace=False)
    return pd.DataFrame(
        {
            "gas_station_id": [f"G{i:03d}" for i in ids],
            "gas_station_name": [f"加油站{i:03d}" for i in ids],
            "nozzle_id": rng.integers(1, 9, len(ids)),
            "level": ["报警" if i % 2 else "预警" for i in range(len(ids))],
            "consecutive_days": [7 if i % 2 else 5 for i in range(len(ids))],
            "first_day": [days[3] for _ in ids],
            "last_day": [days[10] for _ in ids],
        }
    )


def _vapor_efficiency(rng: np.random.Generator, n_stations: int) -> pd.DataFrame:
    eff = np.clip(rng.normal(0.9, 0.05, n_stations // 2), 0.5, 0.99)
    return pd.DataFrame(
        {
            "gas_station_id": [f"G{i:03d}" for i in range(n_stations // 2)],
            "gas_station_name": [f"加油站{i:03d}" for i in range(n_stations // 2)],
            "subdistrict": [SUBDISTRICTS[i % 17] for i in range(n_stations // 2)],
            "n_refuellings": rng.integers(2000, 20000, n_stations // 2),
            "efficiency": eff.round(3),
            "met": eff >= 0.85,
        }
    )


def _rsd(rng: np.random.Generator) -> pd.DataFrame:
    n = 48
    weight = rng.choice([2.5, 4.5, 18.0, 31.0], n)
    return pd.DataFrame(
        {
            "plate": [f"豫A{rng.integers(10000, 99999)}" for _ in range(n)],
            "fuel_type": ["柴油" if w > 3.5 else "汽油" for w in weight],
            "gross_weight_t": weight,
            "pollutant": ["不透光度" if w > 3.5 else "NO" for w in weight],
            "n_exceedances": rng.integers(2, 6, n),
            "authority": ["环保部门" if w > 3.5 else "公安交管部门" for w in weight],
        }
    )


def _findings(days: list[date]) -> pd.DataFrame:
    rows = []
    kinds = ("key_enterprise", "scattered", "special_task")
    for i in range(12):
        kind = kinds[i % 3]
        found = days[min(2 + 2 * i, len(days) - 3)]
        rows.append(
            {
                "list_kind": kind,
                "issue_no": str(10 + i // 6),
                "county": "金水区",
                "source_name": "" if kind == "special_task" else f"郑州某{INDUSTRIES[i % 8]}厂",
                "special_plan": "燃煤锅炉综合整治" if kind == "special_task" else "",
                "task_requirement": "2017年10月底前完成燃煤小锅炉“清零”"
                if kind == "special_task"
                else "",
                "problem": "未安装除尘设施，露天堆放物料，无组织排放严重",
                "investigation": "已立案查处，罚款5万元" if i % 4 else "",
                "rectification": "已完成整改" if i % 3 == 0 else "正在整改，已拆除违规设备",
                "rectify_by": "2017年12月31日",
                "found_date": found,
                "published_date": found + timedelta(days=1 if i % 5 else 6),
                "letter_date": found,
                "progress_published_date": found + timedelta(days=10) if i % 4 else None,
            }
        )
    return pd.DataFrame(rows)
