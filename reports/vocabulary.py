"""The report's one translation table: the English keys, codes and sentences the producers write
(``enforcement/``, ``validation/``, ``lantian/rules_*.py``) as the Chinese the bureau reads.

Three kinds of value:

- *Codes* (a case state, an alert rule, a fuel type …): one dict per column, :data:`VALUES`.
  A value not in the dict is printed as it is.
- *Pollutant keys*: HJ 212-2017 codes (``a21026``, names from ``schemas/data/hj212_codes.csv``),
  the AQI items (``pm25``, ``o3_8h``, names from ``schemas/data/aqi_rules.toml`` after GB 3095-2012),
  the remote-sensing quantities (``opacity_pct``, :data:`RSD_QUANTITIES`) and the emission-cut
  keys of the alert levels (``SO2``, ``VOCs``). Lists joined with "、", "," or "/" are
  translated item by item.
- *Sentences with numbers and dates* (refusal reasons, alert reasons, quality notes …): regular
  expressions per column, :data:`SENTENCES`, each giving the whole sentence in Chinese with the
  numbers and dates carried over. A sentence no pattern matches is left in English and the
  report keeps the original beside the translation in the workbook (never a guessed Chinese).

:func:`localise` applies all three to the columns of a frame; :func:`text` translates one value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pandas as pd

from schemas.ambient import aqi_rules
from schemas.rules import hj212_codes

# -- codes ---------------------------------------------------------------------------------------

#: enforcement.penalties: the state of a case's current round, and enforcement.vapor's day and
#: month status of a station (the two share the report's 状态 column; their keys do not overlap)
STATUS = {
    "found": "已发现超标，待处罚",
    "fined": "已处罚，待送达责令改正决定",
    "served": "已送达责令改正决定，待复查",
    "halted": "停产中",
    "closed": "已结案",
    "none": "无",
    "pass": "达标",
    "fail": "不达标",
    "insufficient": "数据不足",
    "no_monitor": "未装在线监控",
    "normal": "正常",
    "alarm": "报警",
    "zero_pressure": "压力为零",
}

#: enforcement.penalties.EVENTS (case_events.csv ``event``)
EVENTS = {
    "exceedance_found": "发现超标",
    "fine": "罚款",
    "correction_order_served": "送达责令改正决定",
    "halt": "停产",
    "resume": "恢复生产",
    "reinspection_failed": "复查不合格",
    "reinspection_passed": "复查合格",
}

#: enforcement.penalties.check_events: the ``review`` flag of an accepted event
REVIEW = {
    "late_reinspection": "复查超期",
    "same_day_reinspection": "送达当日复查",
    "repeat_order": "重复送达责令改正决定",
}

#: enforcement.alerts: transition rules, bases, how an episode ended; level "none"
ALERT_RULES = {
    "start": "启动",
    "upgrade": "升级",
    "lift": "解除",
    "forecast_lift": "依预报解除",
    "early_start": "依预报提前启动或升级",
}
ALERT_BASIS = {"observed": "实测", "observed+forecast": "实测及预报"}
NO_ALERT = {"none": "无预警", "": "无预警"}

#: vehicles.csv ``fuel_type`` and ``emission_standard`` (国三 … 国六, GB 17691 / GB 18352 stages)
FUEL_TYPES = {"diesel": "柴油", "gasoline": "汽油"}
EMISSION_STANDARDS = {"III": "国三", "IV": "国四", "V": "国五", "VI": "国六"}

#: data streams (schemas.reading) and the bureau files a caveat may name
STREAMS = {
    "cems": "污染源在线监测",
    "ambient": "微型空气站",
    "vapor": "油气回收在线监控",
    "vapor_tank": "油罐压力",
    "rsd": "机动车遥感",
}

#: validation.tamper rule names
TAMPER_RULES = {
    "flatline": "数值长时间不变",
    "dilution": "疑似稀释（氧含量升高、浓度下降）",
    "ratio_step": "污染物比值突变",
    "flag_cluster": "标记或缺失集中在检查、超标前后",
    "same_series": "与其他设备数据雷同",
    "clock_jump": "设备时钟跳变",
    "neighbour": "与周边站点明显偏离",
}

#: validation.suites expectation names (the ``quarantined <name>`` part of a quality note)
EXPECTATIONS = {
    "al_when_fuel": "加油时气液比超出范围",
    "before_install": "数据时间早于设备安装",
    "category": "取值不在允许类别内",
    "code_known": "监测因子无合理范围",
    "command_known": "非数据命令",
    "device_registered": "设备未登记",
    "duplicate": "重复数据",
    "flag_known": "未知数据标记",
    "future": "数据时间晚于接收时间",
    "monotonic": "数据时间倒退",
    "o2_with_concentration": "氧含量超出范围",
    "range": "超出合理范围",
    "required": "必填项缺失",
    "rows_due": "行数不足",
    "schema_columns": "列不全",
    "stream": "数据类别不符",
    "unit_known": "未知单位",
    "clock_jump": "时钟跳变",
    "clock_drift": "时钟漂移",
    "quarantine_share": "隔离数据占比过高",
}

#: the report's own tables named in a caveat's ``figure`` (lantian.rules_monthly.FIGURES)
FIGURES = {
    "exceedances": "超标情况",
    "cems_hourly": "小时均值",
    "transmission": "有效传输率",
    "cases": "立案查处",
    "penalty_ledger": "按日计罚台账",
    "suspicions": "疑似数据造假线索",
    "aqi_daily": "空气质量日报",
    "alerts": "重污染预警",
    "weekly_ranking": "街道周排名",
    "upload_rates": "微站上传率",
    "vapor_nozzle_days": "油枪气液比",
    "vapor_alarms": "油气回收报警",
    "vapor_station_efficiency": "加油站回收效率",
    "rsd_high_emitters": "遥感高排放车",
    "rsd_repeat_offenders": "遥感屡次超标车",
    "dustfall": "降尘",
    "dustfall_subdistrict": "街道降尘",
}

#: remote-sensing quantities (schemas/data/rsd_limits.csv, rsd_profile.csv): HJ 845-2017 /
#: GB 3847-2018 (diesel: 不透光烟度, 林格曼黑度, NO) and GB 18285-2018 (gasoline: CO, HC, NO)
RSD_QUANTITIES = {
    "opacity_pct": "不透光度",
    "ringelmann": "林格曼黑度",
    "no_ppm": "一氧化氮（NO）",
    "co_pct": "一氧化碳（CO）",
    "hc_ppm": "碳氢化合物（HC）",
    "speed_km_h": "车速",
    "accel_m_s2": "加速度",
    "vsp_kw_t": "机动车比功率（VSP）",
}

#: the emission-cut keys of schemas/data/alert_levels.toml (plan clause 35(3))
CUT_POLLUTANTS = {
    "SO2": "二氧化硫",
    "NOx": "氮氧化物",
    "PM": "颗粒物",
    "VOCs": "挥发性有机物（VOCs）",
}

#: the remote-sensing pass checks of enforcement.rsd.judge_passes (``reject_reason``)
RSD_CHECKS = {
    "unit_flag": "遥测设备判定无效",
    "speed": "车速超出有效范围",
    "accel": "加速度超出有效范围",
    "vsp": "比功率超出有效范围",
    "plate": "车牌无法识别",
    "calibration": "设备未在校准有效期内",
    "unit_invalid": "遥测设备判定无效",
}


@cache
def alert_levels() -> dict[str, str]:
    """Alert level key (``blue`` …) -> its Chinese name, from schemas/data/alert_levels.toml."""
    from schemas.ambient import alert_rules

    return {level.name: level.name_zh for level in alert_rules().levels}


@cache
def escalation_roles() -> dict[str, str]:
    """Accountability level key (``deputy`` …) -> the role it holds accountable."""
    from enforcement.accountability import escalation_levels

    return {level["name"]: level["role"] for level in escalation_levels()}


@cache
def pollutant_names() -> dict[str, str]:
    """Every pollutant key the producers write -> its Chinese name.

    HJ 212-2017 codes (the CEMS row wins where a code has two), the AQI items by key and by
    display name (``pm25`` and ``PM2.5`` -> 细颗粒物(PM2.5)), the remote-sensing quantities and the
    alert levels' emission-cut keys.
    """
    names: dict[str, str] = {}
    for row in hj212_codes():
        if row["stream"] == "cems" or row["code_2017"] not in names:
            names[row["code_2017"]] = row["name_zh"]
    for item, (name, name_zh) in aqi_rules().names.items():
        names[item] = name_zh
        names[name] = name_zh
    names.update(RSD_QUANTITIES)
    names.update(CUT_POLLUTANTS)
    return names


def aqi_items() -> list[str]:
    """The AQI items (``so2`` … ``pm25``) in the order of schemas/data/aqi_rules.toml."""
    return list(aqi_rules().names)


_SPLIT = re.compile(r"(、|, ?|/)")


def pollutant(value: object) -> object:
    """One pollutant key, or a list of them joined by 、 , or /, in Chinese; else unchanged."""
    if not isinstance(value, str) or not value:
        return value
    names = pollutant_names()
    if value in names:
        return names[value]
    parts = _SPLIT.split(value)
    if len(parts) == 1:
        return value
    words = parts[::2]
    if not all(w.strip() in names for w in words):
        return value
    seps = ["、" if s.strip() in (",", "、") else s for s in parts[1::2]]
    out = names[words[0].strip()]
    for sep, word in zip(seps, words[1:], strict=True):
        out += sep + names[word.strip()]
    return out


# -- sentences -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    pattern: re.Pattern[str]
    render: Callable[[re.Match[str]], str | None]


def _s(pattern: str, render: str | Callable[[re.Match[str]], str | None]) -> Sentence:
    """A sentence pattern (matched whole) and its Chinese, as a format string over the groups."""
    compiled = re.compile(pattern + r"\Z", re.S)
    if isinstance(render, str):
        template = render
        return Sentence(compiled, lambda m: template.format(*m.groups(), **m.groupdict()))
    return Sentence(compiled, render)


def _level(key: str) -> str:
    return alert_levels().get(key, NO_ALERT.get(key, key))


_WHEN = r"(\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2})?)"
_NUM = r"(-?[\d.]+(?:e[+-]?\d+)?)"

#: case refusals (enforcement.penalties._row_problem and _apply), sampling failures, dustfall
#: sample checks (enforcement.ambient.dustfall_normalise)
REFUSALS = (
    _s(r"unknown event '(.*)' \(expected one of .*\)", "未知事件类型“{0}”"),
    _s(r"missing or unreadable date", "日期缺失或无法识别"),
    _s(r"missing case_id", "缺少案件编号"),
    _s(r"unknown stack '(.*)'", "排口“{0}”不在登记名录中"),
    _s(r"negative amount " + _NUM, "金额为负数（{0}）"),
    _s(r"a fine needs a positive amount_yuan", "罚款事件须填写大于零的金额"),
    _s(
        r"duplicate of an earlier row \(same case, event, date and document\)",
        "与前面的行重复（案件、事件、日期、文书均相同）",
    ),
    _s(r"stack '(.*)' differs from the case's stack '(.*)'", "排口“{0}”与本案排口“{1}”不一致"),
    _s(
        r"a second fine in open round (\d+): a continuing violation is penalised day by day, "
        r"or close the round with a passed re-inspection first",
        "第{0}轮未结案时再次罚款：违法行为持续的应按日连续处罚，或先经复查合格结束本轮",
    ),
    _s(
        r"dates out of order: order served on " + _WHEN + r" before the fine of " + _WHEN,
        "日期顺序矛盾：责令改正决定于 {0} 送达，早于 {1} 的罚款",
    ),
    _s(
        r"a correction order served before any fine in this round",
        "本轮尚未罚款即送达责令改正决定",
    ),
    _s(r"a halt outside an open round", "停产记录不在未结案的轮次内"),
    _s(r"already halted since " + _WHEN, "自 {0} 起已处于停产状态"),
    _s(r"a resume without a halt", "无停产记录而恢复生产"),
    _s(
        r"re-inspection after round (\d+) was closed on " + _WHEN,
        "第{0}轮已于 {1} 结案后又有复查",
    ),
    _s(
        r"dates out of order: re-inspection on " + _WHEN + r" before the order served on " + _WHEN,
        "日期顺序矛盾：{0} 复查，早于 {1} 送达的责令改正决定",
    ),
    _s(
        r"a re-inspection before any correction order was served",
        "尚未送达责令改正决定即复查",
    ),
    _s(
        r"a failed re-inspection while halted since "
        + _WHEN
        + r" contradicts the halt: record the resume first",
        "自 {0} 起停产期间复查不合格，与停产记录矛盾：须先记录恢复生产",
    ),  # fmt: skip
    # enforcement.sampling.failed_samples
    _s(r"sulfur " + _NUM + r" mg/kg > " + _NUM + r" mg/kg", "硫含量 {0} mg/kg，超过 {1} mg/kg"),
    _s(r"result (.*)", lambda m: f"检验结果为“{VALUES['result'].get(m.group(1), m.group(1))}”"),
)

DUSTFALL_INVALID = (
    _s(r"dustfall value missing or not a number", "降尘量缺失或不是数字"),
    _s(r"negative dustfall", "降尘量为负数"),
    _s(r"end_date not after start_date", "结束日期不晚于开始日期"),
    _s(r"start_date or end_date not a date", "开始或结束日期无法识别"),
)


def _validity(m: re.Match[str]) -> str | None:
    kind, rest = m.group(1), m.group(2)
    if kind == "flag":
        if rest.endswith("-unaudited"):
            return f"手工设定值（标记 {rest.removesuffix('-unaudited')}）无审核记录"
        return f"数据标记 {rest}，不计入有效数据"
    if kind == "clock":
        return {"jump": "设备时钟跳变", "drift": "设备时钟漂移"}.get(
            rest, f"设备时钟异常（{rest}）"
        )
    if kind == "review":
        return f"数据标记 {rest}，有效但需复核"
    if kind == "rsd":
        return RSD_CHECKS.get(rest, f"遥测设备判定无效（{rest}）")
    return None


#: validation.validity reasons (``flag:M``, ``clock:jump``, ``rsd:<unit reason>``, ``review:T``)
VALIDITY = (_s(r"(flag|clock|review|rsd):(.+)", _validity),)


def _episode_reason(m: re.Match[str]) -> str | None:
    d = m.groupdict()
    source = _national_levels(d["source"])
    if source is None or d["level"] not in alert_levels():
        return None
    text = (
        f"滚动24小时AQI超过 {d['heavy']} 的天数 {d['days']} 天（互不重叠的24小时窗口，"
        f"截止于 {d['ends'].replace(', ', '、')}），其中超过 {d['severe']} 的 {d['sdays']} 天，"
        f"最大值 {d['peak']}（{d['at']}）→ {_level(d['level'])}预警（{source}）"
    )
    if d.get("runs"):
        text += (
            f"；攻坚方案第34条：{d['runs']} 段重污染之间的间隔均未达到解除条件"
            f"（AQI ≤ {d['lift']} 持续 {d['hours']} 小时），合并为一次过程，从严按较高级别判定"
        )
    return text


_EPISODE = (
    r"(?P<days>\d+) day\(s\) of rolling 24-h AQI above (?P<heavy>[\d.]+) "
    r"\(non-overlapping windows ending (?P<ends>[^)]*)\), (?P<sdays>\d+) above "
    r"(?P<severe>[\d.]+), peak (?P<peak>[\d.]+) at (?P<at>[\d: -]+) "
    r"-> (?P<level>\w+) \((?P<source>[^()]*(?:\([^()]*\)[^()]*)*)\)"
    r"(?:; clause 34: (?P<runs>\d+) heavy runs are one process because no gap between them "
    r"met the lift condition \(AQI <= (?P<lift>[\d.]+) for (?P<hours>\d+) h\), judged "
    r"together at the stricter level)?"
)

#: enforcement.alerts transition reasons (observed data; the forecast sentences stay English)
ALERT_REASONS = (
    _s(_EPISODE, _episode_reason),
    _s(
        r"rolling 24-h AQI <= ([\d.]+) \(light pollution or better\) for (\d+) consecutive hours, "
        + _WHEN
        + " to "
        + _WHEN
        + r" -> lifted \(plan clause 34: lasting (\d+) h or more\)",
        "滚动24小时AQI ≤ {0}（轻度污染及以下）连续 {1} 小时（{2} 至 {3}）→ 解除预警"
        "（攻坚方案第34条：持续 {4} 小时以上）",
    ),  # fmt: skip
)

#: enforcement.alerts notes (an episode's ``note``)
ALERT_NOTES = (
    _s(
        r"no forecast supplied: judged on observed data only; the clause-34 early start "
        r"\(no improvement forecast within (\d+) h\) and the lift on a predicted improvement "
        r"were not assessed",
        "未提供预报：仅按实测数据判定；攻坚方案第34条的提前启动（未来 {0} 小时内无明显改善）"
        "和依预报解除未评估",
    ),
    _s(r"no observed hour: the forecast was not assessed", "无实测小时数据：未评估预报"),
)


def _national_levels(text: str) -> str | None:
    """A level's source note (alert_levels.toml) in Chinese; None when not recognised."""
    m = re.fullmatch(r"national unified (?:alert )?levels 2017: (\w+), (.*)", text)
    if not m:
        return None
    rest = m.group(2)
    rest = re.sub(
        r"daily AQI above (\d+) for (\d+) days? or more", r"日AQI大于\1持续\2天及以上", rest
    )
    rest = re.sub(
        r"daily AQI above (\d+) for (\d+) days? with at least one above (\d+)",
        r"日AQI大于\1持续\2天且至少1天大于\3",
        rest,
    )
    rest = re.sub(r"daily AQI above (\d+) for (\d+) days?", r"日AQI大于\1持续\2天", rest)
    if _has_latin(rest.replace("AQI", "")):
        return None
    return f"2017年全国统一预警分级：{_level(m.group(1))}，{rest}"


