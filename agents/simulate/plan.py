"""What the simulated district plants: which device misbehaves how, and when.

Each function takes the registry and the window and returns plain data (hour plans, periods,
clocks, planned passes) plus a record of what was planted, so the truth can name it. Choices are
by position in the registry (the first coal stack, the third station ...), so the same scale
always plants the same kinds of things; values and exact minutes come from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from agents.devices.ambient.simulator import Episode
from agents.devices.cems.simulator import NOX, PARTICULATE, POLLUTANTS, SO2, HourPlan
from agents.devices.rsd.simulator import PlannedPass
from agents.devices.sim import DeviceClock, seeded
from agents.simulate.registry import Registry, Stack, limit_change_date
from agents.simulate.wire import WireNoise
from schemas.reading import BEIJING

#: Wire noise of a device on a bad line, and of a remote-sensing unit's radio link.
NOISY_LINE = WireNoise(garbage=0.02, corrupt=0.01, truncate=0.003, duplicate=0.005)
RADIO_LINK = WireNoise(garbage=0.01, corrupt=0.005, duplicate=0.003)

#: Vendor names a micro-station sends instead of 2017 codes (device_code_aliases.csv maps back).
ALIAS_NAMES = {
    "a34004": "PM2.5", "a34002": "PM10", "a21026": "SO2", "a21004": "NO2", "a21005": "CO",
    "a05024": "O3",
}  # fmt: skip

#: Tags of planted CEMS hours that must NOT be judged exceedances, and why.
NON_EXCEEDANCE_TAGS = {
    "invalid_44_valid": "only 44 valid minutes (16 flagged C): the hour is not valid",
    "calibration_spike": "the high minutes are span gas flagged C: they do not count",
    "before_limit_change": "above the new limit but the old, higher limit was in force that day",
}


def at(day: date, hour: float) -> datetime:
    """Beijing instant ``hour`` hours after midnight of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=BEIJING) + timedelta(hours=hour)


def window_days(start: date, days: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(days)]


@dataclass
class StackPlan:
    hours: dict[datetime, HourPlan] = field(default_factory=dict)
    offline: list[tuple[datetime, datetime]] = field(default_factory=list)
    stray_flags: dict[datetime, str] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)

    def put(self, hour: datetime, plan: HourPlan) -> None:
        if hour in self.hours:
            raise ValueError(f"two plans for the hour {hour.isoformat()}")
        self.hours[hour] = plan


def stack_roles(stacks: list[Stack], scale: str) -> dict[str, set[str]]:
    """Which planted behaviours each stack carries."""
    roles: dict[str, set[str]] = {s.stack_id: set() for s in stacks}
    ids = [s.stack_id for s in stacks]
    if scale == "tiny":
        table = {0: {"exceed", "offline", "noise"}, 1: {"flatline", "dilution"}}
    elif scale == "month":
        # two exceeding stacks open two cases, the first gas stack carries the fault patterns
        # and the oil stack fakes a too-smooth day (the other faker is the copying station)
        table = {0: {"exceed", "offline", "noise"}, 1: {"flatline", "dilution"}, 2: {"exceed"},
                 3: {"smooth"}}  # fmt: skip
    elif scale == "demo":
        table = {0: {"exceed", "noise"}, 1: {"offline", "dilution"}, 2: {"flatline"},
                 4: {"smooth"}, 5: {"exceed"}}  # fmt: skip
    else:
        table = {}
        for i in range(len(stacks)):
            chosen = set()
            if i % 8 == 0:
                chosen.add("exceed")
            if i % 13 == 1:
                chosen.add("offline")
            if i in (3, 21):
                chosen.add("flatline")
            if i in (5, 30):
                chosen.add("dilution")
            if i == 11:
                chosen.add("smooth")
            if i % 6 == 0:
                chosen.add("noise")
            table[i] = chosen
    for i, chosen in table.items():
        if i < len(ids):
            roles[ids[i]] |= chosen
    return roles


