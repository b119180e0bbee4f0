"""A simulated ambient micro-station: minute records (CN=2051, ST=22) of the six AQI pollutants
(PM2.5 a34004, PM10 a34002, SO2 a21026, NO2 a21004, CO a21005, O3 a05024) and weather
(temperature a01001, humidity a01002, pressure a01006, wind speed a01007, direction a01008),
each with -Avg and -Flag. Units as micro-stations send them: µg/m³, CO mg/m³.

All stations share one regional air mass (``RegionalAir``: a winter diurnal cycle plus planned
heavy-pollution episodes); each station scales it by its own factors and adds its own noise.
A station can be planted to fake its data by copying another station's particulate series.
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

PM25, PM10, SO2, NO2, CO, O3 = "a34004", "a34002", "a21026", "a21004", "a21005", "a05024"
TEMP, RH, PRESSURE, WIND_SPEED, WIND_DIR = "a01001", "a01002", "a01006", "a01007", "a01008"
POLLUTANTS = (PM25, PM10, SO2, NO2, CO, O3)
CODES = (*POLLUTANTS, TEMP, RH, PRESSURE, WIND_SPEED, WIND_DIR)
RAMP_HOURS = 6.0


@dataclass(frozen=True)
class Episode:
    """A heavy-pollution episode: PM2.5 rises by ``extra_pm25`` over RAMP_HOURS after ``start``,
    holds, and falls back over the RAMP_HOURS before ``end``."""

    start: datetime
    end: datetime
    extra_pm25: float

    def weight(self, moment: datetime) -> float:
        """0 outside, 1 on the plateau, linear on the ramps."""
        if not self.start <= moment < self.end:
            return 0.0
        up = (moment - self.start).total_seconds() / 3600.0 / RAMP_HOURS
        down = (self.end - moment).total_seconds() / 3600.0 / RAMP_HOURS
        return max(0.0, min(1.0, up, down))


@dataclass(frozen=True)
class RegionalAir:
    """The district's air mass, a pure function of time (no noise: stations add their own)."""

    episodes: tuple[Episode, ...] = ()
    base_pm25: float = 70.0

    def episode_weight(self, moment: datetime) -> float:
        return max((e.weight(moment) for e in self.episodes), default=0.0)

    def pm25(self, moment: datetime) -> float:
        """Planned district PM2.5 (µg/m³): the winter cycle (night and morning peaks) plus the
        episodes' extra."""
        hour = moment.astimezone(BEIJING).hour + moment.minute / 60.0
        cycle = 1.0 + 0.22 * math.cos(2 * math.pi * (hour - 22.0) / 24.0)
        extra = sum(e.extra_pm25 * e.weight(moment) for e in self.episodes)
        return self.base_pm25 * cycle + extra

    def weather(self, moment: datetime) -> dict[str, float]:
        hour = moment.astimezone(BEIJING).hour + moment.minute / 60.0
        stagnant = self.episode_weight(moment)
        return {
            TEMP: 4.0 + 5.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0),
            RH: 45.0 + 10.0 * math.cos(2 * math.pi * (hour - 4.0) / 24.0) + 30.0 * stagnant,
            PRESSURE: 101.6 + 0.2 * math.cos(2 * math.pi * hour / 24.0),
            WIND_SPEED: max(0.3, 2.8 - 2.0 * stagnant + 0.8 * math.sin(2 * math.pi * hour / 24.0)),
            WIND_DIR: 20.0 + 30.0 * math.sin(2 * math.pi * hour / 24.0),
        }


@dataclass(frozen=True)
class StationModel:
    """How one station differs from the regional air (traffic, height, instrument bias)."""

    pm_factor: float = 1.0
    traffic: float = 1.0  # scales NO2 and CO
    phase: float = 0.0


@dataclass(frozen=True)
class AmbientPlan:
    offline: tuple[tuple[datetime, datetime], ...] = ()  # true-time periods with no frames
    #: (source simulator, codes): this station sends the source's strings for these codes
    copy_from: tuple[AmbientSimulator, tuple[str, ...]] | None = None
    #: seconds a copier sends after its source (it must receive the source's minute first)
    copy_lag_s: float = 0.0
    stray_flags: Mapping[datetime, str] = field(default_factory=dict)