def _supervision(m: re.Match[str]) -> str:
    return f"{m.group(2)} 有 {m.group(1)} 家企业超标：{m.group(3).replace(', ', '、')}"


def _transmission(m: re.Match[str]) -> str:
    listed = m.group(2)
    agg = re.fullmatch(r"aggregate ([\d.]+%)", listed)
    what = f"街道合计 {agg.group(1)}" if agg else listed.replace(", ", "、")
    return f"有效传输率低于 {m.group(1)}：{what}"


#: enforcement.supervision reasons (joined by "; ")
SUPERVISION = (
    _s(r"(\d+) enterprises exceeded in (\d{4}-\d{2}): (.*)", _supervision),
    _s(r"effective transmission under ([\d.]+%): (.*)", _transmission),
)


def _quality_part(m: re.Match[str]) -> str | None:
    kind, what, n = m.group(1), m.group(2), m.group(3)
    if kind == "quarantined":
        name = EXPECTATIONS.get(what)
        return f"隔离（{name}）{n} 条" if name else None
    reason, exact = translate(what, "invalid_reason")
    return f"无效（{reason}）{n} 条" if exact else None


def _critical(m: re.Match[str]) -> str:
    checks = "、".join(EXPECTATIONS.get(c.strip(), c.strip()) for c in m.group(1).split(","))
    return f"{m.group(2).replace(', ', '、')} 关键校验未通过（{checks}）"


