"""The simulated district: registry, devices, their frames, and the truth a pipeline must find.

``build_scenario(seed, start, days, scale)`` builds everything deterministically from ``seed``:

- ``scenario.registry`` and ``scenario.write_registry(folder)``: the bureau's registry CSVs;
- ``scenario.frames(device_id)``: ``(sent_at, frame_bytes)`` as the device sends them, in order;
  ``scenario.wire_frames(device_id)``: the same after the serial line's noise (what a port
  reader gets); ``scenario.all_frames()``: every device merged in time order;
- ``scenario.expected_readings(device_id)``: the ids of the readings that must reach the
  warehouse (everything the device sent as a reading, less what the wire destroyed);
- ``scenario.truth``: what was planted and what must be found (agents/simulate/truth.py).

Frame cadence (documented in docs/device-profiles.md): CEMS minute records (2051) every device
minute, sent ~2 s after the minute ends, and real-time records (2011) every 60 s at :30;
micro-stations minute records (2051); vapor monitors one 2011 per refuelling and one 2051 a
minute; remote-sensing units one 2011 per pass. Times are Beijing time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from agents.devices.ambient.simulator import (
    PM10,
    PM25,
    AmbientPlan,
    AmbientSimulator,
    RegionalAir,
    StationModel,
)
from agents.devices.cems.simulator import CemsPlan, CemsSimulator, StackModel
from agents.devices.rsd.simulator import RsdPlan, RsdSimulator, Vehicle
from agents.devices.sim import DeviceSpec, Emission, seeded
from agents.devices.vapor.simulator import Nozzle, VaporPlan, VaporSimulator
from agents.simulate import plan as planner
from agents.simulate.registry import SCALES, Registry, build_registry, write_registry
from agents.simulate.wire import Chunk, WireNoise, apply_noise, lost_indices
from schemas.profiles import code_2005_to_2017, family_protocol
from schemas.reading import BEIJING, reading_id

#: Fuel -> (O2 base %, flue temperature °C): wet desulfurisation cools coal flue gas.
FUEL_PHYSICS = {
    "coal": (9.8, 55.0),
    "oil": (5.0, 140.0),
    "gas": (5.0, 95.0),
    "coal_power": (6.8, 50.0),
}
GRADES = ("92", "95", "92", "98", "92", "95")
#: Emissions cached per device while the scenario is small; bigger ones regenerate.
CACHE_LIMIT_DEVICE_DAYS = 64
#: Scales whose emissions are always cached: the month scale is generated once for its truth
#: and once more for landing otherwise, and a month of its nine devices fits in memory.
CACHED_SCALES = frozenset({"month"})
#: Scales whose CEMS loggers send minute records only (no real-time 2011 records): the platform
#: computes every figure from minutes, and a month of real-time records would double the load.
MINUTES_ONLY_SCALES = frozenset({"month"})


@dataclass
class SimDevice:
    """One simulated device: its registry row, how it speaks, its simulator, its line."""

    device_id: str
    family: str
    spec: DeviceSpec
    simulator: Any
    noise: WireNoise
    owner_id: str
    roles: frozenset[str] = frozenset()


class Scenario:
    """A simulated district over a window of days (see the module docstring)."""

    def __init__(
        self,
        *,
        seed: int,
        start: date,
        days: int,
        scale: str,
        registry: Registry,
        devices: dict[str, SimDevice],
        air: RegionalAir,
        plans: dict[str, Any],
    ) -> None:
        self.seed = seed
        self.start = start
        self.days = days
        self.scale = scale
        self.registry = registry
        self.devices = devices
        self.air = air
        self.plans = plans
        self._cache: dict[str, tuple[Emission, ...]] = {}
        self._recent: tuple[str, tuple[Emission, ...], frozenset[int]] | None = None

    # ------------------------------------------------------------------ window

    @property
    def window(self) -> tuple[datetime, datetime]:
        """[start, end) of the simulated window, Beijing time."""
        begin = datetime(self.start.year, self.start.month, self.start.day, tzinfo=BEIJING)
        return begin, begin + timedelta(days=self.days)

    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def device_ids(self, family: str | None = None) -> list[str]:
        return [d for d, dev in self.devices.items() if family is None or dev.family == family]

    def device_config(self, device_id: str) -> dict[str, Any]:
        """The mapping an agent's decoder gets for this device."""
        row = self.registry.device(device_id)
        return {
            "device_id": row.device_id,
            "family": row.family,
            "stream": row.stream,
            "units": dict(row.units),
            "tz": 8,
            "pw": row.pw,
            "crc_mode": row.crc_mode,
        }

    # ------------------------------------------------------------------ frames

    def emissions(self, device_id: str) -> Iterator[Emission]:
        """What the device sends, in send order (with what each frame holds)."""
        if device_id in self._cache:
            yield from self._cache[device_id]
            return
        device = self._device(device_id)
        small = (
            self.scale in CACHED_SCALES or len(self.devices) * self.days <= CACHE_LIMIT_DEVICE_DAYS
        )
        collected: list[Emission] = []
        for day in self.day_list():
            batch = device.simulator.day(day)
            if small:
                collected.extend(batch)
            yield from batch
        if small:
            self._cache[device_id] = tuple(collected)

    def frames(self, device_id: str) -> Iterator[tuple[datetime, bytes]]:
        """``(sent_at, frame)`` as the device sends them (before the line's noise)."""
        for emission in self.emissions(device_id):
            yield emission.at, emission.frame

    def wire_chunks(self, device_id: str) -> Iterator[Chunk]:
        """The line's bytes for this device, each chunk labelled with what happened to it."""
        items = ((e.at, e.frame, e.protected) for e in self.emissions(device_id))
        return apply_noise(items, self._device(device_id).noise)

    def wire_frames(self, device_id: str) -> Iterator[tuple[datetime, bytes]]:
        """``(at, bytes)`` as a port reader receives them: noise, damage and resends included."""
        for chunk in self.wire_chunks(device_id):
            yield chunk.at, chunk.data

    def all_frames(self, *, wire: bool = False) -> Iterator[tuple[datetime, str, bytes]]:
        """``(at, device_id, bytes)`` of every device, merged in time order."""

        def tagged(device_id: str) -> Iterator[tuple[datetime, str, bytes]]:
            source = self.wire_frames(device_id) if wire else self.frames(device_id)
            for moment, data in source:
                yield moment, device_id, data

        streams = [tagged(device_id) for device_id in sorted(self.devices)]
        yield from heapq.merge(*streams, key=lambda item: (item[0], item[1]))

    # ------------------------------------------------------------------ what must arrive

    def _generated(self, device_id: str) -> tuple[tuple[Emission, ...], frozenset[int]]:
        """The device's emissions and the indices the wire destroys (last device kept)."""
        if self._recent is not None and self._recent[0] == device_id:
            return self._recent[1], self._recent[2]
        emissions = tuple(self.emissions(device_id))
        items = ((e.at, e.frame, e.protected) for e in emissions)
        lost = frozenset(lost_indices(apply_noise(items, self._device(device_id).noise)))
        self._recent = (device_id, emissions, lost)
        return emissions, lost

    def lost_reading_ids(self, device_id: str) -> set[str]:
        """Readings the wire destroyed (damaged and not resent)."""
        emissions, lost = self._generated(device_id)
        return {
            reading_id(device_id, emissions[i].cn, emissions[i].data_time, emissions[i].key)
            for i in lost
            if emissions[i].reading
        }

    def expected_readings(self, device_id: str, *, wire: bool = True) -> set[str]:
        """The reading ids the pipeline must end up with for this device: all it sent as
        readings, less what the line destroyed (``wire=False``: read from ``frames()``, which
        loses nothing)."""
        emissions, _ = self._generated(device_id)
        lost = self.lost_reading_ids(device_id) if wire else set()
        return {
            reading_id(device_id, e.cn, e.data_time, e.key) for e in emissions if e.reading
        } - lost

    def arriving(self, device_id: str) -> Iterator[Emission]:
        """The device's reading emissions that survive the wire (first copy of each id)."""
        emissions, lost = self._generated(device_id)
        seen: set[str] = set()
        for index, emission in enumerate(emissions):
            if not emission.reading or index in lost:
                continue
            rid = reading_id(device_id, emission.cn, emission.data_time, emission.key)
            if rid in seen:
                continue
            seen.add(rid)
            yield emission

    @cached_property
    def truth(self):  # -> agents.simulate.truth.Truth (imported late: truth imports this module)
        from agents.simulate.truth import compute_truth

        return compute_truth(self)

    def write_registry(self, folder: Path | str) -> list[Path]:
        """The registry CSVs, in the layout of docs/ARCHITECTURE.md."""
        return write_registry(self.registry, folder)

    def _device(self, device_id: str) -> SimDevice:
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"no simulated device {device_id!r}") from None


