"""The truth of a simulated district: what was planted, and what a correct pipeline must find.

Planted facts (which device, which period) come from the plans; findings that depend on the data
(hourly means, counts, high emitters) are computed here from the readings that survive the wire,
with the definitions of DOMAIN.md written out plainly, so a test can compare a pipeline's output
with ``scenario.truth`` exactly:

- CEMS hours: a minute counts when the pollutant's and O2's flags are N or T; an hour is valid
  with >= 45 counted minutes; its value is the mean of the minutes' O2-corrected concentrations
  C * (21 - O2_ref) / (21 - O2); it is an exceedance when strictly above the limit in force on
  that Beijing day.
- Remote sensing: a plate's valid passes in time order, each judged against rsd_limits.csv for
  its fuel type; a high emitter after >= 2 consecutive exceedances of the same quantity.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agents.devices.ambient.simulator import PM25
from agents.devices.cems.simulator import O2, POLLUTANTS
from agents.devices.rsd.simulator import FUEL, PLATE, UNREADABLE, VALID
from agents.devices.vapor.simulator import AL, TANK_PRESSURE, ZERO_ALARM
from agents.simulate.plan import NON_EXCEEDANCE_TAGS
from agents.simulate.scenario import Scenario
from schemas.ambient import ambient_codes
from schemas.ambient import validity as ambient_validity_value
from schemas.enforcement_rules import rsd_limits, setting
from schemas.profiles import profile_items, simulation_setting
from schemas.reading import BEIJING, parse_data_time
from schemas.rules import threshold


@dataclass
class Truth:
    """Everything a test may compare against (all JSON-friendly)."""

    seed: int
    scale: str
    start: str
    days: int
    exceedances: list[dict[str, Any]] = field(default_factory=list)
    non_exceedances: list[dict[str, Any]] = field(default_factory=list)
    limit_changes: list[dict[str, Any]] = field(default_factory=list)
    offline: list[dict[str, Any]] = field(default_factory=list)
    clocks: list[dict[str, Any]] = field(default_factory=list)
    flatlines: list[dict[str, Any]] = field(default_factory=list)
    dilutions: list[dict[str, Any]] = field(default_factory=list)
    fakes: list[dict[str, Any]] = field(default_factory=list)
    manual_flags: list[dict[str, Any]] = field(default_factory=list)
    transmission: list[dict[str, Any]] = field(default_factory=list)
    wire: dict[str, dict[str, Any]] = field(default_factory=dict)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    nozzle_drift: list[dict[str, Any]] = field(default_factory=list)
    nozzle_days: list[dict[str, Any]] = field(default_factory=list)
    zero_pressure: list[dict[str, Any]] = field(default_factory=list)
    over_pressure: list[dict[str, Any]] = field(default_factory=list)
    tank_days: list[dict[str, Any]] = field(default_factory=list)
    station_hours: list[dict[str, Any]] = field(default_factory=list)
    unmonitored_large_stations: list[str] = field(default_factory=list)
    high_emitters: list[dict[str, Any]] = field(default_factory=list)
    not_high_emitters: list[dict[str, Any]] = field(default_factory=list)
    #: plate -> its valid passes that exceeded some limit (repeat offenders count these)
    rsd_exceeding_passes: dict[str, int] = field(default_factory=dict)
    key_enterprises: list[dict[str, Any]] = field(default_factory=list)
    crc_modes: dict[str, str] = field(default_factory=dict)
    code_styles: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(moment: datetime) -> str:
    return moment.astimezone(BEIJING).isoformat()


def _periods(periods) -> list[dict[str, str]]:
    return [{"start": _iso(a), "end": _iso(b)} for a, b in periods]


# ---------------------------------------------------------------------------------- CEMS


@dataclass
class HourStat:
    n_valid: int = 0
    total_valid: float = 0.0
    n_all: int = 0
    total_all: float = 0.0
    reading_ids: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return self.total_valid / self.n_valid if self.n_valid else None

    @property
    def mean_all(self) -> float | None:
        return self.total_all / self.n_all if self.n_all else None


def corrected(measured: float, o2: float, o2_ref: float) -> float:
    """C * (21 - O2_ref) / (21 - O2)."""
    return measured * (21.0 - o2_ref) / (21.0 - o2)


def cems_hour_stats(
    scenario: Scenario, device_id: str, o2_ref: float
) -> dict[tuple[str, str], HourStat]:
    """(hour DataTime prefix YYYYMMDDhh, pollutant) -> the hour's counted minutes and means."""
    counting = set(setting("cems.counting_flags"))
    fault = threshold("cems.o2_fault_pct")
    stats: dict[tuple[str, str], HourStat] = defaultdict(HourStat)
    for emission in scenario.arriving(device_id):
        if emission.cn != "2051":
            continue
        values = emission.values
        o2 = float(values[O2]["Avg"])
        o2_counts = values[O2].get("Flag", "N") in counting and 0 <= o2 < fault
        hour = emission.data_time[:10]
        for pollutant in POLLUTANTS:
            item = values[pollutant]
            value = corrected(float(item["Avg"]), o2, o2_ref)
            stat = stats[(hour, pollutant)]
            stat.n_all += 1
            stat.total_all += value
            if o2_counts and item.get("Flag", "N") in counting:
                stat.n_valid += 1
                stat.total_valid += value
    return stats