def _device_figure(m: re.Match[str]) -> str:
    what = {
        "exceedances and transmission": "超标情况与有效传输率",
        "AQI and upload rate": "空气质量与上传率",
    }[m.group(1)]
    return f"{m.group(2)} 的{what}"


def _figures(m: re.Match[str]) -> str | None:
    names = [FIGURES.get(p.strip()) for p in m.group(0).split(",")]
    return "、".join(names) if all(names) else None  # type: ignore[arg-type]


#: lantian.rules_monthly quality rows (``note`` parts joined by "; ", and ``figure``)
QUALITY = (
    _s(r"(quarantined|invalid) (.+): (\d+)", _quality_part),
    _s(r"critical checks failed \((.*)\) on (.*)", _critical),
    _s(
        r"(\d+) of (\d+) records due were received valid \(([\d.]+%)\)",
        "应传 {1} 条，收到有效 {0} 条（{2}）",
    ),
)
FIGURE_SENTENCES = (
    _s(r"(exceedances and transmission|AQI and upload rate) of (.+)", _device_figure),
    _s(r"[a-z_]+(?:, ?[a-z_]+)*", _figures),
)


def _cuts(m: re.Match[str]) -> str:
    return f"{pollutant_names().get(m.group(1), m.group(1))}减排不低于 {m.group(2)}%"