# ---------------------------------------------------------------------------------- building


def _spec(
    registry: Registry, device_id: str, code_names: dict[str, str] | None = None
) -> DeviceSpec:
    row = registry.device(device_id)
    names = dict(code_names or {})
    if row.edition == 2005:
        names.update({new: old for old, new in code_2005_to_2017().items()})
    return DeviceSpec(
        device_id=row.device_id,
        family=row.family,
        st=family_protocol(row.family).st[0],
        pw=row.pw,
        crc_mode=row.crc_mode,
        edition=row.edition,
        code_names=names,
    )


def _cems_devices(registry: Registry, seed: int, start: date, days: int, scale: str, plans) -> dict:
    out = {}
    roles = planner.stack_roles(registry.stacks, scale)
    for stack in registry.stacks:
        rng = seeded(seed, "stack-model", stack.stack_id)
        o2_base, temp = FUEL_PHYSICS[stack.fuel]
        model = StackModel(
            fuel=stack.fuel,
            o2_ref=stack.o2_ref_pct,
            o2_base=o2_base + rng.uniform(-0.5, 0.5),
            base_levels=planner.base_levels(registry, stack, start, days),
            temp_c=temp + rng.uniform(-5, 5),
            velocity_m_s=rng.uniform(8.0, 14.0),
            area_m2=round(rng.uniform(1.5, 6.0), 2),
            phase=rng.uniform(0, 6.28),
        )
        stack_plan = planner.plan_stack(registry, stack, roles[stack.stack_id], start, days, seed)
        plans[stack.device_id] = stack_plan
        cems_plan = CemsPlan(
            hours=dict(stack_plan.hours),
            offline=tuple(stack_plan.offline),
            stray_flags=dict(stack_plan.stray_flags),
            realtime_s=None if scale in MINUTES_ONLY_SCALES else 60,
        )
        spec = _spec(registry, stack.device_id)
        simulator = CemsSimulator(spec, model, cems_plan, seed=seed)
        noise = (
            _noise(planner.NOISY_LINE, seed, stack.device_id)
            if "noise" in stack_plan.roles
            else WireNoise()
        )
        out[stack.device_id] = SimDevice(
            stack.device_id,
            "cems",
            spec,
            simulator,
            noise,
            stack.stack_id,
            frozenset(stack_plan.roles),
        )
    return out