def _hour_start(prefix: str) -> datetime:
    return parse_data_time(prefix + "0000")


def _cems_truth(scenario: Scenario, truth: Truth) -> None:
    registry = scenario.registry
    minimum = threshold("cems.hour_min_valid_minutes")
    for stack in registry.stacks:
        device_id = stack.device_id
        plan = scenario.plans[device_id]
        stats = cems_hour_stats(scenario, device_id, stack.o2_ref_pct)
        tags = {
            (hour.strftime("%Y%m%d%H"), hp.pollutant): hp.tag for hour, hp in plan.hours.items()
        }
        for (prefix, pollutant), stat in sorted(stats.items()):
            start = _hour_start(prefix)
            limit = registry.limit_in_force(stack.stack_id, pollutant, start.date())
            mean = stat.mean
            row = {
                "stack_id": stack.stack_id,
                "enterprise_id": stack.enterprise_id,
                "device_id": device_id,
                "pollutant": pollutant,
                "hour_start": _iso(start),
                "n_valid": stat.n_valid,
                "mean_corrected": None if mean is None else round(mean, 3),
                "mean_all_minutes": None if stat.mean_all is None else round(stat.mean_all, 3),
                "limit": None if limit is None else limit.limit_mg_m3,
                "limit_category": None if limit is None else limit.category,
                "tag": tags.get((prefix, pollutant), ""),
            }
            exceeds = limit is not None and stat.n_valid >= minimum and mean > limit.limit_mg_m3
            if exceeds:
                truth.exceedances.append(row)
            elif row["tag"] in NON_EXCEEDANCE_TAGS:
                truth.non_exceedances.append({**row, "reason": NON_EXCEEDANCE_TAGS[row["tag"]]})
        for changed in registry.stack_limits:
            if changed.stack_id == stack.stack_id and changed.category == "low_nox_retrofit":
                old = [
                    lim for lim in registry.limits_for(stack.stack_id, changed.pollutant)
                    if lim.valid_to == changed.valid_from
                ]  # fmt: skip
                truth.limit_changes.append({
                    "stack_id": stack.stack_id,
                    "pollutant": changed.pollutant,
                    "at": _iso(datetime.fromisoformat(changed.valid_from).replace(tzinfo=BEIJING)),
                    "old_limit": old[0].limit_mg_m3 if old else None,
                    "new_limit": changed.limit_mg_m3,
                    "category": changed.category,
                })  # fmt: skip
        _cems_planted(scenario, stack, plan, truth)
        _transmission(scenario, stack, truth)


