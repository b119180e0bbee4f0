"""A simulated gas-station vapor-recovery monitor speaking the Lantian vapor profile.

One frame per refuelling (CN=2011, ``Nozzle=<id>`` in CP, DataTime = the refuelling's end) with
A/L ratio, fuel and vapor volume and flow, vapor temperature and concentration, the nozzle's status
and the grade; one station record a minute (CN=2051) with the tank pressure and the zero-pressure
alarm. Codes and columns: schemas/data/vapor_profile.csv.

A nozzle planted to drift has every refuelling of its drift days out of the acceptable A/L range
(a blocked vapor path recovers too little), so that any per-day estimator (mean, median, share
of refuellings) calls the day out of range. The monitor's own nozzle status follows the warning
and alarm day counts of thresholds.toml.
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
from schemas.rules import threshold

AL, FUEL_VOL, VAPOR_VOL, FUEL_FLOW, VAPOR_FLOW = "lv1001", "lv1002", "lv1003", "lv1004", "lv1005"
VAPOR_TEMP, VAPOR_CONC, STATUS, DURATION, GRADE = "lv1006", "lv1007", "lv1008", "lv1009", "lv1010"
TANK_PRESSURE, ZERO_ALARM = "lv2001", "lv2002"

#: Relative refuelling demand per hour of day (morning and evening peaks, quiet nights).
HOURLY_DEMAND = (
    0.15, 0.1, 0.08, 0.08, 0.1, 0.25, 0.6, 1.0, 1.0, 0.8, 0.7, 0.75,
    0.8, 0.7, 0.65, 0.7, 0.85, 1.0, 1.0, 0.8, 0.6, 0.45, 0.3, 0.2,
)  # fmt: skip


@dataclass(frozen=True)
class Nozzle:
    nozzle_id: str
    grade: str
    peak_per_hour: float  # refuellings in a peak hour


@dataclass(frozen=True)
class VaporPlan:
    #: nozzle id -> device-clock days on which its A/L is out of range
    drift_days: Mapping[str, frozenset[date]] = field(default_factory=dict)
    zero_pressure: tuple[tuple[datetime, datetime], ...] = ()  # device-time periods
    over_pressure: tuple[tuple[datetime, datetime], ...] = ()  # device-time periods, ~+200 Pa
    offline: tuple[tuple[datetime, datetime], ...] = ()  # true-time periods with no frames


def nozzle_status(days: frozenset[date], day: date) -> int:
    """The monitor's status on ``day``: consecutive out-of-range days up to the day before,
    compared with the warning and alarm day counts (0 normal, 1 warning, 2 alarm)."""
    run = 0
    probe = day - timedelta(days=1)
    while probe in days:
        run += 1
        probe -= timedelta(days=1)
    if run >= threshold("vapor.alarm_days"):
        return 2
    if run >= threshold("vapor.warning_days"):
        return 1
    return 0


class VaporSimulator:
    """Frames of one station's vapor-recovery monitor, one device-clock day at a time."""

    def __init__(
        self,
        spec: DeviceSpec,
        nozzles: tuple[Nozzle, ...],
        plan: VaporPlan | None = None,
        *,
        seed: int,
        clock: DeviceClock | None = None,
    ) -> None:
        self.spec = spec
        self.nozzles = nozzles
        self.plan = plan or VaporPlan()
        self.seed = seed
        self.clock = clock or DeviceClock()

    def _refuelling_ends(
        self, rng, nozzle: Nozzle, midnight: datetime
    ) -> list[tuple[datetime, int]]:
        """(end instant, duration s) of the nozzle's refuellings: Poisson counts per hour, one
        customer at a time."""
        out: list[tuple[datetime, int]] = []
        free_from = midnight
        for hour, demand in enumerate(HOURLY_DEMAND):
            expected = nozzle.peak_per_hour * demand
            count = _poisson(rng, expected)
            starts = sorted(rng.uniform(0, 3600) for _ in range(count))
            for offset in starts:
                duration = int(rng.uniform(40, 160))
                begin = midnight + timedelta(hours=hour, seconds=int(offset))
                if begin < free_from:
                    continue  # the nozzle is still busy: the customer went to another one
                end = begin + timedelta(seconds=duration)
                if end >= midnight + timedelta(days=1):
                    continue
                out.append((end, duration))
                free_from = end + timedelta(seconds=20)
        return out

    def _refuelling(self, rng, nozzle: Nozzle, duration: int, out_of_range: bool, status: int):
        fuel_flow = rng.uniform(28.0, 40.0)
        fuel = fuel_flow * duration / 60.0
        al = rng.uniform(0.70, 0.85) if out_of_range else rng.uniform(1.03, 1.17)
        return {
            AL: {"Rtd": fixed(al, 2)},
            FUEL_VOL: {"Rtd": fixed(fuel, 2)},
            VAPOR_VOL: {"Rtd": fixed(fuel * al, 2)},
            FUEL_FLOW: {"Rtd": fixed(fuel_flow, 1)},
            VAPOR_FLOW: {"Rtd": fixed(fuel_flow * al, 1)},
            VAPOR_TEMP: {"Rtd": fixed(rng.uniform(6.0, 16.0), 1)},
            VAPOR_CONC: {"Rtd": fixed(rng.uniform(300.0, 700.0), 1)},
            STATUS: {"Info": str(status)},
            DURATION: {"Rtd": str(duration)},
            GRADE: {"Info": nozzle.grade},
        }

    def _pressure(self, rng, moment: datetime) -> dict[str, dict[str, str]]:
        g = [rng.gauss(0.0, 1.0) for _ in range(3)]
        if in_periods(moment, self.plan.zero_pressure):
            avg, low, high, alarm = 0.1 * g[0], -0.4, 0.4, "1"
            return {
                TANK_PRESSURE: {
                    "Avg": fixed(avg, 1), "Min": fixed(low, 1), "Max": fixed(high, 1), "Flag": "N"
                },
                ZERO_ALARM: {"Info": alarm},
            }  # fmt: skip
        hour = moment.hour + moment.minute / 60.0
        avg = 20.0 + 60.0 * math.sin(2 * math.pi * (hour - 10.0) / 24.0) + 12.0 * g[0]
        if in_periods(moment, self.plan.over_pressure):
            avg += 200.0  # a stuck vapor valve: far over the alarm level (enforcement.toml)
        spread = 5.0 + abs(4.0 * g[1])
        return {
            TANK_PRESSURE: {
                "Avg": fixed(avg, 1),
                "Min": fixed(avg - spread, 1),
                "Max": fixed(avg + spread, 1),
                "Flag": "N",
            },
            ZERO_ALARM: {"Info": "0"},
        }

    def day(self, day: date) -> list[Emission]:
        """All frames whose device time lies on ``day``, in send order."""
        rng = seeded(self.seed, "vapor", self.spec.device_id, day.isoformat())
        midnight = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
        out: list[Emission] = []
        for nozzle in self.nozzles:
            days = self.plan.drift_days.get(nozzle.nozzle_id, frozenset())
            drifting = day in days
            status = nozzle_status(days, day)
            for end, duration in self._refuelling_ends(rng, nozzle, midnight):
                values = self._refuelling(rng, nozzle, duration, drifting, status)
                tag = "al_drift" if drifting else ""
                self._emit(out, end, "2011", values, nozzle.nozzle_id, tag)
        for index in range(1440):
            moment = midnight + index * MINUTE
            tag = "zero_pressure" if in_periods(moment, self.plan.zero_pressure) else ""
            self._emit(out, moment, "2051", self._pressure(rng, moment), "", tag, latency=60)
        out.sort(key=lambda e: (e.at, e.key))
        return out

    def _emit(self, out, moment, cn, values, key, tag, latency: int = 1) -> None:
        true = self.clock.to_true(moment + timedelta(seconds=latency))
        if true is None or in_periods(true, self.plan.offline):
            return
        data_time = data_time_text(moment)
        device_now = true + timedelta(seconds=self.clock.offset_s(true))
        extra = {"Nozzle": key} if key else None
        frame = write_frame(self.spec, cn, data_time, values, extra=extra, qn_time=device_now)
        out.append(Emission(true, cn, data_time, key, frame, values, True, bool(tag), tag))


def _poisson(rng, expected: float) -> int:
    """A Poisson draw (Knuth's method; ``expected`` is small here)."""
    if expected <= 0:
        return 0
    limit = math.exp(-expected)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