#: enforcement.alerts.cuts_text ("SO2 >= 10 %; …"), one part per pollutant
CUTS = (_s(r"(\w+) >= ([\d.]+) %", _cuts),)

#: enforcement.penalties next actions (the cases' ``measure``)
MEASURES = (
    _s(r"fine at once \(即超即罚\)", "即超即罚"),
    _s(r"serve the correction order", "送达责令改正决定"),
    _s(r"re-inspect \(unannounced\) by " + _WHEN, "{0} 前暗查复查"),
    _s(
        r"verify the halt; record the resume before re-inspecting",
        "核实停产情况；复查前须先记录恢复生产",
    ),
    _s(r"closed", "已结案"),
)

_EVIDENCE_NOTE = r"(?: \(evidence: first (\d+) of (\d+) readings\))?"


def _with_evidence(render: str) -> Callable[[re.Match[str]], str]:
    def out(m: re.Match[str]) -> str:
        groups = m.groups()
        shown, total = groups[-2], groups[-1]
        body = render.format(*(_code(g) for g in groups[:-2]))
        return body + (f"（证据：{total} 条数据中的前 {shown} 条）" if shown else "")

    return out


def _code(value: str | None) -> str:
    if value is None:
        return ""
    return str(pollutant(value)) if value in pollutant_names() else value