def _cems_planted(scenario: Scenario, stack, plan, truth: Truth) -> None:
    device_id = stack.device_id
    for kind, bucket in (("flatline", truth.flatlines), ("dilution", truth.dilutions)):
        hours = sorted(h for h, hp in plan.hours.items() if hp.kind == kind)
        for start, end in _runs(hours):
            pollutant = next(hp.pollutant for h, hp in plan.hours.items() if h == start)
            entry = {
                "device_id": device_id,
                "stack_id": stack.stack_id,
                "start": _iso(start),
                "end": _iso(end),
            }
            if kind == "flatline":
                entry["pollutant"] = pollutant
            bucket.append(entry)
    smooth = sorted(h for h, hp in plan.hours.items() if hp.kind == "smooth")
    for start, end in _runs(smooth):
        truth.fakes.append({
            "device_id": device_id, "kind": "too_smooth", "pollutant": plan.hours[start].pollutant,
            "start": _iso(start), "end": _iso(end),
        })  # fmt: skip
    for start, end in plan.offline:
        truth.offline.append({"device_id": device_id, "start": _iso(start), "end": _iso(end)})
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for emission in scenario.arriving(device_id):
        if emission.cn == "2051":
            flag = emission.values[POLLUTANTS[0]].get("Flag", "N")
            if flag != "N":
                counts[(emission.data_time[:8], flag)] += 1
    for (day, flag), n in sorted(counts.items()):
        truth.manual_flags.append({"device_id": device_id, "day": day, "flag": flag, "minutes": n})


def _transmission(scenario: Scenario, stack, truth: Truth) -> None:
    """Minute records received and counted per device and Beijing day (1440 due)."""
    counting = set(setting("cems.counting_flags"))
    received: dict[str, int] = defaultdict(int)
    valid: dict[str, int] = defaultdict(int)
    for emission in scenario.arriving(stack.device_id):
        if emission.cn != "2051":
            continue
        day = emission.data_time[:8]
        received[day] += 1
        codes = (*POLLUTANTS, O2)
        if all(emission.values[c].get("Flag", "N") in counting for c in codes):
            valid[day] += 1
    for day in scenario.day_list():
        key = day.strftime("%Y%m%d")
        truth.transmission.append({
            "device_id": stack.device_id, "stack_id": stack.stack_id, "day": day.isoformat(),
            "due": int(setting("cems.minute_records_per_day")), "received": received[key],
            "valid": valid[key],
        })  # fmt: skip


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive hour starts grouped into [start, end) periods."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + timedelta(hours=1))
        else:
            runs.append((hour, hour + timedelta(hours=1)))
    return runs


# ---------------------------------------------------------------------------------- ambient


