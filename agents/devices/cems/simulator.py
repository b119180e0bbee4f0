"""A simulated stack CEMS and its data logger (HJ 75-2017 measurements, HJ 212 frames).

Every device minute the logger sends a minute record (CN=2051, DataTime = the minute's start,
sent when the minute is over) with -Avg/-Min/-Max/-Flag for particulate (a34013), SO2 (a21026),
NOx (a21002), O2 (a19001), flue temperature (a01012), velocity (a01011) and flow (a00000, with
-Cou), plus -ZsAvg (O2-corrected) for the pollutants; and, if configured, a real-time record
(CN=2011, -Rtd/-ZsRtd/-Flag) half-way through each minute. No hourly (2061) records: the
platform computes hours from minutes. After an outage the logger announces its restart (CN=2081).

Values follow a stack model (fuel, O2 reference, baseline corrected concentrations) and an hour
plan that plants field behaviour: exceedance hours, calibration spikes, a blocked probe
(flatline), dilution air, a too-smooth (invented) series. The measured value is derived from
the corrected one with the O2 correction C_measured = C * (21 - O2) / (21 - O2_ref), so that the
O2-corrected hourly mean is what the plan asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from agents.devices.sim import (
    MINUTE,
    DeviceClock,
    DeviceSpec,
    Emission,
    data_time_text,
    fixed,
    in_periods,
    seeded,
    write_frame,
)
from schemas.reading import BEIJING

PARTICULATE, SO2, NOX = "a34013", "a21026", "a21002"
POLLUTANTS = (PARTICULATE, SO2, NOX)
O2, TEMPERATURE, VELOCITY, FLOW = "a19001", "a01012", "a01011", "a00000"
#: Codes of the minute record in the order a logger writes them.
CODES = (*POLLUTANTS, O2, TEMPERATURE, VELOCITY, FLOW)

#: Hour-plan kinds. exceed/probe: the pollutant's corrected level is ``level`` all hour;
#: cal_spike: ``flagged`` minutes carry span gas ``level`` (measured) flagged C;
#: flatline: the pollutant's measured value is stuck at ``level``; dilution: air let in (O2
#: high, measured concentrations low, flue cooler); smooth: an invented series (no noise).
KINDS = ("exceed", "probe", "cal_spike", "flatline", "dilution", "smooth")


@dataclass(frozen=True)
class StackModel:
    """The physics of one stack: fuel, O2 reference and baseline corrected concentrations."""

    fuel: str
    o2_ref: float
    o2_base: float
    base_levels: Mapping[str, float]  # mg/m3, O2-corrected, per pollutant
    temp_c: float
    velocity_m_s: float
    area_m2: float
    phase: float = 0.0  # radians, shifts the daily load cycle between stacks


@dataclass(frozen=True)
class HourPlan:
    """A planted behaviour for one device-clock hour."""

    kind: str
    pollutant: str = ""
    level: float = 0.0
    flagged: int = 0  # minutes of the hour flagged (not valid)
    flag: str = "M"
    tag: str = ""
    protected: bool = True  # line noise must not destroy these minutes

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown hour-plan kind {self.kind!r}; expected one of {KINDS}")
        if not 0 <= self.flagged <= 60:
            raise ValueError("flagged minutes must be 0..60")


@dataclass(frozen=True)
class CemsPlan:
    hours: Mapping[datetime, HourPlan] = field(default_factory=dict)  # device hour start
    offline: tuple[tuple[datetime, datetime], ...] = ()  # true-time periods with no frames
    stray_flags: Mapping[datetime, str] = field(default_factory=dict)  # device minute -> flag
    realtime_s: int | None = 60  # real-time record interval; None: no real-time records


@dataclass
class _Minute:
    """One minute as the analysers saw it (before formatting)."""

    measured: dict[str, float]
    o2: float
    temp: float
    velocity: float
    flags: str = "N"
    stuck: dict[str, str] = field(default_factory=dict)  # code -> value string held constant


class CemsSimulator:
    """Frames of one stack's logger, one device-clock day at a time."""

    def __init__(
        self,
        spec: DeviceSpec,
        model: StackModel,
        plan: CemsPlan,
        *,
        seed: int,
        clock: DeviceClock | None = None,
    ) -> None:
        self.spec = spec
        self.model = model
        self.plan = plan
        self.seed = seed
        self.clock = clock or DeviceClock()

    # ------------------------------------------------------------------ model

    def _corrected_to_measured(self, corrected: float, o2: float) -> float:
        return corrected * (21.0 - o2) / (21.0 - self.model.o2_ref)

    def _hour_flags(self, rng, plan: HourPlan | None) -> frozenset[int]:
        # Always draw, so that planting an hour does not shift the rest of the day's noise.
        order = rng.sample(range(60), 60)
        if plan is None or not plan.flagged:
            return frozenset()
        return frozenset(order[: plan.flagged])

    def _minute(self, rng, moment: datetime, plan: HourPlan | None, flagged: bool) -> _Minute:
        model = self.model
        of_day = (moment.hour * 60 + moment.minute) / 1440.0
        load = 1.0 + 0.12 * math.sin(2 * math.pi * of_day + model.phase)
        gauss = [rng.gauss(0.0, 1.0) for _ in range(6)]
        o2 = (
            model.o2_base + 0.3 * math.sin(2 * math.pi * of_day * 3 + model.phase) + 0.12 * gauss[3]
        )
        temp = model.temp_c + 2.0 * load + 0.5 * gauss[4]
        velocity = model.velocity_m_s * load * (1.0 + 0.02 * gauss[5])
        corrected = {
            code: max(model.base_levels[code] * load * (1.0 + 0.06 * gauss[i]), 0.02)
            for i, code in enumerate(POLLUTANTS)
        }
        minute = _Minute(measured={}, o2=o2, temp=temp, velocity=velocity)
        if plan is not None:
            kind = plan.kind
            if kind in ("exceed", "probe"):
                corrected[plan.pollutant] = plan.level * (1.0 + 0.04 * gauss[plan_index(plan)])
            elif kind == "dilution":
                minute.o2 = 18.0 + 0.2 * gauss[3]
                minute.temp = temp - 25.0
                minute.velocity = velocity * 1.6
            elif kind == "smooth":
                minute.o2 = model.o2_base
                minute.temp = model.temp_c
                minute.velocity = model.velocity_m_s
                slow = math.sin(2 * math.pi * (moment.hour * 60 + moment.minute) / 240.0)
                corrected[plan.pollutant] = model.base_levels[plan.pollutant] * (1.0 + 0.1 * slow)
        minute.measured = {
            code: self._corrected_to_measured(value, minute.o2) for code, value in corrected.items()
        }
        if plan is not None and plan.kind == "flatline":
            minute.stuck[plan.pollutant] = fixed(plan.level, 2)
        if flagged and plan is not None:
            minute.flags = plan.flag
            if plan.kind == "cal_spike":
                minute.measured[plan.pollutant] = plan.level * (1.0 + 0.01 * gauss[2])
        return minute

    # ------------------------------------------------------------------ formatting

    def _minute_values(self, rng, minute: _Minute) -> dict[str, dict[str, str]]:
        model = self.model
        flag = minute.flags
        o2_text = fixed(minute.o2, 2)
        o2_value = float(o2_text)
        spread = [abs(rng.gauss(0.0, 1.0)) for _ in range(4)]
        values: dict[str, dict[str, str]] = {}
        for i, code in enumerate(POLLUTANTS):
            if code in minute.stuck:
                avg = low = high = minute.stuck[code]
            else:
                value = minute.measured[code]
                avg = fixed(value, 2)
                low = fixed(value * (1.0 - 0.03 * spread[i]), 2)
                high = fixed(value * (1.0 + 0.03 * spread[i]), 2)
            item = {"Avg": avg, "Min": low, "Max": high}
            if self.spec.edition != 2005:
                zs = float(avg) * (21.0 - model.o2_ref) / (21.0 - o2_value)
                item["ZsAvg"] = fixed(zs, 2)
            item["Flag"] = flag
            values[code] = item
        values[O2] = {
            "Avg": o2_text,
            "Min": fixed(minute.o2 - 0.1 * spread[3], 2),
            "Max": fixed(minute.o2 + 0.1 * spread[3], 2),
            "Flag": flag,
        }
        values[TEMPERATURE] = {"Avg": fixed(minute.temp, 1), "Flag": flag}
        values[VELOCITY] = {"Avg": fixed(minute.velocity, 2), "Flag": flag}
        flow = minute.velocity * model.area_m2 * 3600.0
        values[FLOW] = {"Avg": fixed(flow, 1), "Cou": fixed(flow / 60.0, 1), "Flag": flag}
        return values

    def _realtime_values(self, rng, minute: _Minute) -> dict[str, dict[str, str]]:
        model = self.model
        jitter = [rng.gauss(0.0, 1.0) for _ in range(4)]
        o2_text = fixed(minute.o2 + 0.05 * jitter[3], 2)
        values: dict[str, dict[str, str]] = {}
        for i, code in enumerate(POLLUTANTS):
            if code in minute.stuck:
                rtd = minute.stuck[code]
            else:
                rtd = fixed(minute.measured[code] * (1.0 + 0.01 * jitter[i]), 2)
            item = {"Rtd": rtd}
            if self.spec.edition != 2005:
                zs = float(rtd) * (21.0 - model.o2_ref) / (21.0 - float(o2_text))
                item["ZsRtd"] = fixed(zs, 2)
            item["Flag"] = minute.flags
            values[code] = item
        values[O2] = {"Rtd": o2_text, "Flag": minute.flags}
        values[TEMPERATURE] = {"Rtd": fixed(minute.temp, 1), "Flag": minute.flags}
        values[VELOCITY] = {"Rtd": fixed(minute.velocity, 2), "Flag": minute.flags}
        flow = minute.velocity * model.area_m2 * 3600.0
        values[FLOW] = {"Rtd": fixed(flow, 1), "Flag": minute.flags}
        return values

    # ------------------------------------------------------------------ frames

    def _send(self, device_moment: datetime, latency_s: float) -> datetime | None:
        """True send instant of a record the device sends at its clock's ``device_moment``."""
        true = self.clock.to_true(device_moment)
        if true is None:
            return None
        true += timedelta(seconds=latency_s)
        return None if in_periods(true, self.plan.offline) else true

    def day(self, day: date) -> list[Emission]:
        """All frames whose device time lies on ``day``, in send order."""
        rng = seeded(self.seed, "cems", self.spec.device_id, day.isoformat())
        midnight = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
        out: list[Emission] = []
        flagged: frozenset[int] = frozenset()
        realtime = self.plan.realtime_s
        for index in range(1440):
            moment = midnight + index * MINUTE
            hour_start = moment.replace(minute=0)
            plan = self.plan.hours.get(hour_start)
            if moment.minute == 0:
                flagged = self._hour_flags(rng, plan)
            minute = self._minute(rng, moment, plan, moment.minute in flagged)
            stray = self.plan.stray_flags.get(moment)
            if stray and minute.flags == "N":
                minute.flags = stray
            values = self._minute_values(rng, minute)
            rt_values = self._realtime_values(rng, minute) if realtime else None
            protected = plan is not None and plan.protected
            tag = plan.tag if plan is not None else ""
            if rt_values is not None and realtime:
                for offset in range(realtime // 2, 60, realtime):
                    stamp = moment + timedelta(seconds=offset)
                    sent = self._send(stamp, 1.0)
                    if sent is not None:
                        out.append(self._emission(sent, "2011", stamp, rt_values, protected, tag))
            sent = self._send(moment + MINUTE, 2.0)
            if sent is not None:
                out.append(self._emission(sent, "2051", moment, values, protected, tag))
        out.extend(self._restarts(day))
        out.sort(key=lambda e: e.at)
        return out

    def _emission(
        self,
        sent: datetime,
        cn: str,
        stamp: datetime,
        values: dict[str, dict[str, str]],
        protected: bool,
        tag: str,
    ) -> Emission:
        data_time = data_time_text(stamp)
        device_now = sent + timedelta(seconds=self.clock.offset_s(sent))
        frame = write_frame(self.spec, cn, data_time, values, qn_time=device_now)
        return Emission(sent, cn, data_time, "", frame, values, True, protected, tag)

    def _restarts(self, day: date) -> list[Emission]:
        """A 2081 restart notice when the logger comes back after each outage ending on ``day``."""
        out = []
        for _, end in self.plan.offline:
            back = end + timedelta(seconds=5)
            if back.astimezone(BEIJING).date() != day:
                continue
            device_now = back + timedelta(seconds=self.clock.offset_s(back))
            stamp = data_time_text(device_now)
            frame = write_frame(
                self.spec, "2081", stamp, {}, extra={"RestartTime": stamp}, qn_time=device_now
            )
            out.append(Emission(back, "2081", stamp, "", frame, {}, False, False, "restart"))
        return out


def plan_index(plan: HourPlan) -> int:
    """The gauss draw a planted pollutant uses (its position among the pollutants)."""
    return POLLUTANTS.index(plan.pollutant) if plan.pollutant in POLLUTANTS else 0