def plan_stack(
    registry: Registry, stack: Stack, roles: set[str], start: date, days: int, seed: int
) -> StackPlan:
    """Hour plans, outages and stray manual flags of one stack."""
    plan = StackPlan(roles=set(roles))
    span = window_days(start, days)

    def limit(pollutant: str, day: date) -> float:
        found = registry.limit_in_force(stack.stack_id, pollutant, day)
        if found is None:
            raise ValueError(f"stack {stack.stack_id} has no {pollutant} limit on {day}")
        return found.limit_mg_m3

    if "exceed" in roles:
        d0 = span[0]
        plan.put(at(d0, 3), HourPlan("exceed", SO2, 1.4 * limit(SO2, d0), tag="exceed"))
        plan.put(
            at(d0, 7),
            HourPlan(
                "exceed", NOX, 1.35 * limit(NOX, d0), flagged=15, flag="M", tag="exceed_45_valid"
            ),
        )
        plan.put(
            at(d0, 11),
            HourPlan(
                "exceed",
                PARTICULATE,
                1.3 * limit(PARTICULATE, d0),
                flagged=6,
                flag="D",
                tag="exceed",
            ),
        )
        plan.put(
            at(d0, 14),
            HourPlan(
                "exceed", NOX, 1.5 * limit(NOX, d0), flagged=16, flag="C", tag="invalid_44_valid"
            ),
        )
        plan.put(
            at(d0, 17),
            HourPlan(
                "cal_spike",
                SO2,
                5.0 * limit(SO2, d0),
                flagged=12,
                flag="C",
                tag="calibration_spike",
            ),
        )
        for i, day in enumerate(span[1:], start=1):
            if i % 3 == 1:  # the violation continues: material for day-by-day penalties
                for hour in (9, 10):
                    plan.put(
                        at(day, hour), HourPlan("exceed", SO2, 1.3 * limit(SO2, day), tag="exceed")
                    )
            if i % 5 == 2:
                plan.put(at(day, 15), HourPlan("exceed", NOX, 1.3 * limit(NOX, day), tag="exceed"))

    change = limit_change_date(start, days)
    changed = [
        lim
        for lim in registry.limits_for(stack.stack_id, NOX)
        if lim.valid_from == change.isoformat()
    ]
    if changed:
        plan.roles.add("limit_change")
        probe = 1.5 * changed[0].limit_mg_m3
        before = change - timedelta(days=1)
        if before in span:
            plan.put(at(before, 10), HourPlan("probe", NOX, probe, tag="before_limit_change"))
        if change in span:
            plan.put(at(change, 10), HourPlan("probe", NOX, probe, tag="after_limit_change"))

    if "flatline" in roles:
        stuck = round(0.5 * limit(PARTICULATE, span[0]), 1)
        for hour in range(2, 6):
            plan.put(at(span[0], hour), HourPlan("flatline", PARTICULATE, stuck, tag="flatline"))
    if "dilution" in roles:
        day = span[0]
        for hour in range(14, 18):
            plan.put(at(day, hour), HourPlan("dilution", tag="dilution"))
    if "smooth" in roles:
        day = span[min(1, days - 1)]
        for hour in range(24):
            plan.put(at(day, hour), HourPlan("smooth", NOX, tag="too_smooth", protected=False))
    if "offline" in roles:
        if stack.stack_id == "S001":
            plan.offline.append((at(span[0], 20), at(span[0], 23)))
        else:
            day = span[min(1, days - 1)]
            plan.offline.append((at(day, 9), at(day, 12.5)))

    # Stray manual flags: a daily zero/span check (C) and a few fault minutes (D), always in
    # hours without a plan so that planted hours keep their exact valid-minute counts.
    rng = seeded(seed, "stray", stack.stack_id)
    for day in span:
        check_hour = at(day, 1)
        if check_hour not in plan.hours:
            for minute in range(6):
                plan.stray_flags[check_hour + timedelta(minutes=minute)] = "C"
        for _ in range(3):
            moment = at(day, rng.randrange(24)) + timedelta(minutes=rng.randrange(60))
            if moment.replace(minute=0) not in plan.hours:
                plan.stray_flags[moment] = "D"
    return plan


def base_levels(registry: Registry, stack: Stack, start: date, days: int) -> dict[str, float]:
    """Baseline O2-corrected concentrations: under half the strictest limit of the window."""
    out = {}
    for pollutant in POLLUTANTS:
        limits = [
            lim.limit_mg_m3
            for day in window_days(start, days)
            if (lim := registry.limit_in_force(stack.stack_id, pollutant, day)) is not None
        ]
        out[pollutant] = 0.45 * min(limits)
    return out


# ------------------------------------------------------------------------------ ambient


def plan_episodes(start: date, days: int) -> tuple[Episode, ...]:
    """Heavy-pollution episodes inside the window."""
    end = at(start, 24 * days)
    if days == 1:
        return (Episode(at(start, 2), end, 200.0),)
    planned = [Episode(at(start, 12), at(start, 54), 200.0)]
    if days >= 10:
        planned.append(Episode(at(start, 24 * 9), at(start, 24 * 9 + 60), 260.0))
    if days >= 20:
        planned.append(Episode(at(start, 24 * 20), at(start, 24 * 20 + 30), 180.0))
    return tuple(Episode(e.start, min(e.end, end), e.extra_pm25) for e in planned if e.start < end)


@dataclass
class StationPlan:
    roles: set[str] = field(default_factory=set)
    offline: list[tuple[datetime, datetime]] = field(default_factory=list)
    copy_of: int | None = None  # index of the station whose particulate series is copied
    copy_lag_s: float = 0.0  # how long after its source the copier sends
    clock: DeviceClock = field(default_factory=DeviceClock)