class AmbientSimulator:
    """Minute frames of one micro-station, one device-clock day at a time."""

    def __init__(
        self,
        spec: DeviceSpec,
        model: StationModel,
        air: RegionalAir,
        plan: AmbientPlan | None = None,
        *,
        seed: int,
        clock: DeviceClock | None = None,
    ) -> None:
        self.spec = spec
        self.model = model
        self.air = air
        self.plan = plan or AmbientPlan()
        self.seed = seed
        self.clock = clock or DeviceClock()

    def minute_values(self, day: date) -> list[dict[str, dict[str, str]]]:
        """The 1440 minute value sets of ``day`` (device clock), before any copying."""
        rng = seeded(self.seed, "ambient", self.spec.device_id, day.isoformat())
        midnight = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
        model = self.model
        out = []
        for index in range(1440):
            moment = midnight + index * MINUTE
            g = [rng.gauss(0.0, 1.0) for _ in range(11)]
            stagnant = self.air.episode_weight(moment)
            hour = moment.hour + moment.minute / 60.0
            rush = (
                1.0
                + 0.35 * math.exp(-(((hour - 8.0) / 1.5) ** 2))
                + 0.35 * math.exp(-(((hour - 18.0) / 1.5) ** 2))
            )
            pm25 = max(self.air.pm25(moment) * model.pm_factor * (1.0 + 0.06 * g[0]), 2.0)
            pm10 = pm25 * (1.6 + 0.05 * g[1])
            so2 = max(18.0 * (1.0 + 0.3 * stagnant) * (1.0 + 0.1 * g[2]), 2.0)
            no2 = max(45.0 * model.traffic * rush * (1.0 + 0.4 * stagnant) * (1.0 + 0.08 * g[3]), 3)
            co = max(1.1 * model.traffic * (1.0 + 0.8 * stagnant) * (1.0 + 0.08 * g[4]), 0.1)
            daylight = max(0.0, math.sin(2 * math.pi * (hour - 7.0) / 24.0))
            o3 = max((15.0 + 45.0 * daylight) * (1.0 - 0.6 * stagnant) * (1.0 + 0.1 * g[5]), 2.0)
            weather = self.air.weather(moment)
            flag = self.plan.stray_flags.get(moment, "N")
            values = {
                PM25: fixed(pm25, 1),
                PM10: fixed(pm10, 1),
                SO2: fixed(so2, 1),
                NO2: fixed(no2, 1),
                CO: fixed(co, 3),
                O3: fixed(o3, 1),
                TEMP: fixed(weather[TEMP] + 0.3 * g[6], 1),
                RH: fixed(min(99.0, weather[RH] + 1.0 * g[7]), 1),
                PRESSURE: fixed(weather[PRESSURE] + 0.02 * g[8], 2),
                WIND_SPEED: fixed(max(0.0, weather[WIND_SPEED] + 0.3 * g[9]), 1),
                WIND_DIR: str(int(weather[WIND_DIR] + 40.0 * g[10]) % 360),
            }
            out.append({code: {"Avg": text, "Flag": flag} for code, text in values.items()})
        return out

    def day(self, day: date) -> list[Emission]:
        """All minute frames whose device time lies on ``day``, in send order."""
        minutes = self.minute_values(day)
        if self.plan.copy_from is not None:
            source, codes = self.plan.copy_from
            copied = source.minute_values(day)
            for own, theirs in zip(minutes, copied, strict=True):
                for code in codes:
                    own[code] = {**own[code], "Avg": theirs[code]["Avg"]}
        midnight = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
        out = []
        for index, values in enumerate(minutes):
            moment = midnight + index * MINUTE
            true = self.clock.to_true(moment + MINUTE)
            if true is None:
                continue
            sent = true + timedelta(
                seconds=3 + (self.plan.copy_lag_s if self.plan.copy_from else 0)
            )
            if in_periods(sent, self.plan.offline):
                continue
            data_time = data_time_text(moment)
            device_now = sent + timedelta(seconds=self.clock.offset_s(sent))
            frame = write_frame(self.spec, "2051", data_time, values, qn_time=device_now)
            out.append(Emission(sent, "2051", data_time, "", frame, values))
        return out