def _ambient_devices(
    registry: Registry, seed: int, start: date, days: int, scale: str, air, plans
) -> dict:
    out: dict[str, SimDevice] = {}
    sims: list[AmbientSimulator] = []
    station_plans = [
        planner.plan_station(i, len(registry.stations), start, days, scale)
        for i in range(len(registry.stations))
    ]
    # Sources first: a copier needs its source's simulator.
    order = sorted(
        range(len(registry.stations)), key=lambda i: station_plans[i].copy_of is not None
    )
    built: dict[int, AmbientSimulator] = {}
    for i in order:
        station = registry.stations[i]
        station_plan = station_plans[i]
        plans[station.device_id] = station_plan
        rng = seeded(seed, "station-model", station.station_id)
        model = StationModel(rng.uniform(0.88, 1.12), rng.uniform(0.8, 1.3), rng.uniform(0, 6.28))
        names = planner.ALIAS_NAMES if "alias_codes" in station_plan.roles else None
        spec = _spec(registry, station.device_id, names)
        copy = None
        if station_plan.copy_of is not None:
            copy = (built[station_plan.copy_of], (PM25, PM10))
        ambient_plan = AmbientPlan(
            offline=tuple(station_plan.offline),
            copy_from=copy,
            copy_lag_s=station_plan.copy_lag_s,
        )
        simulator = AmbientSimulator(
            spec, model, air, ambient_plan, seed=seed, clock=station_plan.clock
        )
        built[i] = simulator
        sims.append(simulator)
        noise = (
            _noise(planner.NOISY_LINE, seed, station.device_id)
            if "noise" in station_plan.roles
            else WireNoise()
        )
        out[station.device_id] = SimDevice(
            station.device_id, "ambient", spec, simulator, noise, station.station_id,
            frozenset(station_plan.roles),
        )  # fmt: skip
    return {s.device_id: out[s.device_id] for s in registry.stations}