#: validation.tamper details (the numbers carried over; units as the rule prints them)
TAMPER_DETAILS = (
    _s(
        r"(\w+) held (\S+) for (\d+) valid minutes" + _EVIDENCE_NOTE,
        _with_evidence("{0} 连续 {2} 个有效分钟保持 {1} 不变"),
    ),
    _s(
        r"(\d+) h with O2 ([+-][\d.]+) pp over its median \((.*?)\)(.*?)" + _EVIDENCE_NOTE,
        lambda m: _dilution(m),
    ),
    _s(
        r"median (\w+)/(\w+) (\w+) x([\d.]+) at (\S+) \((\d+) sigma\)" + _EVIDENCE_NOTE,
        lambda m: _ratio_step(m),
    ),
    _s(
        r"(\d+) flagged or missing hours near (\d+) event hours \(([\d.]+%)\) against "
        r"([\d.]+%) elsewhere" + _EVIDENCE_NOTE,
        _with_evidence(
            "检查或超标前后 {1} 个事件小时附近有 {0} 个标记或缺失小时（{2}），其他时段为 {3}"
        ),
    ),
    _s(
        r"(\d+) channel-hours identical to (\S+) minute for minute; (\S+) received ([\d.]+) s "
        r"(later|apart \(cannot tell the copy\))" + _EVIDENCE_NOTE,
        lambda m: _same_series(m),
    ),
    _s(
        r"device time minus receive time stepped ([+-][\d.]+) s \(cn (\d+)\)" + _EVIDENCE_NOTE,
        _with_evidence("设备时间与接收时间之差跳变 {0} 秒（命令 {1}）"),
    ),
    _s(
        r"(\d+) h at x([\d.]+) of its usual level against neighbours within ([\d.]+) km "
        r"\(median \|z\| ([\d.]+)\)" + _EVIDENCE_NOTE,
        _with_evidence("{0} 小时为周边 {2} km 内站点通常水平的 {1} 倍（|z| 中位数 {3}）"),
    ),
)