def _ambient_truth(scenario: Scenario, truth: Truth) -> None:
    level = simulation_setting("ambient.episode_pm25")
    begin, end = scenario.window
    for episode in scenario.air.episodes:
        hours_above = []
        moment = episode.start.replace(minute=0)
        while moment < episode.end:
            planned = sum(scenario.air.pm25(moment + timedelta(minutes=m)) for m in range(60)) / 60
            if planned > level:
                hours_above.append(moment)
            moment += timedelta(hours=1)
        peak = max(
            scenario.air.pm25(episode.start + timedelta(minutes=m))
            for m in range(0, int((episode.end - episode.start).total_seconds() // 60), 10)
        )
        truth.episodes.append({
            "start": _iso(episode.start), "end": _iso(episode.end),
            "planned_peak_pm25": round(peak, 1), "level": level,
            "first_hour_above": _iso(hours_above[0]) if hours_above else None,
            "last_hour_above": _iso(hours_above[-1]) if hours_above else None,
            "hours_above": len(hours_above),
        })  # fmt: skip
    for station in scenario.registry.stations:
        plan = scenario.plans[station.device_id]
        device = scenario.devices[station.device_id]
        if plan.clock.is_true:
            truth.station_hours.extend(_station_hours(scenario, station.device_id))
        for start, stop in plan.offline:
            truth.offline.append(
                {"device_id": station.device_id, "start": _iso(start), "end": _iso(stop)}
            )
        clock = plan.clock
        if clock.drift_s_per_day:
            truth.clocks.append({
                "device_id": station.device_id, "kind": "drift", "seconds_per_day": clock.drift_s_per_day,
                "from": _iso(clock.drift_from), "offset_at_end_s": round(clock.offset_s(end), 1),
            })  # fmt: skip
        for moment, seconds in clock.jumps:
            truth.clocks.append({
                "device_id": station.device_id, "kind": "jump", "at": _iso(moment), "seconds": seconds,
            })  # fmt: skip
        if plan.copy_of is not None:
            source = scenario.registry.stations[plan.copy_of]
            truth.fakes.append({
                "device_id": station.device_id, "kind": "copied", "source_device_id": source.device_id,
                "codes": [PM25, "a34002"], "start": _iso(begin), "end": _iso(end),
            })  # fmt: skip
        if device.spec.code_names:
            truth.code_styles[station.device_id] = "vendor names (O3, PM2.5 ...)"


def _station_hours(scenario: Scenario, device_id: str) -> list[dict[str, Any]]:
    """Hourly means of the AQI items from the minute records a station sent that arrived
    (GB 3095-2012 table 4: >= ``hour_min_minutes`` minutes, else None), one row per hour with
    at least one minute, labelled by the hour's Beijing end. Only for a station whose clock is
    true: a wrong clock moves its records to other hours and the pipeline sets them aside."""
    codes = ambient_codes()
    minimum = int(ambient_validity_value("hour_min_minutes"))
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for emission in scenario.arriving(device_id):
        if emission.cn != "2051":
            continue
        for code, item in codes.items():
            entry = emission.values.get(code)
            if entry is not None and entry.get("Flag", "N") == "N":
                sums[emission.data_time[:10]][item].append(float(entry["Avg"]))
    rows = []
    for prefix in sorted(sums):
        end = _hour_start(prefix) + timedelta(hours=1)
        row: dict[str, Any] = {"device_id": device_id, "hour_end": _iso(end)}
        for item in codes.values():
            values = sums[prefix].get(item, [])
            row[item] = sum(values) / len(values) if len(values) >= minimum else None
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------- vapor


def _vapor_truth(scenario: Scenario, truth: Truth) -> None:
    al_min, al_max = threshold("vapor.al_min"), threshold("vapor.al_max")
    minimum = int(setting("vapor.min_refuellings_per_day"))
    for gas in scenario.registry.gas_stations:
        if not gas.has_online_monitor:
            if gas.annual_gasoline_sales_t > threshold("vapor.monitor_required_sales_t"):
                truth.unmonitored_large_stations.append(gas.gas_station_id)
            continue
        plan = scenario.plans[gas.device_id]
        window = set(scenario.day_list())
        for nozzle, days in sorted(plan.drift.items()):
            truth.nozzle_drift.append({
                "gas_station_id": gas.gas_station_id, "device_id": gas.device_id, "nozzle": nozzle,
                "days": sorted(d.isoformat() for d in days if d in window),
                "since": min(days).isoformat(),
            })  # fmt: skip
        for start, end in plan.zero_pressure:
            truth.zero_pressure.append(
                {"device_id": gas.device_id, "start": _iso(start), "end": _iso(end)}
            )
        for start, end in plan.over_pressure:
            truth.over_pressure.append(
                {"device_id": gas.device_id, "start": _iso(start), "end": _iso(end)}
            )
        _tank_days(scenario, gas, truth)
        per_day: dict[tuple[str, str], list[float]] = defaultdict(list)
        for emission in scenario.arriving(gas.device_id):
            if emission.cn == "2011":
                per_day[(emission.key, emission.data_time[:8])].append(
                    float(emission.values[AL]["Rtd"])
                )
        for nozzle_n in range(1, gas.nozzles + 1):
            nozzle = f"{nozzle_n:02d}"
            for day in scenario.day_list():
                ratios = per_day.get((nozzle, day.strftime("%Y%m%d")), [])
                inside = sum(1 for r in ratios if al_min <= r <= al_max)
                truth.nozzle_days.append({
                    "device_id": gas.device_id, "nozzle": nozzle, "day": day.isoformat(),
                    "refuellings": len(ratios), "in_range": inside,
                    "status": "insufficient" if len(ratios) < minimum
                    else ("out_of_range" if inside == 0 else ("pass" if inside == len(ratios) else "mixed")),
                })  # fmt: skip


def _tank_days(scenario: Scenario, gas, truth: Truth) -> None:
    """Tank pressure per station-day from the minute records that arrived: minutes counted
    (flag N), minutes over the alarm level, minutes with the zero-pressure alarm, and the day's
    status (enforcement.toml: too few minutes "insufficient"; more than the share over the level
    "alarm"; more than the share with the zero alarm "zero_pressure"; else "normal")."""
    level = float(setting("vapor.tank_pressure_max_pa"))
    counting = set(setting("vapor.pressure_counting_flags"))
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "over": 0, "zero": 0})
    for emission in scenario.arriving(gas.device_id):
        if emission.cn != "2051":
            continue
        pressure = emission.values[TANK_PRESSURE]
        if pressure.get("Flag", "N") not in counting:
            continue
        day = per_day[emission.data_time[:8]]
        day["n"] += 1
        day["over"] += float(pressure["Avg"]) > level
        day["zero"] += emission.values[ZERO_ALARM]["Info"] == "1"
    for day in scenario.day_list():
        counts = per_day.get(day.strftime("%Y%m%d"), {"n": 0, "over": 0, "zero": 0})
        n = counts["n"]
        if n < int(setting("vapor.min_pressure_minutes_per_day")):
            status = "insufficient"
        elif counts["over"] / n > float(setting("vapor.tank_pressure_max_share")):
            status = "alarm"
        elif counts["zero"] / n > float(setting("vapor.zero_pressure_max_share")):
            status = "zero_pressure"
        else:
            status = "normal"
        truth.tank_days.append({
            "gas_station_id": gas.gas_station_id, "device_id": gas.device_id,
            "day": day.isoformat(), "minutes": n, "over": counts["over"], "zero": counts["zero"],
            "status": status,
        })  # fmt: skip