def plan_station(index: int, n_stations: int, start: date, days: int, scale: str) -> StationPlan:
    plan = StationPlan()
    # the month scale has the tiny district's stations; its clocks stay true, because a clock
    # fault the box never corrects would invalidate that station for the rest of the month
    month = scale == "month"
    tiny = scale == "tiny" or month
    if index == 0 and not month:
        plan.roles.add("clock_drift")
        plan.clock = DeviceClock(drift_s_per_day=240.0, drift_from=at(start, 0))
    if index == (1 if tiny else 3) and n_stations > 1:
        plan.roles.add("copies_data")
        plan.copy_of = 0
        if month:
            # the copier polls its source's published minute before re-sending it; elsewhere the
            # source's drifting clock already puts the copy behind it
            plan.copy_lag_s = 20.0
    if index == 2:
        plan.roles |= {"alias_codes", "noise"}
    if index == 2 or (not tiny and index % 37 == 5):
        plan.roles.add("offline")
        plan.offline.append((at(start, 10), at(start, 14)))
        if days >= 2:
            plan.offline.append((at(start, 24 + 18), at(start, 24 + 26)))
    if index == (2 if tiny else 4) and not month:
        plan.roles.add("clock_jump")
        plan.clock = DeviceClock(jumps=((at(start, 16), 3600.0),))
    if not tiny and index % 20 == 7:
        plan.roles.add("noise")
    return plan


# ------------------------------------------------------------------------------ vapor


@dataclass
class GasPlan:
    drift: dict[str, frozenset[date]] = field(default_factory=dict)
    zero_pressure: list[tuple[datetime, datetime]] = field(default_factory=list)
    over_pressure: list[tuple[datetime, datetime]] = field(default_factory=list)
    low_use: str = ""


def plan_gas_station(index: int, nozzles: int, start: date, days: int, scale: str) -> GasPlan:
    plan = GasPlan(low_use=f"{nozzles:02d}")
    span = window_days(start, days)
    if index == 0 or (scale == "district" and index % 5 == 0):
        # Out of range since 3 days before the window, so the monitor's own status moves from
        # normal to warning (5 days) and alarm (7 days) inside a longer window.
        drift = {start - timedelta(days=k) for k in (1, 2, 3)} | set(span)
        plan.drift["03"] = frozenset(drift)
    if index == 1 and days >= 2:
        plan.drift["06"] = frozenset(span[1 : min(days, 6)])
    if index == 0:
        plan.zero_pressure.append((at(start, 2), at(start, 5)))
    if scale == "month" and index == 0 and days >= 21:
        # A month at the first station: a nozzle out of range for exactly the warning run (it
        # warns and recovers), one out past the alarm run (it alarms, then recovers), a day with
        # the zero-pressure alarm on for a third of it, and a morning of tank pressure over the
        # alarm level (DOMAIN.md section 7, enforcement.toml).
        plan.drift["05"] = frozenset(span[4:9])
        plan.drift["06"] = frozenset(span[12:20])
        plan.zero_pressure.append((at(span[10], 2), at(span[10], 10)))
        plan.over_pressure.append((at(span[20], 0), at(span[20], 9)))
    return plan


# ------------------------------------------------------------------------------ remote sensing


def plan_passes(registry: Registry, start: date, days: int) -> tuple[PlannedPass, ...]:
    """The smoking trucks and their passes at the first unit."""
    by_owner: dict[str, list] = {}
    for vehicle in registry.vehicles:
        by_owner.setdefault(vehicle.owner, []).append(vehicle)
    worst, middle = registry.key_enterprises[2], registry.key_enterprises[1]
    old_trucks = [v for v in by_owner[worst] if v.emission_standard == "III"]
    opacity_truck, no_truck = old_trucks[0].plate, old_trucks[1].plate
    trap_truck = by_owner[middle][0].plate
    van = next(
        v.plate for v in registry.vehicles if v.fuel_type == "diesel" and v.gross_weight_t <= 3.5
    )
    d0 = start
    passes = [
        PlannedPass(at(d0, 8 + 10 / 60), opacity_truck, "opacity", "smoking_opacity"),
        PlannedPass(at(d0, 11 + 40 / 60), opacity_truck, "opacity", "smoking_opacity"),
        PlannedPass(at(d0, 15 + 20 / 60), opacity_truck, "opacity", "smoking_opacity"),
        PlannedPass(at(d0, 9 + 5 / 60), no_truck, "no", "smoking_no"),
        PlannedPass(at(d0, 13.5), no_truck, "no", "smoking_no"),
        PlannedPass(at(d0, 8 + 40 / 60), trap_truck, "opacity", "intermittent"),
        PlannedPass(at(d0, 12.25), trap_truck, "clean", "intermittent"),
        PlannedPass(at(d0, 16 + 50 / 60), trap_truck, "opacity", "intermittent"),
        PlannedPass(at(d0, 10 + 20 / 60), van, "black_smoke", "black_smoke_light"),
        PlannedPass(at(d0, 17.75), van, "black_smoke", "black_smoke_light"),
    ]
    if days >= 2:
        d1 = start + timedelta(days=1)
        passes += [
            PlannedPass(at(d1, 8.25), opacity_truck, "opacity", "smoking_opacity"),
            PlannedPass(at(d1, 14.5), no_truck, "clean", "smoking_no"),
        ]
    return tuple(passes)