def _evidence_tail(shown: str | None, total: str | None) -> str:
    return f"（证据：{total} 条数据中的前 {shown} 条）" if shown else ""


def _dilution(m: re.Match[str]) -> str | None:
    hours, rise, ratios, flue, shown, total = m.groups()
    parts = []
    for item in ratios.split(", "):
        code, _, factor = item.partition(" x")
        parts.append(f"{_code(code)} 为中位数的 {factor} 倍")
    text = f"连续 {hours} 小时氧含量比中位数高 {rise} 个百分点（{'，'.join(parts)}）"
    flue_m = re.fullmatch(r"; flue ([+-][\d.]+) degC, velocity x([\d.]+)", flue)
    if flue_m:
        text += f"；烟温变化 {flue_m.group(1)} ℃，流速为 {flue_m.group(2)} 倍"
    elif flue:
        return None
    return text + _evidence_tail(shown, total)


def _ratio_step(m: re.Match[str]) -> str | None:
    a, b, direction, factor, at, sigma, shown, total = m.groups()
    moved = {"rose": "升高", "fell": "降低", "up": "升高", "down": "降低"}.get(direction)
    if moved is None:
        return None
    try:  # the rule writes the instant in ISO form (UTC); the report speaks Beijing time
        stamp = pd.Timestamp(at).tz_convert("Asia/Shanghai").strftime("%Y-%m-%d %H:%M")
    except (ValueError, TypeError):
        return None
    return (
        f"{_code(a)}/{_code(b)} 小时比值中位数在 {stamp} {moved}为 {factor} 倍（{sigma} 倍稳健标准差）"
        + _evidence_tail(shown, total)
    )


def _same_series(m: re.Match[str]) -> str:
    hours, other, device, lag, how, shown, total = m.groups()
    when = "晚" if how == "later" else "相差"
    tail = "" if how == "later" else "（无法判断哪台为复制）"
    return (
        f"{hours} 个通道小时与 {other} 逐分钟相同；{device} 接收时间{when} {lag} 秒{tail}"
        + _evidence_tail(shown, total)
    )


#: lantian.rules_monthly.evidence_text
EVIDENCE = (_s(r"(\d+) readings: (.*)", "{0} 条数据：{1}"),)

#: schemas/data/emission_limits.csv: categories, and the standards and sources not numbered as
#: GB/HJ standards (lantian's stack_limits give ``limit_source`` = "standard; category; source")
LIMIT_CATEGORIES = {
    "in_use": "在用锅炉",
    "new": "新建锅炉",
    "special": "特别排放限值",
    "low_nox_retrofit": "低氮改造",
    "ultra_low": "超低排放",
}
LIMIT_TEXTS = {
    "ZZ low-NOx-2018": "郑州市燃气锅炉低氮改造（2018）",
    "ZZ low-NOx": "郑州市燃气锅炉低氮改造",
    "Zhengzhou gas-boiler low-NOx retrofit requirement (2018)": "郑州市燃气锅炉低氮改造要求（2018年）",
    "ultra-low-2015": "燃煤电厂超低排放（2015）",
    "ultra-low": "燃煤电厂超低排放",
    "coal-power ultra-low emission requirement": "燃煤电厂超低排放要求",
}
_RECALLED = " (recalled; override per permit)"


def _limit_source(m: re.Match[str]) -> str | None:
    value = m.group(0)
    recalled = _RECALLED in value
    parts = []
    for part in value.replace(_RECALLED, "").split("; "):
        standard = re.fullmatch(r"((?:GB|HJ)(?:/T)? [\d.]+-\d{4})(?: table (\d+))?", part)
        if standard:
            parts.append(
                standard.group(1) + (f" 表{standard.group(2)}" if standard.group(2) else "")
            )
        elif part in LIMIT_CATEGORIES or part in LIMIT_TEXTS:
            parts.append(LIMIT_CATEGORIES.get(part) or LIMIT_TEXTS[part])
        elif _has_latin(part):
            return None
        else:
            parts.append(part)
    # the file marks these rows "recalled": the number is to be checked against the permit
    return "；".join(parts) + ("（限值未经核实，以排污许可证为准）" if recalled else "")


LIMIT_SOURCE = (_s(r".+", _limit_source),)