# ---------------------------------------------------------------------------------- remote sensing


def _rsd_limits() -> dict[str, list[tuple[str, str, float]]]:
    """fuel type -> [(quantity, code, max)] from rsd_limits.csv, codes from rsd_profile.csv."""
    codes = {item.column: item.code for item in profile_items("rsd") if not item.is_key}
    out: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    for row in rsd_limits():
        if row["kind"] == "limit" and row["bound"] == "max":
            out[row["fuel_type"]].append(
                (row["quantity"], codes[row["quantity"]], float(row["value"]))
            )
    return out


def _exceeded(values, limits) -> set[str]:
    """The quantities of one pass above their limit for the pass's fuel type."""
    fuel = values[FUEL]["Info"]
    return {
        quantity
        for quantity, code, top in limits.get(fuel, ())
        if code in values and float(next(iter(values[code].values()))) > top
    }


def _rsd_truth(scenario: Scenario, truth: Truth) -> None:
    needed = int(setting("rsd.high_emitter_consecutive"))
    limits = _rsd_limits()
    quantities = sorted({quantity for rows in limits.values() for quantity, _, _ in rows})
    heavy_t = threshold("rsd.heavy_vehicle_t")
    weights = {v.plate: v.gross_weight_t for v in scenario.registry.vehicles}
    fuels = {v.plate: v.fuel_type for v in scenario.registry.vehicles}
    smoke = setting("rsd.black_smoke_quantity")
    passes: dict[str, list[tuple[str, str, set[str]]]] = defaultdict(list)
    planned_plates: set[str] = set()
    for unit in scenario.registry.rsd_units:
        for planned in scenario.plans[unit.device_id]:
            planned_plates.add(planned.plate)
        for emission in scenario.arriving(unit.device_id):
            values = emission.values
            plate = values[PLATE]["Info"]
            if plate == UNREADABLE or values[VALID]["Info"] != "1":
                continue
            passes[plate].append((emission.data_time, emission.key, _exceeded(values, limits)))
    for plate in sorted(passes):
        ordered = sorted(passes[plate])
        exceeding = sum(1 for _, _, exceeded in ordered if exceeded)
        if exceeding:
            truth.rsd_exceeding_passes[plate] = exceeding
        found: dict[str, list[str]] = {}
        for pollutant in quantities:
            runs = _runs_of(pollutant, ordered, needed)
            if runs:
                found[pollutant] = [pass_id for run in runs for pass_id in run]
        weight = weights.get(plate)
        # plan clause 20(2): heavy diesel (> 3.5 t) to the environment bureau; lighter vehicles
        # and black smoke to the traffic police, so a heavy diesel's black smoke goes to both
        heavy_diesel = fuels.get(plate) == "diesel" and weight is not None and weight > heavy_t
        route = "environment_bureau" if heavy_diesel else "traffic_police"
        routes = {
            pollutant: (["environment_bureau"] if heavy_diesel else [])
            + (["traffic_police"] if pollutant == smoke or not heavy_diesel else [])
            for pollutant in sorted(found)
        }
        if found:
            truth.high_emitters.append({
                "plate": plate, "pollutants": sorted(found), "pass_ids": {k: found[k] for k in sorted(found)},
                "gross_weight_t": weight, "route": route, "routes": routes,
                "black_smoke": smoke in found,
            })  # fmt: skip
        elif plate in planned_plates:
            exceed_ids = [p for _, p, e in ordered if e]
            truth.not_high_emitters.append({
                "plate": plate, "reason": "exceedances not consecutive", "exceeding_pass_ids": exceed_ids,
            })  # fmt: skip


