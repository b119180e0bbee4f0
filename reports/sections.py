"""From :class:`~reports.data.ReportData` to the report's sections (format-independent).

One builder per section; each returns a :class:`~reports.model.Section` whose tables always exist
(an empty table says "本月无" and why), so every output has the same sheets every month.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

import pandas as pd

from reports import charts, disclosure, layouts, vocabulary
from reports.data import ReportData
from reports.model import (
    BEIJING,
    Column,
    Section,
    SourceRef,
    Table,
    is_missing,
    make_table,
    pick_columns,
    to_beijing,
)
from schemas.calendar_cn import CALENDAR_FILE, calendar
from schemas.rules import thresholds

NOT_PRODUCED = "未取得该项数据（仓库中无此表，或该项计算本月未运行）"
THRESHOLDS_FILE = "schemas/data/thresholds.toml"
LAYOUTS_FILE = "schemas/data/report_layouts.toml"
CHINESE_NUMERALS = "一二三四五六七八九十"


@dataclass(frozen=True)
class Context:
    month: str
    first: date
    last: date
    as_of: date

    @classmethod
    def for_month(cls, month: str, as_of: date | None = None) -> Context:
        year, mon = (int(p) for p in month.split("-"))
        first = date(year, mon, 1)
        last = date(year + (mon == 12), mon % 12 + 1, 1) - timedelta(days=1)
        return cls(month, first, last, as_of or last)

    @property
    def label(self) -> str:
        return f"{self.first.year}年{self.first.month}月"


# -- helpers ------------------------------------------------------------------------------------


def pollutant_names() -> dict[str, str]:
    """Pollutant key (HJ 212-2017 code, AQI item, remote-sensing quantity) -> Chinese name."""
    return vocabulary.pollutant_names()


MARKS_ZH = {
    "std": "标准或法规原文（std）",
    "impl": "与公开实现一致（impl）",
    "plan": "攻坚方案原文（plan）",
    "config": "未确认，可配置的默认值（config）",
}
UNITS_ZH = {
    "count": "",
    "ratio": "",
    "d": "天",
    "h": "小时",
    "min": "分钟",
    "t/year": "t/年",
    "t/(km2*30d)": "t/(km²·30d)",
}


def threshold_ref(name: str, item: str) -> SourceRef:
    entry = thresholds()[name]
    if entry.unit == "ratio" and entry.value < 1:  # a share; an A/L ratio of 1.2 stays 1.2
        value = f"{entry.value * 100:g}%"
    else:
        value = f"{entry.value:g} {UNITS_ZH.get(entry.unit, entry.unit)}".strip()
    return SourceRef(item, value, f"{THRESHOLDS_FILE} [{name}]", entry.source, entry.mark)


def empty_text(frame: pd.DataFrame | None, reason: str) -> str:
    return f"本月无：{NOT_PRODUCED if frame is None else reason}"


def frame_or_empty(frame: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    if frame is None or frame.empty and not len(frame.columns):
        return pd.DataFrame(columns=columns)
    return frame


def generic_table(
    frame: pd.DataFrame | None,
    preferred: list[str],
    *,
    sheet: str,
    title: str,
    reason: str,
    sort: list[str] | None = None,
    ascending: bool | list[bool] = True,
    extras: bool = True,
    drop: tuple[str, ...] = (),
) -> Table:
    data = frame_or_empty(frame, preferred)
    if sort:
        keys = [c for c in sort if c in data.columns]
        if keys:
            order = ascending if isinstance(ascending, bool) else ascending[: len(keys)]
            data = data.sort_values(keys, ascending=order, kind="stable")
    keys = pick_columns(data, preferred, extras=extras, drop=drop)
    return make_table(data, keys, title=title, sheet=sheet, empty_text=empty_text(frame, reason))


def hour_label(instant: object) -> str:
    """``2017-12-05 15:00-16:00`` (Beijing); the hour is named by its start and end."""
    start = to_beijing(instant)
    if start is None:
        return ""
    end_hour = start.hour + 1
    return f"{start:%Y-%m-%d} {start.hour:02d}:00-{end_hour:02d}:00"


def numeric_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as numbers; all-NaN when the producer did not supply it (nothing is compared)."""
    if column not in frame.columns:
        return pd.Series(float("nan"), index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def _bool_series(frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    if values.dtype == object:
        values = values.map(lambda v: str(v).strip().lower() in ("true", "1", "是", "yes"))
    return values.fillna(False).astype(bool)


# -- 1. exceedances -----------------------------------------------------------------------------

EXCEEDANCE_COLUMNS = [
    "enterprise_name",
    "stack_name",
    "pollutant_zh",
    "period",
    "hourly_mean",
    "limit_value",
    "limit_source",
    "n_readings",
]


def exceedance_frame(exceedances: pd.DataFrame) -> pd.DataFrame:
    """Exceedances in report order with the display columns added."""
    out = exceedances.copy()
    names = pollutant_names()
    # a frame missing columns still shows what it has (sheet 1 keeps its fixed layout)
    for column in ("pollutant", "hour_start", "hourly_mean", "limit_value", "limit_source"):
        if column not in out.columns:
            out[column] = None
    if "n_readings" not in out.columns:
        out["n_readings"] = out["reading_ids"].map(len) if "reading_ids" in out.columns else None
    for name_col, id_col in (("enterprise_name", "enterprise_id"), ("stack_name", "stack_id")):
        if name_col not in out.columns:
            out[name_col] = out[id_col] if id_col in out.columns else ""
        elif id_col in out.columns:
            out[name_col] = out[name_col].where(out[name_col].notna(), out[id_col])
    out["pollutant_zh"] = out["pollutant"].map(lambda c: names.get(c, c))
    out["_start"] = pd.to_datetime(out["hour_start"], utc=True)
    out["period"] = out["_start"].map(hour_label)
    out = out.sort_values(["_start", "enterprise_name", "stack_name", "pollutant"], kind="stable")
    return out.drop(columns="_start")


EXCEEDANCE_SUMMARY_COLUMNS = [
    "enterprise_name",
    "stack_name",
    "subdistrict",
    "pollutant_zh",
    "n_hours",
    "worst_hourly",
    "limit_value",
    "times_limit",
    "n_evidence",
    "first_period",
    "last_period",
]


def exceedance_summary(shown: pd.DataFrame) -> pd.DataFrame:
    """Per enterprise, stack and pollutant: exceeding hours, the worst hourly mean against the
    limit, and how many readings stand behind them (the evidence count)."""
    frame = shown.assign(
        _mean=numeric_column(shown, "hourly_mean"),
        _limit=numeric_column(shown, "limit_value"),
        _n=numeric_column(shown, "n_readings"),
    )
    if "subdistrict" not in frame.columns:
        frame["subdistrict"] = ""
    keys = ["enterprise_name", "stack_name", "subdistrict", "pollutant_zh"]
    out = (
        frame.fillna({k: "" for k in keys})
        .groupby(keys, sort=False)
        .agg(
            n_hours=("period", "size"),
            worst_hourly=("_mean", "max"),
            limit_value=("_limit", "max"),
            n_evidence=("_n", "sum"),
            first_period=("period", "first"),
            last_period=("period", "last"),
        )
        .reset_index()
    )
    out["times_limit"] = out["worst_hourly"] / out["limit_value"]
    return out.sort_values(["n_hours", "enterprise_name"], ascending=[False, True], kind="stable")


SUPERVISION_COLUMNS = [
    "subdistrict",
    "n_exceeding_enterprises",
    "exceeding_enterprises",
    "aggregate_transmission",
    "stacks_under_transmission",
    "listed",
    "reasons",
]


def supervision_table(frame: pd.DataFrame | None) -> Table:
    return generic_table(
        frame,
        SUPERVISION_COLUMNS,
        sheet="挂牌督办",
        title="街道挂牌督办情形（同一街道多家企业超标或有效传输率不足）",
        reason="无街道有在线监测排口或超标企业",
        sort=["listed", "n_exceeding_enterprises"],
        ascending=[False, False],
        extras=False,
    )


def exceedance_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("exceedances", "污染源在线监测超标情况")
    frame = data.exceedances
    reason = "在线监测小时均值（折算）均未超过排口许可限值"
    shown = exceedance_frame(frame) if frame is not None and len(frame) else None
    table = make_table(
        shown if shown is not None else pd.DataFrame(columns=EXCEEDANCE_COLUMNS),
        EXCEEDANCE_COLUMNS,
        title="超标小时明细",
        sheet="超标情况",
        empty_text=empty_text(frame, reason),
    )
    evidence_keys = ["exceedance_id", "enterprise_name", "stack_name", "pollutant_zh", "period"]
    evidence_keys += ["n_readings", "reading_ids", "raw_sha256s"]
    evidence_src = shown if shown is not None else pd.DataFrame(columns=evidence_keys)
    evidence = make_table(
        evidence_src,
        [k for k in evidence_keys if k in evidence_src.columns],
        title="超标证据（原始数据编号）",
        sheet="超标证据",
        empty_text=empty_text(frame, reason),
    )
    evidence.in_print = False
    summary = make_table(
        exceedance_summary(shown)
        if shown is not None
        else pd.DataFrame(columns=EXCEEDANCE_SUMMARY_COLUMNS),
        EXCEEDANCE_SUMMARY_COLUMNS,
        title="超标汇总（按企业、排口、污染物）",
        sheet="超标汇总",
        empty_text=empty_text(frame, reason),
    )
    supervision = supervision_table(data.supervision)
    sec.tables = [table, summary, evidence, supervision]
    sec.sources.append(
        SourceRef(
            "挂牌督办",
            "同一街道多家企业超标，或有效传输率不足90%",
            "enforcement/supervision.py; schemas/data/enforcement.toml",
            "攻坚方案第18条",
            "plan",
        )
    )
    sec.sources.append(
        SourceRef(
            "污染物名称",
            "HJ 212-2017 污染物代码",
            "schemas/data/hj212_codes.csv",
            "HJ 212-2017 附录",
            "impl",
        )
    )
    sec.sources.append(
        SourceRef(
            "空气质量污染物名称",
            "GB 3095-2012 污染物项目",
            "schemas/data/aqi_rules.toml [pollutants]",
            "GB 3095-2012 表1；HJ 633-2012",
            "impl",
        )
    )
    sec.sources.append(
        SourceRef(
            "标准限值",
            "按排口许可（见“依据”列）",
            "登记名录 stack_limits.csv; schemas/data/emission_limits.csv",
            "GB 13271-2014 等，逐排口",
            "std",
        )
    )
    sec.sources.append(threshold_ref("cems.hour_min_valid_minutes", "有效小时均值的最少分钟数"))
    if shown is None:
        sec.empty_reason = empty_text(frame, reason)
        sec.summary = "本月无在线监测超标记录。" if frame is not None else ""
        return sec
    n_stacks = shown["stack_id"].nunique() if "stack_id" in shown else shown["stack_name"].nunique()
    n_ent = shown["enterprise_name"].nunique()
    by_pollutant = shown["pollutant_zh"].value_counts()
    parts = "、".join(f"{name} {n} 小时" for name, n in by_pollutant.items())
    sec.summarise(f"{n_ent} 家企业 {n_stacks} 个排口共出现 {len(shown)} 个超标小时（{parts}）。")
    listed = data.supervision
    if listed is not None and len(listed) and "listed" in listed.columns:
        names = listed[_bool_series(listed, "listed")]
        label = "subdistrict" if "subdistrict" in names.columns else "subdistrict_id"
        if len(names):
            sec.notes.append(
                f"挂牌督办街道 {len(names)} 个：{'、'.join(names[label].astype(str))}。"
            )
    if "subdistrict" in shown.columns:
        per_sub = shown.groupby("subdistrict")["enterprise_name"].nunique()
        several = per_sub[per_sub >= 2]
        if len(several):
            listed = "、".join(f"{s}（{n} 家）" for s, n in several.items())
            sec.notes.append(f"同一街道多家企业超标：{listed}（规划第18条，挂牌督办情形）。")
    sec.charts = charts.stack_hourly(data.cems_hourly, shown, pollutant_names())
    return sec


# -- 2. cases and day-by-day penalties ----------------------------------------------------------


def cases_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("cases", "立案查处与按日连续处罚")
    cases = generic_table(
        data.cases,
        ["case_id", "enterprise_name", "stack_name", "subdistrict", "pollutant", "opened"]
        + ["round", "n_exceedances", "fine_yuan", "served_date", "reinspection_due_by"]
        + ["measure", "status"],
        sheet="立案查处",
        title="立案查处",
        reason="无新立案或在办案件",
        sort=["opened", "case_id"],
        extras=False,
    )
    ledger = generic_table(
        data.penalty_ledger,
        [
            "case_id",
            "enterprise_name",
            "stack_name",
            "round",
            "decision_no",
            "fine_yuan",
            "served_date",
            "reinspection_date",
            "start_date",
            "end_date",
            "calendar_days",
            "halted_days",
            "penalty_days",
            "amount_yuan",
            "basis",
        ],
        sheet="按日计罚",
        title="按日连续处罚台账",
        reason="无按日连续处罚案件",
        sort=["case_id", "round", "decision_no"],
        extras=False,
    )
    refused = generic_table(
        data.case_events_refused,
        ["case_id", "stack_id", "event", "date", "amount_yuan", "document_no", "row", "reason"],
        sheet="未采纳的案件事件",
        title="未采纳的案件事件（案件事件文件中被校验拒绝的行及原因）",
        reason="案件事件均通过校验",
        sort=["case_id", "row"],
        extras=False,
    )
    sec.tables = [cases, ledger, refused]
    sec.sources.append(
        SourceRef(
            "按日连续处罚",
            "罚款数额 × 计罚日数",
            "schemas/data/penalties.toml",
            "环境保护法第五十九条；环境保护部令第28号（2014）",
            "std",
        )
    )
    if not cases.rows and not ledger.rows:
        sec.empty_reason = cases.empty_text
        return sec
    sec.summarise(
        f"在办案件 {len(cases.rows)} 件，按日计罚台账 {len(ledger.rows)} 条，"
        f"未采纳的案件事件 {len(refused.rows)} 条。"
    )
    return sec


# -- 3. transmission ----------------------------------------------------------------------------

TRANSMISSION_COLUMNS = [
    "device_id",
    "owner",
    "subdistrict",
    "due",
    "received",
    "valid",
    "transmission_rate",
    "validity_rate",
    "effective_rate",
    "compliant",
]


def transmission_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("transmission", "在线监测数据有效传输率")
    frame = data.transmission
    target = thresholds()["stack.effective_transmission_min"].value
    table = generic_table(
        frame,
        TRANSMISSION_COLUMNS,
        sheet="传输有效率",
        title="重点排口在线监测有效传输率",
        reason="无应传数据的在线监测设备",
        sort=["effective_rate", "device_id"],
        extras=False,
    )
    under = frame[numeric_column(frame, "effective_rate") < target] if frame is not None else None
    under_table = generic_table(
        under,
        TRANSMISSION_COLUMNS,
        sheet="有效传输率不足",
        title=f"有效传输率低于 {target * 100:.0f}% 的设备",
        reason=f"所有在线监测设备有效传输率均不低于 {target * 100:.0f}%",
        sort=["effective_rate", "device_id"],
        extras=False,
    )
    by_area = generic_table(
        transmission_by_subdistrict(frame, target) if frame is not None else None,
        ["subdistrict", "n_devices", "due", "received", "valid"]
        + ["transmission_rate", "validity_rate", "effective_rate", "n_below", "compliant"],
        sheet="街道有效传输率",
        title="各街道在线监测有效传输率（设备条数合计）",
        reason="无应传数据的在线监测设备",
        sort=["effective_rate"],
        extras=False,
    )
    sec.tables = [table, under_table, by_area]
    sec.sources.append(threshold_ref("stack.effective_transmission_min", "有效传输率达标线"))
    sec.sources.append(
        SourceRef(
            "有效传输率",
            "(实传/应传) × (有效/实传)",
            "DOMAIN.md §5",
            "HJ 75-2017 / 数据传输有效率考核办法",
            "impl",
        )
    )
    if frame is None or frame.empty:
        sec.empty_reason = table.empty_text
        return sec
    rates = numeric_column(frame, "effective_rate")
    below = frame[rates < target]
    sec.summarise(
        f"{len(frame)} 台在线监测设备中 {len(below)} 台有效传输率低于 {target * 100:.0f}%。"
    )
    if len(below) and "subdistrict" in below.columns:
        subs = "、".join(sorted(below["subdistrict"].dropna().astype(str).unique()))
        sec.notes.append(f"涉及街道：{subs}（规划第18条，有效传输率不足90%的街道挂牌督办）。")
    sec.charts = charts.rate_chart(
        frame,
        "effective_rate",
        "owner" if "owner" in frame.columns else "device_id",
        target,
        name="transmission",
        title="在线监测有效传输率",
    )
    return sec


def transmission_by_subdistrict(frame: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per subdistrict: the devices' record counts added up (rates are never averaged), the
    rates from the sums, and how many devices fall under ``target``."""
    if frame.empty or not {"due", "received", "valid"} <= set(frame.columns):
        return frame.iloc[0:0]
    data = frame.assign(
        subdistrict=frame["subdistrict"].fillna("（未登记）")
        if "subdistrict" in frame.columns
        else "（未登记）",
        _below=numeric_column(frame, "effective_rate") < target,
    )
    out = (
        data.groupby("subdistrict", sort=True)
        .agg(
            n_devices=("device_id", "size"),
            due=("due", "sum"),
            received=("received", "sum"),
            valid=("valid", "sum"),
            n_below=("_below", "sum"),
        )
        .reset_index()
    )
    due = out["due"].where(out["due"] > 0)
    out["transmission_rate"] = out["received"] / due
    out["validity_rate"] = out["valid"] / out["received"].where(out["received"] > 0)
    out["effective_rate"] = out["valid"] / due
    out["compliant"] = out["effective_rate"] >= target
    return out


# -- 4. micro-station upload and weekly ranking -------------------------------------------------


def upload_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("upload", "微型空气站数据上传率")
    frame = data.upload_rates
    target = thresholds()["ambient.upload_rate_min"].value
    table = generic_table(
        frame,
        [
            "station_id",
            "station_name",
            "subdistrict",
            "due",
            "received",
            "upload_rate",
            "compliant",
        ],
        sheet="微站上传率",
        title="微型空气站上传率",
        reason="无应上传数据的微型空气站",
        sort=["upload_rate", "station_id"],
    )
    sec.tables = [table]
    sec.sources.append(threshold_ref("ambient.upload_rate_min", "微站上传率达标线"))
    if frame is None or frame.empty:
        sec.empty_reason = table.empty_text
        return sec
    rates = numeric_column(frame, "upload_rate")
    below = frame[rates < target]
    # print only the stations that miss the target; the workbook keeps all of them
    table.in_print = False
    digest = generic_table(
        below,
        [
            "station_id",
            "station_name",
            "subdistrict",
            "due",
            "received",
            "upload_rate",
            "compliant",
        ],
        sheet=table.sheet,
        title=f"上传率低于 {target * 100:.0f}% 的微型空气站（全部站点见 xlsx “{table.sheet}”表）",
        reason=f"所有微型空气站上传率均不低于 {target * 100:.0f}%",
        sort=["upload_rate", "station_id"],
    )
    digest.in_xlsx = False
    sec.tables.append(digest)
    n_below = len(below)
    sec.summarise(f"{len(frame)} 个微型空气站中 {n_below} 个上传率低于 {target * 100:.0f}%。")
    label = "station_name" if "station_name" in frame.columns else "station_id"
    sec.charts = charts.rate_chart(
        frame, "upload_rate", label, target, name="upload", title="微型空气站上传率"
    )
    return sec


def ranking_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("ranking", "街道空气质量周排名")
    frame = data.weekly_ranking
    table = generic_table(
        frame,
        ["week", "rank", "subdistrict", "pm25", "bottom_two"],
        sheet="街道周排名",
        title="街道 PM2.5 周排名",
        reason="无街道周排名（微站数据不足）",
        sort=["week", "rank"],
    )
    sec.tables = [table]
    sec.sources.append(threshold_ref("ambient.subdistricts", "参与排名的街道数"))
    if frame is None or frame.empty:
        sec.empty_reason = table.empty_text
        return sec
    if {"subdistrict", "week", "rank"} <= set(frame.columns):
        table.in_print = False
        sec.tables.append(ranking_digest(frame, table.sheet))
    if "bottom_two" in frame.columns:
        worst = frame[_bool_series(frame, "bottom_two")]["subdistrict"].value_counts()
        if len(worst):
            listed = "、".join(f"{s}（{n} 周）" for s, n in worst.items())
            sec.summarise(f"周排名后两位的街道：{listed}。")
    sec.charts = charts.pm25_by_subdistrict(frame)
    return sec


def ranking_digest(frame: pd.DataFrame, sheet: str) -> Table:
    """Subdistricts × weeks, each cell "rank（PM2.5）": the printable form of the ranking."""

    def cell(rec: pd.Series) -> str:
        pm25 = rec.get("pm25")
        rank = "" if is_missing(rec["rank"]) else f"第{int(rec['rank'])}名"
        return rank if is_missing(pm25) else f"{rank}（{float(pm25):.0f}）"

    cells = frame.assign(_cell=frame.apply(cell, axis=1))
    wide = cells.pivot_table(index="subdistrict", columns="week", values="_cell", aggfunc="first")
    wide = wide.reindex(sorted(wide.columns, key=str), axis=1).fillna("")
    mean_rank = frame.groupby("subdistrict")["rank"].mean()
    wide = wide.loc[mean_rank.reindex(wide.index).sort_values().index]
    columns = [Column("subdistrict", "街道", "text")]
    columns += [Column(str(w), f"{w} 排名（PM2.5）", "text") for w in wide.columns]
    rows = [
        [name, *values] for name, values in zip(wide.index, wide.to_numpy().tolist(), strict=True)
    ]
    digest = Table(columns, rows, title="街道 PM2.5 周排名（按平均名次排序）", sheet=sheet)
    digest.in_xlsx = False
    return digest


# -- 5. AQI and alerts --------------------------------------------------------------------------


AQI_COLUMNS = ["date", "aqi", "category", "primary", "exceeding_pollutants"]


def aqi_detail_columns(frame: pd.DataFrame | None) -> list[str]:
    """The per-pollutant columns of ``aqi_daily`` the workbook adds: each AQI item's sub-index
    (``iaqi_<item>``) followed by its concentration, in the order of aqi_rules.toml."""
    if frame is None:
        return []
    out = []
    for item in vocabulary.aqi_items():
        out += [c for c in (f"iaqi_{item}", item) if c in frame.columns]
    return out


def aqi_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("aqi", "环境空气质量（AQI）")
    frame = data.aqi_daily
    table = generic_table(
        frame,
        AQI_COLUMNS + aqi_detail_columns(frame),
        sheet="空气质量日报",
        title="逐日空气质量指数",
        reason="无有效日均值",
        sort=["date"],
        extras=False,
    )
    # the workbook is wide (each pollutant's sub-index and concentration); print keeps AQI_COLUMNS
    table.columns = [
        c if c.key in AQI_COLUMNS else replace(c, in_print=False) for c in table.columns
    ]
    sec.tables = [table]
    categories = layouts.aqi_categories()
    sec.sources.append(
        SourceRef(
            "AQI 级别与颜色",
            "；".join(f"{c.name}≤{c.upper:g}" for c in categories),
            f"schemas/data/{layouts.AQI_CATEGORIES_FILE}",
            categories[0].source,
            categories[0].mark,
        )
    )
    if frame is None or frame.empty:
        sec.empty_reason = table.empty_text
        return sec
    aqi = numeric_column(frame, "aqi")
    good = int((aqi <= categories[1].upper).sum())
    heavy = int((aqi > categories[3].upper).sum())
    sec.summarise(
        f"有效天数 {int(aqi.notna().sum())} 天，优良 {good} 天，重度及以上污染 {heavy} 天。"
    )
    sec.charts = charts.aqi_calendar(frame, ctx.month, categories)
    return sec


def alerts_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("alerts", "重污染天气预警")
    alerts = data.alerts
    # lantian.rules_monthly copies the required cuts into ``action``: print them once
    same = alerts is not None and {"action", "required_cuts"} <= set(alerts.columns)
    table = generic_table(
        alerts,
        ["level", "started_at", "ended_at", "hours", "peak_aqi", "action", "reason"],
        sheet="重污染预警",
        title="预警启动、调整与解除",
        reason="未达到预警启动条件",
        sort=["started_at", "at"],
        drop=("required_cuts",)
        if same and alerts["action"].equals(alerts["required_cuts"])
        else (),
    )
    transitions = generic_table(
        data.alert_transitions,
        ["at", "from_level", "to_level", "rule", "reason"],
        sheet="预警级别变化",
        title="预警级别变化（滚动24小时AQI）",
        reason="预警级别无变化",
        sort=["at"],
        extras=False,
    )
    sec.tables = [table, transitions]
    if not table.rows:
        sec.empty_reason = table.empty_text
        return sec
    sec.summarise(f"预警记录 {len(table.rows)} 条。")
    return sec


# -- 6. vapor recovery --------------------------------------------------------------------------


ALERT_LEVELS_ZH = {1: "预警", 2: "报警"}  # the monitors' nozzle status codes (0 normal)


def alarm_runs(alerts: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per alerting nozzle from per-day alert rows (``level`` 0/1/2, ``run_length``).

    enforcement.vapor.nozzle_alerts marks every nozzle-day; the report lists each nozzle once with
    its highest level, its longest run and the days the alert covered.
    """
    if alerts is None or alerts.empty or "run_length" not in alerts.columns:
        return alerts
    levels = pd.to_numeric(alerts.get("level"), errors="coerce")
    raised = alerts[levels > 0].assign(_level=levels[levels > 0])
    keys = [k for k in ("gas_station_id", "gas_station_name", "nozzle_id") if k in raised.columns]
    if raised.empty or not keys:
        return raised.drop(columns="_level").iloc[0:0]
    spec = {"_level": ("_level", "max"), "consecutive_days": ("run_length", "max")}
    if "day" in raised.columns:
        spec |= {"first_day": ("day", "min"), "last_day": ("day", "max")}
    out = raised.groupby(keys, sort=True, dropna=False).agg(**spec).reset_index()
    out["level"] = out.pop("_level").map(lambda v: ALERT_LEVELS_ZH.get(int(v), str(v)))
    return out


def vapor_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("vapor", "加油站油气回收")
    alarms = generic_table(
        alarm_runs(data.vapor_alarms),
        [
            "gas_station_name",
            "gas_station_id",
            "nozzle_id",
            "level",
            "consecutive_days",
            "first_day",
            "last_day",
        ],
        sheet="油气回收报警",
        title="油枪气液比预警与报警",
        reason="无连续超出气液比范围的油枪",
        sort=["gas_station_id", "nozzle_id"],
    )
    efficiency = generic_table(
        data.vapor_station_efficiency,
        ["gas_station_name", "gas_station_id", "subdistrict", "n_refuellings", "efficiency", "met"],
        sheet="加油站回收效率",
        title="加油站油气回收效率",
        reason="无在线监控加油站的有效加油记录",
        sort=["efficiency"],
    )
    missing = generic_table(
        data.vapor_stations_without_monitor,
        ["gas_station_name", "gas_station_id", "subdistrict", "annual_gasoline_sales_t"],
        sheet="未装在线监控加油站",
        title="年销量超过限额但未装在线监控的加油站",
        reason="应安装在线监控的加油站均已安装",
        sort=["annual_gasoline_sales_t"],
        ascending=False,
    )
    sec.tables = [alarms, efficiency, missing]
    for name, item in (
        ("vapor.al_min", "气液比下限"),
        ("vapor.al_max", "气液比上限"),
        ("vapor.efficiency_min", "油气回收效率要求"),
        ("vapor.monitor_required_sales_t", "须装在线监控的年销量"),
        ("vapor.warning_days", "预警连续天数"),
        ("vapor.alarm_days", "报警连续天数"),
    ):
        sec.sources.append(threshold_ref(name, item))
    low, high = (thresholds()[n].value for n in ("vapor.al_min", "vapor.al_max"))
    sec.charts = charts.al_distribution(data.vapor_nozzle_days, low, high)
    if not (alarms.rows or efficiency.rows or missing.rows or sec.charts):
        sec.empty_reason = empty_text(data.vapor_nozzle_days, "无油气回收在线监控数据")
        return sec
    sec.summarise(
        f"油枪预警/报警 {len(alarms.rows)} 条，未装在线监控的加油站 {len(missing.rows)} 座。"
    )
    return sec


# -- 7. remote sensing --------------------------------------------------------------------------


def rsd_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("rsd", "机动车遥感监测")
    high = generic_table(
        data.rsd_high_emitters,
        ["plate", "fuel_type", "gross_weight_t", "pollutant", "n_exceedances", "authority"],
        sheet="遥感高排放车",
        title="高排放车辆及移交部门",
        reason="无连续两次及以上同一污染物超标的车辆",
        sort=["authority", "plate"],
    )
    repeat = generic_table(
        data.rsd_repeat_offenders,
        ["plate", "vehicle_owner", "transport_enterprise", "n_exceedances", "last_seen"],
        sheet="遥感屡次超标车",
        title="屡次超标车辆",
        reason="无屡次超标车辆",
        sort=["n_exceedances"],
        ascending=False,
    )
    runs = generic_table(
        data.rsd_high_emitter_runs,
        ["plate", "pollutant", "fuel_type", "gross_weight_t", "n_exceedances"]
        + ["max_value", "limit", "first_seen", "last_seen", "authority"],
        sheet="遥感连续超标记录",
        title="连续超标记录（按车辆和污染物）",
        reason="无连续两次及以上同一污染物超标的记录",
        sort=["plate", "pollutant"],
        extras=False,
    )
    share = generic_table(
        data.transport_china4_share,
        ["transport_enterprise", "n_vehicles", "n_china4_plus", "fleet_share", "fleet_complies"]
        + ["n_seen", "n_seen_china4_plus", "observed_share", "observed_complies"],
        sheet="重点运输企业国四占比",
        title="重点运输企业国四及以上排放标准车辆占比",
        reason="无重点运输企业车辆登记",
        sort=["fleet_share", "transport_enterprise"],
        extras=False,
    )
    sec.tables = [high, repeat, runs, share]
    sec.sources.append(threshold_ref("rsd.heavy_vehicle_t", "移交环保部门的车辆总质量下限"))
    sec.sources.append(threshold_ref("transport.china4_share_min", "重点运输企业国四及以上占比"))
    if not (high.rows or repeat.rows or share.rows):
        sec.empty_reason = high.empty_text
        return sec
    frame = data.rsd_high_emitters
    routed = ""
    if frame is not None and "authority" in frame.columns and len(frame):
        counts = frame["authority"].value_counts()
        routed = "（" + "，".join(f"移交{a} {n} 辆" for a, n in counts.items()) + "）"
    sec.summarise(f"遥感认定高排放车辆 {len(high.rows)} 辆{routed}。")
    fleets = data.transport_china4_share
    if fleets is not None and len(fleets) and "fleet_complies" in fleets.columns:
        short = fleets[~_bool_series(fleets, "fleet_complies")]
        minimum = thresholds()["transport.china4_share_min"].value
        names = "、".join(short["transport_enterprise"].astype(str)) if len(short) else "无"
        sec.notes.append(
            f"重点运输企业国四及以上车辆占比低于 {minimum * 100:.0f}% 的：{names}"
            f"（共 {len(fleets)} 家）。"
        )
    return sec


# -- 8. sampling --------------------------------------------------------------------------------


def sampling_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("sampling", "油品质量与检验机构抽检")
    ratios = generic_table(
        data.sampling_ratios,
        ["kind", "sampled", "total", "ratio", "target", "met"],
        sheet="抽检比例",
        title="抽检比例",
        reason="无抽检记录",
    )
    failed = generic_table(
        data.sampling_failed,
        ["sample_id", "gas_station_name", "sampled_on", "product", "sulfur_mg_kg", "result"],
        sheet="不合格样品",
        title="不合格样品",
        reason="抽检样品均合格",
        sort=["sampled_on"],
    )
    sec.tables = [ratios, failed]
    sec.sources.append(threshold_ref("fuel.station_sampling_min", "加油站油品抽检比例要求"))
    sec.sources.append(threshold_ref("inspection.agency_sampling_min", "检验机构抽查比例要求"))
    sec.sources.append(threshold_ref("fuel.sulfur_max_mg_kg", "国六油品硫含量上限"))
    frame = data.sampling_ratios
    if frame is None or frame.empty:
        sec.empty_reason = ratios.empty_text
        return sec
    parts = []
    for rec in frame.to_dict(orient="records"):
        ratio = rec.get("ratio")
        text = f"{rec.get('kind', '')} {float(ratio) * 100:.1f}%" if not is_missing(ratio) else ""
        target = rec.get("target")
        if text and not is_missing(target):
            text += f"（要求 ≥{float(target) * 100:.0f}%）"
        parts.append(text)
    sec.summarise(
        "抽检比例：" + "；".join(p for p in parts if p) + f"；不合格样品 {len(failed.rows)} 个。"
    )
    return sec


# -- 9. dustfall, accountability, tamper, quality -----------------------------------------------


def dustfall_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("dustfall", "降尘量")
    frame = data.dustfall
    table = generic_table(
        frame,
        ["site", "site_id", "subdistrict", "n_samples", "days", "dustfall", "limit", "exceeds"],
        sheet="降尘",
        title="各点位月降尘量",
        reason="无降尘监测结果",
        sort=["site_id", "site"],
        extras=False,
    )
    areas = generic_table(
        data.dustfall_subdistrict,
        ["subdistrict", "n_sites", "dustfall", "limit", "exceeds"],
        sheet="街道降尘",
        title="各街道月降尘量（点位均值）",
        reason="无降尘监测结果",
        sort=["subdistrict_id", "subdistrict"],
        extras=False,
    )
    invalid = generic_table(
        data.dustfall_invalid,
        ["sample_id", "site_id", "site_name", "subdistrict", "start_date", "end_date"]
        + ["dustfall_t_km2", "note", "invalid_reason"],
        sheet="降尘无效样品",
        title="无效降尘样品（不计入月值）",
        reason="降尘样品均有效",
        sort=["sample_id"],
        extras=False,
    )
    sec.tables = [table, areas, invalid]
    sec.sources.append(threshold_ref("dustfall.max_t_km2_30d", "月均降尘量限值"))
    if frame is None or frame.empty:
        sec.empty_reason = table.empty_text
        return sec
    column = next((c for c in ("dustfall", "dustfall_t_km2_30d") if c in frame.columns), None)
    if column:
        values = pd.to_numeric(frame[column], errors="coerce")
        limit = thresholds()["dustfall.max_t_km2_30d"].value
        text = (
            f"降尘量点位均值 {values.mean():.2f} t/(km²·30d)（限值 {limit:g}），"
            f"{int((values >= limit).sum())} 个点位不达标"
        )
        subs = data.dustfall_subdistrict
        if subs is not None and len(subs) and "dustfall" in subs.columns:
            over = subs[pd.to_numeric(subs["dustfall"], errors="coerce") >= limit]
            label = "subdistrict" if "subdistrict" in over.columns else "subdistrict_id"
            names = "、".join(over[label].astype(str)) if len(over) else "无"
            text += f"，街道均值超过限值的：{names}"
        sec.summarise(text + "。")
        if invalid.rows:
            sec.notes.append(f"无效样品 {len(invalid.rows)} 个，不计入月值（见“无效降尘样品”表）。")
    return sec


def accountability_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("accountability", "量化问责")
    table = generic_table(
        data.accountability,
        ["subdistrict", "overdue_issues", "new_issue_score", "accountable"],
        sheet="量化问责",
        title="街道量化问责情形",
        reason="无街道达到量化问责情形",
        sort=["subdistrict", "subdistrict_id"],
        drop=("level",),  # the escalation key; ``accountable`` names the role in Chinese
    )
    sec.tables = [table]
    sec.sources.append(
        SourceRef(
            "量化问责",
            "第六条至第十条及附件",
            "schemas/data/accountability.toml",
            "金水区秋冬季攻坚量化问责实施办法",
            "plan",
        )
    )
    if not table.rows:
        sec.empty_reason = table.empty_text
        return sec
    frame = data.accountability
    n_accountable = len(table.rows)
    if frame is not None and "accountable" in frame.columns:
        n_accountable = int(frame["accountable"].fillna("").astype(str).str.strip().ne("").sum())
    sec.summarise(f"达到量化问责情形的街道 {n_accountable} 个。")
    return sec


def suspicion_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("suspicions", "疑似数据造假线索")
    table = generic_table(
        data.suspicions,
        [
            "device_id",
            "stack_id",
            "enterprise_name",
            "pattern",
            "first_seen",
            "last_seen",
            "evidence",
        ],
        sheet="疑似数据造假",
        title="疑似数据造假线索（待现场核查）",
        reason="未发现疑似造假模式",
        sort=["device_id"],
    )
    sec.tables = [table]
    if not table.rows:
        sec.empty_reason = table.empty_text
        return sec
    sec.summarise(f"疑似数据造假线索 {len(table.rows)} 条，须现场核查后方可认定。")
    return sec


def bureau_caveats(data: ReportData) -> pd.DataFrame | None:
    """Caveat rows for the bureau's own files: unusable dustfall samples and refused case events,
    in the layout of the pipeline's ``quality`` rows, with the figure each one weakens."""
    rows = []
    invalid = data.dustfall_invalid
    if invalid is not None and len(invalid):
        reasons = invalid.get("invalid_reason", pd.Series(dtype=str)).astype(str).value_counts()
        sites = "、".join(sorted({str(s) for s in invalid.get("site_id", []) if not is_missing(s)}))
        rows.append(
            {
                "figure": "dustfall, dustfall_subdistrict",
                "stream": "dustfall_records.csv",
                "n_total": None,
                "n_invalid": len(invalid),
                "n_missing": None,
                "note": f"点位 {sites} 的样品无效，不计入该点位及所在街道的月值（"
                + "；".join(
                    f"{vocabulary.text(r, 'invalid_reason')}：{n} 个" for r, n in reasons.items()
                )
                + "）",
            }
        )
    refused = data.case_events_refused
    if refused is not None and len(refused):
        cases = "、".join(sorted({str(c) for c in refused.get("case_id", [])}))
        rows.append(
            {
                "figure": "cases, penalty_ledger",
                "stream": "case_events.csv",
                "n_total": None,
                "n_invalid": len(refused),
                "n_missing": None,
                "note": f"案件 {cases} 的事件未采纳，按日计罚台账不含这些事件（见“未采纳的案件事件”表）",
            }
        )
    if not rows:
        return data.quality
    extra = pd.DataFrame(rows)
    if data.quality is None or data.quality.empty:
        return extra
    return pd.concat([data.quality, extra], ignore_index=True)


def quality_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("quality", "数据质量说明")
    table = generic_table(
        bureau_caveats(data),
        ["figure", "stream", "n_total", "n_invalid", "n_missing", "note"],
        sheet="数据质量",
        title="各项数据的无效与缺失情况",
        reason="未记录数据质量问题",
    )
    sec.tables = [table]
    sec.sources.append(
        SourceRef(
            "无效数据",
            "视为缺失，不插补",
            "DOMAIN.md §3",
            "GB 3095-2012 表4；HJ 663-2013",
            "std",
        )
    )
    if not table.rows:
        sec.empty_reason = table.empty_text
        return sec
    sec.summarise(f"数据质量说明 {len(table.rows)} 条（见“数据质量”表）。")
    return sec


# -- 10. public disclosure ----------------------------------------------------------------------

DEADLINE_COLUMNS = [
    "list_name",
    "issue_no",
    "source_name",
    "found_date",
    "list_deadline",
    "published_date",
    "list_status",
    "letter_date",
    "progress_deadline",
    "progress_published_date",
    "progress_status",
]


def disclosure_section(data: ReportData, ctx: Context) -> Section:
    sec = Section("disclosure", "督办问题信息公开")
    raw = data.disclosure
    findings = disclosure.normalise(raw) if raw is not None and len(raw) else None
    if findings is not None:
        findings = disclosure.relevant_to_month(findings, ctx.first, ctx.last)
    has = findings is not None and len(findings) > 0
    checks = disclosure.deadline_table(findings, ctx.as_of) if has else None
    reason = "环境保护部未公开涉及本区的督办问题"
    deadline_table = make_table(
        checks if has else pd.DataFrame(columns=DEADLINE_COLUMNS),
        DEADLINE_COLUMNS,
        title=f"公开时限（截至 {ctx.as_of.isoformat()}）",
        sheet="公开时限",
        empty_text=empty_text(raw, reason),
    )
    sec.tables = [deadline_table]
    blocks = disclosure.annex_blocks(findings) if has else {}
    for annex in layouts.annexes():
        columns = [Column(col, header, "text") for header, col in annex.columns]
        rows: list[list[object]] = []
        for block in blocks.get(annex.key, []):
            rows.append([block.title])
            rows.append(list(annex.headers))
            rows.extend(block.rows)
        sec.tables.append(
            Table(
                columns,
                rows,
                title=f"{annex.sheet}（{annex.annex}）",
                sheet=annex.sheet,
                empty_text=empty_text(raw, "无此类督办问题"),
                block_titles=True,
                empty_block_title=annex.title_for(layouts.disclosure_defaults()["city"], None),
            )
        )
    rules = layouts.deadlines()
    for rule in rules.values():
        unit = "个工作日" if rule.unit == "working_days" else "日（日历日）"
        sec.sources.append(
            SourceRef(
                f"公开时限：{'督办问题清单' if rule.name == 'list_publication' else '查处整改情况'}",
                f"{rule.value} {unit}",
                f"{LAYOUTS_FILE} [deadlines.{rule.name}]",
                rule.source,
                rule.mark,
            )
        )
    cal = calendar()
    sec.sources.append(
        SourceRef(
            "工作日历（节假日与调休上班日）",
            f"{cal.covered_from.isoformat()} 至 {cal.covered_until.isoformat()}",
            f"schemas/data/{CALENDAR_FILE.name}",
            "；".join(cal.sources),
            "std",
        )
    )
    sec.sources.append(
        SourceRef(
            "公开表格式", "附件1-3", LAYOUTS_FILE, "信息公开暨宣传工作实施方案 附件1-3", "plan"
        )
    )
    if not has:
        sec.empty_reason = empty_text(raw, reason)
        return sec
    unknown = disclosure.unknown_lists(findings)
    if unknown:
        sec.notes.append(f"未识别的清单类型（未列入公开表）：{'、'.join(unknown)}。")
    late_list = int((checks["list_met"] == False).sum())  # noqa: E712 (None = undecided)
    late_progress = int((checks["progress_met"] == False).sum())  # noqa: E712
    sec.summarise(
        f"督办问题 {len(findings)} 个；清单未按时公开 {late_list} 个，"
        f"查处整改情况未按时公开 {late_progress} 个。"
    )
    return sec


# -- the whole report ---------------------------------------------------------------------------

BUILDERS: tuple[tuple[str, Callable[[ReportData, Context], Section]], ...] = (
    ("超标情况", exceedance_section),
    ("立案查处", cases_section),
    ("传输有效率", transmission_section),
    ("微站上传率", upload_section),
    ("街道周排名", ranking_section),
    ("空气质量", aqi_section),
    ("重污染预警", alerts_section),
    ("油气回收", vapor_section),
    ("机动车遥感", rsd_section),
    ("油品与机构抽检", sampling_section),
    ("降尘", dustfall_section),
    ("量化问责", accountability_section),
    ("疑似造假", suspicion_section),
    ("信息公开", disclosure_section),
    ("数据质量", quality_section),
)


def numbered(index: int, title: str) -> str:
    """``一、title`` for index 0, ``十一、title`` for index 10 (up to 99 sections)."""
    n = index + 1
    tens, ones = divmod(n, 10)
    if n < 10:
        numeral = CHINESE_NUMERALS[n - 1]
    else:
        numeral = (CHINESE_NUMERALS[tens - 1] if tens > 1 else "") + "十"
        numeral += CHINESE_NUMERALS[ones - 1] if ones else ""
    return f"{numeral}、{title}"


def build_sections(
    data: ReportData, ctx: Context, progress: Callable[[int, int, str], None] | None = None
) -> list[Section]:
    sections = []
    for index, (label, builder) in enumerate(BUILDERS):
        if progress:
            progress(index + 1, len(BUILDERS), label)
        section = builder(data, ctx)
        section.title = numbered(index, section.title)
        sections.append(section)
    return sections


def sources_table(sections: list[Section]) -> Table:
    """The 说明 sheet: where every number of the report comes from."""
    seen = set()
    records = []
    for section in sections:
        for ref in section.sources:
            key = (ref.item, ref.file)
            if key in seen:
                continue
            seen.add(key)
            source, exact = vocabulary.source(ref.source)
            records.append(
                {
                    "item": ref.item,
                    "value": ref.value,
                    "file": ref.file,
                    "source": source,
                    "source_original": "" if exact else ref.source,
                    "mark": MARKS_ZH.get(ref.mark, ref.mark),
                }
            )
    keys = ["item", "value", "file", "source", "source_original", "mark"]
    frame = pd.DataFrame(records, columns=keys)
    if not frame["source_original"].astype(bool).any():
        keys.remove("source_original")
    table = make_table(frame, keys, sheet="说明")
    # an untranslated source text stays beside its Chinese in the workbook only
    table.columns = [
        replace(c, header="来源（原文）", in_print=False) if c.key == "source_original" else c
        for c in table.columns
    ]
    return table


def summary_paragraph(sections: list[Section], ctx: Context) -> str:
    parts = [s.summary for s in sections if s.summary]
    empty = [s.title.split("、", 1)[-1] for s in sections if s.is_empty]
    text = f"{ctx.label}：" + "".join(parts)
    if empty:
        text += f"本月无数据或无事项的部分：{'、'.join(empty)}。"
    return text


def generated_at() -> str:
    return pd.Timestamp.now(tz=BEIJING).strftime("%Y-%m-%d %H:%M")
