"""The one mapping of frame columns to the Chinese headers and display kinds of the report.

Every table of the report (xlsx, PDF, HTML) takes its header from :data:`COLUMNS`; a column missing
here is shown under its own name, with its kind guessed from its dtype, so a producer that adds a
column never breaks the report. The annex tables of the plan are the one exception: their headers
are the plan's own spelling, kept as data in ``schemas/data/report_layouts.toml``.

Kinds: ``text``, ``int``, ``float1``, ``float2``, ``float3``, ``pct`` (a ratio 0-1 shown as a
percentage), ``date``, ``datetime`` (Beijing), ``bool`` (是/否), ``list`` (joined).
"""

from __future__ import annotations

#: column -> (Chinese header, kind)
COLUMNS: dict[str, tuple[str, str]] = {
    # who and where
    "enterprise_id": ("企业编号", "text"),
    "enterprise_name": ("企业", "text"),
    "stack_id": ("排口编号", "text"),
    "stack_name": ("排口", "text"),
    "device_id": ("设备编号", "text"),
    "owner": ("所属单位", "text"),
    "subdistrict": ("街道", "text"),
    "subdistrict_id": ("街道编号", "text"),
    "station_id": ("站点编号", "text"),
    "station_name": ("站点", "text"),
    "gas_station_id": ("加油站编号", "text"),
    "gas_station_name": ("加油站", "text"),
    "nozzle_id": ("油枪", "text"),
    "site": ("点位", "text"),
    "site_id": ("点位编号", "text"),
    "site_name": ("点位", "text"),
    "plate": ("车牌号", "text"),
    "vehicle_owner": ("车辆所有人", "text"),
    "transport_enterprise": ("运输企业", "text"),
    "fuel_type": ("燃料类型", "text"),
    "gross_weight_t": ("总质量（t）", "float1"),
    "emission_standard": ("排放阶段", "text"),
    "agency": ("检验机构", "text"),
    "agency_id": ("检验机构编号", "text"),
    # exceedances
    "exceedance_id": ("超标编号", "text"),
    "pollutant": ("污染物", "text"),  # HJ 212 codes are shown by their Chinese names
    "pollutant_zh": ("污染物", "text"),
    "period": ("时段", "text"),
    "hour_start": ("小时起始（北京时间）", "datetime"),
    "hourly_mean": ("小时均值（折算，mg/m³）", "float2"),
    "limit_value": ("标准限值（mg/m³）", "float2"),
    "limit_source": ("依据", "text"),
    "n_readings": ("数据条数", "int"),
    "reading_ids": ("原始数据编号", "list"),
    "raw_sha256s": ("原始报文哈希", "list"),
    "times_limit": ("超标倍数", "float2"),
    "n_hours": ("超标小时数", "int"),
    "worst_hourly": ("最大小时均值（折算，mg/m³）", "float2"),
    "n_evidence": ("证据数据条数", "int"),
    "first_period": ("首个超标时段", "text"),
    "last_period": ("最近超标时段", "text"),
    # supervision (挂牌督办)
    "n_exceeding_enterprises": ("超标企业数", "int"),
    "exceeding_enterprises": ("超标企业", "list"),
    "stacks_under_transmission": ("有效传输率不足的排口", "list"),
    "aggregate_transmission": ("街道有效传输率", "pct"),
    "listed_for_exceedances": ("多家企业超标", "bool"),
    "listed_for_transmission": ("有效传输率不足", "bool"),
    "listed": ("挂牌督办", "bool"),
    "reasons": ("督办原因", "text"),
    # cases and day-by-day penalties
    "case_id": ("案件编号", "text"),
    "opened": ("立案日期", "date"),
    "reinspection_due_by": ("复查期限", "date"),
    "opened_on": ("立案日期", "date"),
    "status": ("状态", "text"),
    "measure": ("处理措施", "text"),
    "fine_yuan": ("罚款（元）", "float2"),
    "amount_yuan": ("金额（元）", "float2"),
    "round": ("轮次", "int"),
    "served_on": ("送达日期", "date"),
    "start": ("起始日期", "date"),
    "end": ("截止日期", "date"),
    "start_date": ("起始日期", "date"),
    "end_date": ("截止日期", "date"),
    "days": ("天数", "int"),
    "penalty_days": ("计罚天数", "int"),
    "daily_fine_yuan": ("原处罚数额（元）", "float2"),
    "total_yuan": ("按日计罚总额（元）", "float2"),
    "basis": ("依据", "text"),
    "reinspection_on": ("复查日期", "date"),
    "reinspection_result": ("复查结果", "text"),
    "decision_no": ("决定书编号", "text"),
    "fine_date": ("处罚日期", "date"),
    "fine_document_no": ("处罚决定书文号", "text"),
    "served_date": ("改正决定送达日期", "date"),
    "order_document_no": ("责令改正文号", "text"),
    "reinspection_date": ("复查日期", "date"),
    "reinspection_document_no": ("复查文书编号", "text"),
    "calendar_days": ("日历天数", "int"),
    "halted_days": ("停产天数", "int"),
    "late_reinspection": ("复查超期", "bool"),
    "event": ("事件", "text"),
    "row": ("文件行号", "int"),
    "document_no": ("文书编号", "text"),
    "state": ("状态", "text"),
    "next_action": ("下一步", "text"),
    # transmission and upload
    "month": ("月份", "text"),
    "due": ("应传条数", "int"),
    "received": ("实传条数", "int"),
    "valid": ("有效条数", "int"),
    "transmission_rate": ("传输率", "pct"),
    "validity_rate": ("有效率", "pct"),
    "effective_rate": ("有效传输率", "pct"),
    "upload_rate": ("上传率", "pct"),
    "compliant": ("是否达标", "bool"),
    "n_days": ("天数", "int"),
    "n_devices": ("设备数", "int"),
    "n_below": ("低于达标线的设备数", "int"),
    # ranking and AQI
    "week": ("周次", "text"),
    "pm25": ("PM2.5（μg/m³）", "float1"),
    "pm25_change": ("PM2.5 同比变化", "pct"),
    "rank": ("排名", "int"),
    "bottom_two": ("后两位", "bool"),
    "week_end": ("周末日", "date"),
    "no_data": ("无数据", "bool"),
    "color": ("颜色", "text"),
    "exceeding_pollutants": ("超标污染物", "list"),
    "date": ("日期", "date"),
    "day": ("日期", "date"),
    "aqi": ("AQI", "int"),
    "category": ("级别", "text"),
    "primary": ("首要污染物", "text"),
    # alerts
    "episode_id": ("过程编号", "text"),
    "level": ("预警级别", "text"),
    "level_zh": ("预警级别", "text"),
    "started_at": ("开始时间", "datetime"),
    "ended_at": ("结束时间", "datetime"),
    "start_time": ("开始时间", "datetime"),
    "end_time": ("结束时间", "datetime"),
    "at": ("时间", "datetime"),
    "from_level": ("原级别", "text"),
    "to_level": ("新级别", "text"),
    "action": ("动作", "text"),
    "reason": ("原因", "text"),
    "peak_aqi": ("最大AQI", "int"),
    "hours": ("持续小时数", "int"),
    "peak_time": ("最大值时间", "datetime"),
    "heavy_days": ("重污染天数", "int"),
    "severe_days": ("严重污染天数", "int"),
    "heavy_runs": ("重污染过程数", "int"),
    "ongoing": ("仍在持续", "bool"),
    "ended_by": ("解除方式", "text"),
    "required_cuts": ("减排要求", "text"),
    "rule": ("规则", "text"),
    # vapor recovery
    "n_refuellings": ("加油次数", "int"),
    "al_mean": ("气液比均值", "float2"),
    "al_min": ("气液比最小值", "float2"),
    "al_max": ("气液比最大值", "float2"),
    "consecutive_days": ("连续超标天数", "int"),
    "first_day": ("起始日期", "date"),
    "last_day": ("最近日期", "date"),
    "efficiency": ("回收效率", "pct"),
    "annual_gasoline_sales_t": ("年汽油销量（t）", "float1"),
    "has_online_monitor": ("已装在线监控", "bool"),
    "level_name": ("状态", "text"),
    "run_length": ("连续超标天数", "int"),
    "vapor_ratio_estimate": ("气液体积比估计", "pct"),
    "fuel_volume_l": ("加油量（L）", "float1"),
    "in_range_volume_l": ("合格加油量（L）", "float1"),
    "vapor_volume_l": ("回收气量（L）", "float1"),
    "share_in_range": ("合格占比", "pct"),
    "nozzles": ("油枪数", "int"),
    # remote sensing
    "n_exceedances": ("超标次数", "int"),
    "authority": ("移交部门", "text"),
    "routed_to": ("移交部门", "text"),
    "first_seen": ("首次发现", "datetime"),
    "last_seen": ("最近发现", "datetime"),
    "n_passes": ("通过次数", "int"),
    "opacity_pct": ("不透光度（%）", "float1"),
    "no_ppm": ("NO（ppm）", "float1"),
    "ringelmann": ("林格曼黑度", "int"),
    "weight_class": ("车型类别", "text"),
    "max_value": ("最大测值", "float1"),
    "heavy_diesel": ("重型柴油车", "bool"),
    "black_smoke": ("冒黑烟", "bool"),
    "pollutants": ("超标污染物", "list"),
    "key_enterprise": ("重点运输企业", "bool"),
    "high_emitter": ("高排放车", "bool"),
    "n_consecutive": ("连续超标次数", "int"),
    "n_vehicles": ("登记车辆数", "int"),
    "n_china4_plus": ("国四及以上车辆数", "int"),
    "fleet_share": ("国四及以上占比（登记）", "pct"),
    "fleet_complies": ("登记占比是否达标", "bool"),
    "n_seen": ("遥感检出车辆数", "int"),
    "n_seen_china4_plus": ("检出国四及以上车辆数", "int"),
    "observed_share": ("国四及以上占比（遥感）", "pct"),
    "observed_complies": ("遥感占比是否达标", "bool"),
    # sampling
    "kind": ("类别", "text"),
    "sampled": ("抽检数", "int"),
    "total": ("总数", "int"),
    "ratio": ("抽检比例", "pct"),
    "target": ("要求比例", "pct"),
    "met": ("是否达标", "bool"),
    "sample_id": ("样品编号", "text"),
    "sampled_on": ("抽检日期", "date"),
    "product": ("油品", "text"),
    "sulfur_mg_kg": ("硫含量（mg/kg）", "float1"),
    "result": ("检验结果", "text"),
    "covered_ids": ("已抽检对象", "list"),
    "unknown_ids": ("未登记对象", "list"),
    "n_events": ("抽检次数", "int"),
    "n_failed_samples": ("不合格样品数", "int"),
    "failed_agency_ids": ("抽查不合格机构", "list"),
    # dustfall
    "dustfall": ("降尘量（t/(km²·30d)）", "float2"),
    "dustfall_t_km2_30d": ("降尘量（t/(km²·30d)）", "float2"),
    "limit": ("限值", "float2"),
    "exceeds": ("是否超标", "bool"),
    "meets": ("是否达标", "bool"),
    "n_samples": ("样品数", "int"),
    "n_sites": ("点位数", "int"),
    "dustfall_t_km2": ("样品降尘量（t/km²）", "float3"),
    "invalid_reason": ("无效原因", "text"),
    # accountability
    "overdue_issues": ("交办问题未按期整改数", "int"),
    "new_issue_score": ("新发现问题计分", "float1"),
    "accountable": ("问责对象", "text"),
    "accountability_level": ("问责层级", "text"),
    "levels": ("达到的问责层级", "list"),
    "article": ("依据条款", "text"),
    "finding_ids": ("问题编号", "list"),
    # quality and tamper
    "figure": ("数据项", "text"),
    "stream": ("数据类别", "text"),
    "n_total": ("记录数", "int"),
    "n_invalid": ("无效数", "int"),
    "n_missing": ("缺失数", "int"),
    "n_quarantined": ("隔离数", "int"),
    "invalid": ("无效数", "int"),
    "missing": ("缺失数", "int"),
    "note": ("说明", "text"),
    "caveat": ("说明", "text"),
    "pattern": ("可疑模式", "text"),
    "evidence": ("依据", "text"),
    "score": ("可疑程度", "float2"),
    "code": ("监测因子", "text"),
    "statistic": ("统计量", "float2"),
    "threshold": ("判定阈值", "float2"),
    "detail": ("详情", "text"),
    # disclosure
    "list_kind": ("清单", "text"),
    "list_name": ("清单", "text"),
    "issue_no": ("期次", "text"),
    "city": ("市", "text"),
    "county": ("县(区)", "text"),
    "source_name": ("污染源名称", "text"),
    "problem": ("主要问题", "text"),
    "investigation": ("查处情况", "text"),
    "rectification": ("整改(进展)情况", "text"),
    "rectify_by": ("整改期限", "text"),
    "special_plan": ("专项方案", "text"),
    "task_requirement": ("任务要求", "text"),
    "found_date": ("环保部公开日", "date"),
    "list_deadline": ("清单公开时限", "date"),
    "published_date": ("清单公开日", "date"),
    "list_status": ("清单公开是否按时", "text"),
    "letter_date": ("督办函印发日", "date"),
    "progress_deadline": ("查处整改公开时限", "date"),
    "progress_published_date": ("查处整改公开日", "date"),
    "progress_status": ("查处整改公开是否按时", "text"),
    # the 说明 sheet
    "item": ("项目", "text"),
    "value": ("取值", "text"),
    "file": ("数据文件", "text"),
    "source": ("来源", "text"),
    "mark": ("可信度", "text"),
}


def _aqi_item_columns() -> dict[str, tuple[str, str]]:
    """Each AQI item's sub-index ``iaqi_<item>`` and concentration ``<item>`` (aqi_daily), named
    after schemas/data/aqi_rules.toml [pollutants]; daily concentrations in μg/m³, CO in mg/m³
    (GB 3095-2012 table 1)."""
    from schemas.ambient import aqi_rules

    out: dict[str, tuple[str, str]] = {}
    for item, (_, name_zh) in aqi_rules().names.items():
        unit = "mg/m³" if item == "co" else "μg/m³"
        out[f"iaqi_{item}"] = (f"{name_zh}分指数", "int")
        out[item] = (f"{name_zh}（{unit}）", "float1")
    return out


for _key, _entry in _aqi_item_columns().items():
    COLUMNS.setdefault(_key, _entry)

#: columns never shown in a table (evidence lists go to their own sheet, JSON blobs nowhere)
HIDDEN = frozenset({"row_json", "unexpected_ids"})


def header(column: str) -> str:
    """The Chinese header of a column (its own name when it has none)."""
    entry = COLUMNS.get(column)
    return entry[0] if entry else column


def kind(column: str) -> str | None:
    entry = COLUMNS.get(column)
    return entry[1] if entry else None