def _runs_of(pollutant: str, ordered, needed: int) -> list[list[str]]:
    """Runs of >= ``needed`` consecutive passes exceeding ``pollutant`` (pass ids)."""
    runs: list[list[str]] = []
    run: list[str] = []
    for _, pass_id, exceeded in ordered:
        if pollutant in exceeded:
            run.append(pass_id)
            continue
        if len(run) >= needed:
            runs.append(run)
        run = []
    if len(run) >= needed:
        runs.append(run)
    return runs


def _key_enterprise_truth(scenario: Scenario, truth: Truth) -> None:
    share_min = threshold("transport.china4_share_min")
    modern = {"IV", "V", "VI"}
    for name in scenario.registry.key_enterprises:
        fleet = [v for v in scenario.registry.vehicles if v.transport_enterprise == name]
        share = sum(1 for v in fleet if v.emission_standard in modern) / len(fleet)
        truth.key_enterprises.append({
            "transport_enterprise": name, "vehicles": len(fleet), "china4_or_better_share": share,
            "complies": share >= share_min,
        })  # fmt: skip


def _wire_truth(scenario: Scenario, truth: Truth) -> None:
    for device_id, device in scenario.devices.items():
        if device.noise.quiet:
            continue
        counts: dict[str, int] = defaultdict(int)
        garbage_bytes = 0
        for chunk in scenario.wire_chunks(device_id):
            counts[chunk.kind] += 1
            if chunk.kind == "garbage":
                garbage_bytes += len(chunk.data)
        truth.wire[device_id] = {
            "frames": counts["frame"] + counts["corrupt"] + counts["truncated"],
            "corrupted": counts["corrupt"],
            "truncated": counts["truncated"],
            "garbage_bursts": counts["garbage"],
            "garbage_bytes": garbage_bytes,
            "duplicates": counts["duplicate"],
            "lost_reading_ids": sorted(scenario.lost_reading_ids(device_id)),
        }


def cems_exceedances(scenario: Scenario) -> list[dict[str, Any]]:
    """Only the CEMS exceedances of the truth: what the bureau's simulated case files need,
    without generating every micro-station's frames (minutes at district scale)."""
    truth = _blank_truth(scenario)
    _cems_truth(scenario, truth)
    return truth.exceedances


def _blank_truth(scenario: Scenario) -> Truth:
    return Truth(
        seed=scenario.seed,
        scale=scenario.scale,
        start=scenario.start.isoformat(),
        days=scenario.days,
    )


def compute_truth(scenario: Scenario) -> Truth:
    """The truth of ``scenario`` (generates every device's frames once)."""
    truth = _blank_truth(scenario)
    _cems_truth(scenario, truth)
    _ambient_truth(scenario, truth)
    _vapor_truth(scenario, truth)
    _rsd_truth(scenario, truth)
    _key_enterprise_truth(scenario, truth)
    _wire_truth(scenario, truth)
    truth.crc_modes = {
        d.device_id: d.crc_mode for d in scenario.registry.devices if d.crc_mode != "standard"
    }
    for row in scenario.registry.devices:
        if row.edition == 2005:
            truth.code_styles[row.device_id] = "HJ/T 212-2005 codes, no Flag/QN"
    truth.offline.sort(key=lambda o: (o["device_id"], o["start"]))
    return truth