def _vapor_devices(
    registry: Registry, seed: int, start: date, days: int, scale: str, plans
) -> dict:
    out = {}
    monitored = [g for g in registry.gas_stations if g.has_online_monitor]
    for index, gas in enumerate(monitored):
        gas_plan = planner.plan_gas_station(index, gas.nozzles, start, days, scale)
        plans[gas.device_id] = gas_plan
        nozzles = tuple(
            Nozzle(
                f"{n:02d}",
                GRADES[(n - 1) % len(GRADES)],
                0.25 if f"{n:02d}" == gas_plan.low_use else 3.0,
            )
            for n in range(1, gas.nozzles + 1)
        )
        vapor_plan = VaporPlan(
            drift_days=dict(gas_plan.drift),
            zero_pressure=tuple(gas_plan.zero_pressure),
            over_pressure=tuple(gas_plan.over_pressure),
        )
        spec = _spec(registry, gas.device_id)
        simulator = VaporSimulator(spec, nozzles, vapor_plan, seed=seed)
        roles = {"al_drift"} if gas_plan.drift else set()
        out[gas.device_id] = SimDevice(
            gas.device_id,
            "vapor",
            spec,
            simulator,
            WireNoise(),
            gas.gas_station_id,
            frozenset(roles),
        )
    return out


def _rsd_devices(registry: Registry, seed: int, start: date, days: int, scale: str, plans) -> dict:
    out = {}
    fleet = tuple(
        Vehicle(v.plate, v.fuel_type, v.gross_weight_t, v.emission_standard)
        for v in registry.vehicles
    )
    peak = SCALES[scale].rsd_peak_per_hour
    for index, unit in enumerate(registry.rsd_units):
        planned = planner.plan_passes(registry, start, days) if index == 0 else ()
        plans[unit.device_id] = planned
        spec = _spec(registry, unit.device_id)
        simulator = RsdSimulator(
            spec, index + 1, fleet, RsdPlan(planned=planned), seed=seed, peak_per_hour=peak
        )
        noise = _noise(planner.RADIO_LINK, seed, unit.device_id) if index == 0 else WireNoise()
        roles = {"smoking_trucks"} if planned else set()
        out[unit.device_id] = SimDevice(
            unit.device_id, "rsd", spec, simulator, noise, unit.unit_id, frozenset(roles)
        )
    return out


def _noise(template: WireNoise, seed: int, device_id: str) -> WireNoise:
    return WireNoise(
        template.garbage,
        template.corrupt,
        template.truncate,
        template.duplicate,
        seed=hash_seed(seed, device_id),
    )


def hash_seed(seed: int, device_id: str) -> int:
    """A per-device integer seed derived from the scenario seed (stable across runs)."""
    return seeded(seed, "noise-seed", device_id).randrange(2**31)


def build_scenario(
    seed: int = 2017, start: date = date(2017, 12, 1), days: int = 3, scale: str = "demo"
) -> Scenario:
    """The simulated district: ``tiny`` (tests), ``month`` (a month in tests), ``demo`` or
    ``district`` scale."""
    if days < 1:
        raise ValueError("a scenario needs at least one day")
    registry = build_registry(seed, start, days, scale)
    air = RegionalAir(episodes=planner.plan_episodes(start, days))
    plans: dict[str, Any] = {}
    devices: dict[str, SimDevice] = {}
    devices.update(_cems_devices(registry, seed, start, days, scale, plans))
    devices.update(_ambient_devices(registry, seed, start, days, scale, air, plans))
    devices.update(_vapor_devices(registry, seed, start, days, scale, plans))
    devices.update(_rsd_devices(registry, seed, start, days, scale, plans))
    return Scenario(
        seed=seed, start=start, days=days, scale=scale, registry=registry, devices=devices,
        air=air, plans=plans,
    )  # fmt: skip


__all__ = ["Scenario", "SimDevice", "build_scenario"]