#: column -> the sentence patterns of its values (parts joined by "; " are translated one by one)
SENTENCES: dict[str, tuple[Sentence, ...]] = {
    "reason": REFUSALS + ALERT_REASONS + VALIDITY,
    "invalid_reason": DUSTFALL_INVALID + VALIDITY,
    "reject_reason": VALIDITY,
    "reasons": SUPERVISION,
    "note": QUALITY + ALERT_NOTES,
    "figure": FIGURE_SENTENCES,
    "measure": MEASURES,
    "next_action": MEASURES,
    "action": CUTS,
    "required_cuts": CUTS,
    "detail": TAMPER_DETAILS,
    "evidence": EVIDENCE,
    "limit_source": LIMIT_SOURCE,
}

#: column -> its code dict
VALUES: dict[str, dict[str, str]] = {
    "status": STATUS,
    "state": STATUS,
    "event": EVENTS,
    "review": REVIEW,
    "rule": ALERT_RULES,
    "ended_by": ALERT_RULES,
    "basis": ALERT_BASIS,
    "fuel_type": FUEL_TYPES,
    "emission_standard": EMISSION_STANDARDS,
    "stream": STREAMS,
    "pattern": TAMPER_RULES,
    "result": {"pass": "合格", "fail": "不合格", "failed": "不合格"},
}
#: columns whose values are alert levels (keys from alert_levels.toml)
LEVEL_COLUMNS = frozenset({"level", "from_level", "to_level", "projected_level"})
#: columns whose values are pollutant keys (one, or a list)
POLLUTANT_COLUMNS = frozenset(
    {"pollutant", "pollutants", "primary", "exceeding_pollutants", "code", "pollutant_zh"}
)


#: every column :func:`translate` changes
TRANSLATED_COLUMNS = (
    frozenset(VALUES) | frozenset(SENTENCES) | POLLUTANT_COLUMNS | LEVEL_COLUMNS | {"levels"}
)


def _has_latin(value: str) -> bool:
    """Whether ``value`` has a Latin word besides standard numbers and file names."""
    return bool(re.search(r"[A-Za-z]{2,}", _strip_allowed(value)))


def _sentence(value: str, patterns: tuple[Sentence, ...]) -> str | None:
    for sentence in patterns:
        m = sentence.pattern.match(value)
        if m:
            out = sentence.render(m)
            if out is not None:  # None: the shape matched but a part is unknown
                return out
    return None


def sentence(value: str, column: str) -> tuple[str, bool]:
    """``value`` of ``column`` in Chinese and whether that is exact (every part recognised)."""
    patterns = SENTENCES.get(column, ())
    # producers join several sentences with "; ": each part is one sentence (a pattern ending in
    # free text would otherwise swallow the parts after it)
    parts = value.split("; ")
    done = [_sentence(part, patterns) for part in parts]
    if all(d is not None for d in done):
        return "；".join(done), True  # type: ignore[arg-type]
    whole = _sentence(value, patterns)
    if whole is not None:
        return whole, True
    out, exact = [], True
    for part, translated in zip(parts, done, strict=True):
        if translated is None:
            exact = exact and not _has_latin(part)
            translated = part
        out.append(translated)
    return "；".join(out), exact


def text(value: object, column: str) -> object:
    """One value of ``column`` as the report prints it (unchanged when nothing applies)."""
    return translate(value, column)[0]


def translate(value: object, column: str) -> tuple[object, bool]:
    """(``value`` in Chinese, exact?) for one cell of ``column``; lists item by item."""
    if isinstance(value, list | tuple):
        items = [translate(v, column) for v in value]
        return [v for v, _ in items], all(ok for _, ok in items)
    if not isinstance(value, str) or value == "":
        return value, True
    if column in LEVEL_COLUMNS:
        if value in alert_levels():
            return alert_levels()[value], True
        if value in NO_ALERT:
            return NO_ALERT[value], True
        if value in escalation_roles():
            return escalation_roles()[value], True
        return value, True
    if column == "levels":
        return escalation_roles().get(value, value), True
    if column in POLLUTANT_COLUMNS:
        return pollutant(value), True
    if column in VALUES:
        return VALUES[column].get(value, value), True
    if column in SENTENCES:
        return sentence(value, column)
    return value, True


ORIGINAL_SUFFIX = "__original"


def localise(frame: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with the values of ``keys`` in Chinese, and the keys of the sentence columns some
    of whose values could not be translated exactly: their originals are kept in
    ``<key>__original`` (the workbook prints them beside the translation)."""
    out = frame.copy() if len(frame) else frame
    inexact: list[str] = []
    for key in keys:
        if key not in frame.columns or not len(frame):
            continue
        if key not in TRANSLATED_COLUMNS:
            continue
        pairs = [translate(v, key) for v in frame[key].tolist()]
        out[key] = pd.Series([p[0] for p in pairs], index=frame.index, dtype=object)
        if key in SENTENCES and not all(ok for _, ok in pairs):
            out[key + ORIGINAL_SUFFIX] = frame[key]
            inexact.append(key)
    return out, inexact


# -- the sources of the report's numbers (说明 sheet) ---------------------------------------------

#: source text of a data file (English there) -> the Chinese the 说明 sheet prints; an entry
#: missing here is printed as the file has it and kept beside in the workbook
SOURCES = {
    "HJ 75-2017: an hourly mean needs at least 45 valid minute records": (
        "HJ 75-2017：小时均值至少需要45个有效分钟数据"
    ),
    "plan clause 18: effective data-transmission rate at least 90 %": (
        "攻坚方案第18条：数据有效传输率不低于90%"
    ),
    "plan clause 1: micro-station upload rate at least 90 %": (
        "攻坚方案第1条：微型空气站数据上传率不低于90%"
    ),
    "plan 保障(五) and 问责 art. 7: 17 subdistricts ranked": (
        "攻坚方案保障措施（五）及量化问责办法第七条：17个街道参与排名"
    ),
    "GB 20952-2007 acceptable air-to-liquid ratio 1.0-1.2": "GB 20952-2007：气液比合格范围1.0-1.2",
    "plan clause 23: vapor-recovery efficiency at least 85 %": (
        "攻坚方案第23条：油气回收效率不低于85%"
    ),
    "plan clause 23: stations selling over 5000 t gasoline a year install online monitors": (
        "攻坚方案第23条：年汽油销量超过5000吨的加油站安装在线监控"
    ),
    "consecutive out-of-range days before a nozzle warning": "油枪气液比连续超出范围多少天后预警",
    "consecutive out-of-range days before a nozzle alarm": "油枪气液比连续超出范围多少天后报警",
    "plan clause 20(2): over 3.5 t to the environment bureau, lighter to the traffic police": (
        "攻坚方案第20条（二）：3.5吨以上移交环保部门，以下移交公安交管部门"
    ),
    "plan clause 33: key transport enterprises' China IV or better trucks at least 80 %": (
        "攻坚方案第33条：重点运输企业国四及以上排放标准车辆占比不低于80%"
    ),
    "plan clause 22(2): at least 10 % of stations sampled a month": (
        "攻坚方案第22条（二）：每月抽检加油站不少于10%"
    ),
    "plan clause 20(3): at least 20 % of inspection agencies checked a month": (
        "攻坚方案第20条（三）：每月抽查机动车检验机构不少于20%"
    ),
    "China VI gasoline and diesel (GB 17930-2016, GB 19147-2016): sulfur <= 10 mg/kg": (
        "国六汽油、柴油（GB 17930-2016、GB 19147-2016）：硫含量不大于10 mg/kg"
    ),
    "plan clause 30: mean dustfall under 9 t/(km2*30 d)": (
        "攻坚方案第30条：月均降尘量低于9 t/(km²·30d)"
    ),
    "HJ 633-2012 table 2 (DOMAIN.md section 2)": "HJ 633-2012 表2（DOMAIN.md 第2节）",
    "信息公开方案 二(二)1: 环境保护部公开涉及我区督办问题之日起2个工作日内……公开督办问题清单; "
    "the day of publication is not counted (期间开始的当日不计入, 民法总则 art. 201)": (
        "信息公开方案 二(二)1：环境保护部公开涉及我区督办问题之日起2个工作日内……公开督办问题清单；"
        "公开当日不计入（期间开始的当日不计入，民法总则第二百零一条）"
    ),
    "信息公开方案 二(二)2: 督办函印发后15日内……将督办问题查处情况、整改方案及落实情况……予以公开. "
    "The plan writes 日, not 工作日 as in item 1 of the same clause, so these are calendar days; "
    "a period whose last day is a rest day ends on the next working day (民法总则 2017 art. 203)": (
        "信息公开方案 二(二)2：督办函印发后15日内……将督办问题查处情况、整改方案及落实情况……予以公开。"
        "该条第1项写“工作日”，本项写“日”，故按日历日计；期间最后一日为休息日的，"
        "以其次日（工作日）为最后一日（民法总则第二百零三条）"
    ),
}


def source(value: str) -> tuple[str, bool]:
    """A source text in Chinese and whether it was recognised (or needs none)."""
    if value in SOURCES:
        return SOURCES[value], True
    return value, not _has_latin(_strip_allowed(value))


def _strip_allowed(value: str) -> str:
    """The text without the parts that stay Latin in Chinese prose: standard numbers
    (``GB 13271-2014``, ``HJ 212-2017``), file names and units."""
    value = re.sub(r"\b(?:GB|HJ|GB/T|HJ/T)\s?[\d.]+-\d{4}", "", value)
    value = re.sub(r"\S+\.(?:md|csv|toml|py)\b", "", value)
    return value
