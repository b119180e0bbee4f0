"""A simulated vehicle remote-sensing unit speaking the Lantian remote-sensing profile.

One frame per vehicle pass (CN=2011, ``PassId=<id>`` in CP, DataTime = the pass): lane, plate
(UTF-8, e.g. 豫A12345), plate colour, fuel type and weight class from the unit's plate look-up,
gross weight, speed, acceleration, VSP, CO2, CO, HC, NO, and for diesel vehicles smoke opacity and
Ringelmann blackness, and the unit's own validity verdict. Codes: schemas/data/rsd_profile.csv.

Traffic is random (a fleet of registered vehicles plus passing vehicles from elsewhere); planned
passes (smoking trucks, a truck that smokes only now and then) are inserted at planned times with
values far beyond the limits of rsd_limits.csv, or well below them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from agents.devices.sim import (
    DeviceClock,
    DeviceSpec,
    Emission,
    data_time_text,
    fixed,
    in_periods,
    seeded,
    write_frame,
)
from schemas.enforcement_rules import rsd_limits
from schemas.reading import BEIJING

LANE, PLATE, PLATE_COLOR, FUEL, WEIGHT_CLASS, GROSS = (
    "lr1001", "lr1002", "lr1003", "lr1004", "lr1005", "lr1006",
)  # fmt: skip
SPEED, ACCEL, VSP, CO2, CO, HC, NO = (
    "lr1007",
    "lr1008",
    "lr1009",
    "lr1010",
    "lr1011",
    "lr1012",
    "lr1013",
)
OPACITY, RINGELMANN, VALID, INVALID_REASON = "lr1014", "lr1015", "lr1016", "lr1017"
UNREADABLE = "无牌"

#: Relative traffic per hour of day.
HOURLY_TRAFFIC = (
    0.25, 0.2, 0.2, 0.2, 0.25, 0.4, 0.7, 1.0, 1.0, 0.8, 0.7, 0.7,
    0.7, 0.7, 0.7, 0.75, 0.85, 1.0, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3,
)  # fmt: skip

#: Planned-pass modes: what the exhaust looks like.
MODES = ("clean", "opacity", "no", "black_smoke")


@dataclass(frozen=True)
class Vehicle:
    plate: str
    fuel_type: str  # diesel | gasoline
    gross_weight_t: float
    emission_standard: str  # III | IV | V | VI

    @property
    def weight_class(self) -> str:
        if self.fuel_type == "gasoline" and self.gross_weight_t <= 3.5:
            return "M1"
        if self.gross_weight_t <= 3.5:
            return "N1"
        return "N2" if self.gross_weight_t <= 12 else "N3"

    @property
    def plate_color(self) -> str:
        return "黄" if self.gross_weight_t > 3.5 else "蓝"


@dataclass(frozen=True)
class PlannedPass:
    at: datetime  # device time of the pass
    plate: str
    mode: str
    tag: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown pass mode {self.mode!r}; expected one of {MODES}")


@dataclass(frozen=True)
class RsdPlan:
    planned: tuple[PlannedPass, ...] = ()
    offline: tuple[tuple[datetime, datetime], ...] = ()  # true-time periods with no frames
    calibrated: bool = True


def vsp(speed_km_h: float, accel_m_s2: float) -> float:
    """Vehicle specific power (kW/t) on a level road: v(1.1a + 0.132) + 0.000302 v³, v in m/s
    (the formula HJ 845-2017 uses, after Jiménez-Palacios)."""
    v = speed_km_h / 3.6
    return v * (1.1 * accel_m_s2 + 0.132) + 0.000302 * v**3


def validity_window() -> dict[str, tuple[float, float]]:
    """The unit's validity window per quantity (speed_km_h, accel_m_s2, vsp_kw_t) from the
    ``window`` rows of rsd_limits.csv (min, max)."""
    window: dict[str, list[float]] = {}
    for row in rsd_limits():
        if row["kind"] == "window":
            bounds = window.setdefault(row["quantity"], [float("-inf"), float("inf")])
            bounds[0 if row["bound"] == "min" else 1] = float(row["value"])
    return {quantity: (low, high) for quantity, (low, high) in window.items()}


def window_problem(speed: float, accel: float, power: float) -> str:
    """'' when the pass lies inside the unit's validity window, else what is out of it."""
    window = validity_window()
    for name, quantity, value in (
        ("speed", "speed_km_h", speed),
        ("accel", "accel_m_s2", accel),
        ("vsp", "vsp_kw_t", power),
    ):
        low, high = window.get(quantity, (float("-inf"), float("inf")))
        if not low <= value <= high:
            return name
    return ""


class RsdSimulator:
    """Frames of one remote-sensing unit, one device-clock day at a time."""

    def __init__(
        self,
        spec: DeviceSpec,
        unit_no: int,
        fleet: tuple[Vehicle, ...],
        plan: RsdPlan | None = None,
        *,
        seed: int,
        peak_per_hour: float = 40.0,
        clock: DeviceClock | None = None,
    ) -> None:
        self.spec = spec
        self.unit_no = unit_no
        self.plan = plan or RsdPlan()
        planned_plates = {p.plate for p in self.plan.planned}
        # Planned vehicles pass only when planned, so that "consecutive" is exactly the plan.
        self.fleet = tuple(v for v in fleet if v.plate not in planned_plates)
        self.lookup = {v.plate: v for v in fleet}
        self.seed = seed
        self.peak_per_hour = peak_per_hour
        self.clock = clock or DeviceClock()

    # ------------------------------------------------------------------ traffic

    def _visitor(self, rng) -> Vehicle:
        """A vehicle registered elsewhere (not in the district's registry)."""
        prefix = rng.choice(("豫B", "豫F", "豫G", "冀A", "鲁A", "晋A"))
        plate = prefix + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
        heavy = rng.random() < 0.15
        return Vehicle(
            plate,
            "diesel" if heavy else "gasoline",
            round(rng.uniform(12.0, 40.0), 1) if heavy else round(rng.uniform(1.2, 2.4), 1),
            rng.choice(("IV", "V", "V", "VI")),
        )

    def _random_passes(self, rng, midnight: datetime) -> list[tuple[datetime, Vehicle | None, str]]:
        out: list[tuple[datetime, Vehicle | None, str]] = []
        for hour, share in enumerate(HOURLY_TRAFFIC):
            count = int(self.peak_per_hour * share + rng.random())
            for _ in range(count):
                moment = midnight + timedelta(hours=hour, seconds=int(rng.uniform(0, 3600)))
                pick = rng.random()
                if pick < 0.02:
                    vehicle = None  # plate not readable
                elif pick < 0.25 or not self.fleet:
                    vehicle = self._visitor(rng)
                else:
                    vehicle = rng.choice(self.fleet)
                out.append((moment, vehicle, ""))
        return out

    # ------------------------------------------------------------------ exhaust

    def _values(self, rng, vehicle: Vehicle | None, mode: str) -> dict[str, dict[str, str]]:
        g = [rng.gauss(0.0, 1.0) for _ in range(4)]
        u = [rng.random() for _ in range(8)]
        planned = mode != ""
        # Planned passes drive steadily through the window; random traffic sometimes does not.
        if planned:
            speed = 30.0 + 20.0 * u[1]
            accel = 0.1 + 0.4 * u[2]
        elif u[0] > 0.07:
            speed = 20.0 + 50.0 * u[1]
            accel = -0.5 + 1.5 * u[2]
        else:
            speed, accel = (4.0 + 4.0 * u[1], 0.2) if u[2] < 0.5 else (40.0, -2.0 - u[3])
        power = vsp(speed, accel)
        diesel = vehicle is not None and vehicle.fuel_type == "diesel"
        if vehicle is None:
            diesel = u[4] < 0.2
        if diesel:
            standard = vehicle.emission_standard if vehicle else "IV"
            low, high = {"III": (800, 1400), "IV": (500, 1200)}.get(standard, (200, 800))
            no = low + (high - low) * u[5]
            opacity = 2.0 + 13.0 * u[6]
            ringelmann = 0
            if mode == "no":
                no = 2200.0 + 1000.0 * u[5]
            elif mode in ("opacity", "black_smoke"):
                opacity = 45.0 + 25.0 * u[6]
                ringelmann = 2 + int(u[7] < 0.4)
            values = {
                CO2: fixed(9.5 + 0.8 * g[0], 2),
                CO: fixed(0.02 + 0.06 * u[3], 3),
                HC: fixed(15.0 + 30.0 * u[4], 0),
                NO: fixed(no, 0),
                OPACITY: fixed(opacity, 1),
                RINGELMANN: str(ringelmann),
            }
        else:
            values = {
                CO2: fixed(13.6 + 0.4 * g[0], 2),
                CO: fixed(max(0.01, 0.15 + 0.2 * g[1]), 3),
                HC: fixed(max(5.0, 60.0 + 40.0 * g[2]), 0),
                NO: fixed(max(10.0, 250.0 + 150.0 * g[3]), 0),
            }
        reason = window_problem(speed, accel, power)
        if vehicle is None:
            reason = reason or "plate"
        if not self.plan.calibrated:
            reason = reason or "calibration"
        head = {
            SPEED: fixed(speed, 1),
            ACCEL: fixed(accel, 2),
            VSP: fixed(power, 2),
            VALID: "0" if reason else "1",
        }
        if reason:
            head[INVALID_REASON] = reason
        return {**head, **values}

    def _identity(self, rng, vehicle: Vehicle | None, lane_heavy: bool) -> dict[str, str]:
        lane = str(2 + int(rng.random() < 0.5)) if lane_heavy else str(1 + int(rng.random() * 3))
        if vehicle is None:
            return {
                LANE: lane, PLATE: UNREADABLE, PLATE_COLOR: "蓝", FUEL: "unknown",
                WEIGHT_CLASS: "unknown", GROSS: "0",
            }  # fmt: skip
        return {
            LANE: lane,
            PLATE: vehicle.plate,
            PLATE_COLOR: vehicle.plate_color,
            FUEL: vehicle.fuel_type,
            WEIGHT_CLASS: vehicle.weight_class,
            GROSS: fixed(vehicle.gross_weight_t, 1),
        }

    def day(self, day: date) -> list[Emission]:
        """All passes whose device time lies on ``day``, in send order."""
        rng = seeded(self.seed, "rsd", self.spec.device_id, day.isoformat())
        midnight = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
        passes = self._random_passes(rng, midnight)
        for planned in self.plan.planned:
            if planned.at.astimezone(BEIJING).date() == day:
                passes.append((planned.at, self.lookup.get(planned.plate), planned.mode))
        passes.sort(key=lambda p: (p[0], p[2], p[1].plate if p[1] else ""))
        out: list[Emission] = []
        stamp = day.strftime("%Y%m%d")
        for seq, (moment, vehicle, mode) in enumerate(passes, start=1):
            identity = self._identity(
                rng, vehicle, vehicle is not None and vehicle.gross_weight_t > 3.5
            )
            measured = self._values(rng, vehicle, mode)
            values = {
                code: {_suffix(code): text} for code, text in {**identity, **measured}.items()
            }
            pass_id = f"{self.unit_no:02d}{stamp}{seq:05d}"
            true = self.clock.to_true(moment)
            if true is None:
                continue
            sent = true + timedelta(seconds=2)
            if in_periods(sent, self.plan.offline):
                continue
            data_time = data_time_text(moment)
            device_now = sent + timedelta(seconds=self.clock.offset_s(sent))
            frame = write_frame(
                self.spec, "2011", data_time, values, extra={"PassId": pass_id}, qn_time=device_now
            )
            tag = f"planned:{mode}" if mode else ""
            out.append(
                Emission(sent, "2011", data_time, pass_id, frame, values, True, bool(mode), tag)
            )
        out.sort(key=lambda e: (e.at, e.key))
        return out


_INFO = frozenset({LANE, PLATE, PLATE_COLOR, FUEL, WEIGHT_CLASS, VALID, INVALID_REASON})


def _suffix(code: str) -> str:
    """Text items travel as ``-Info``, measurements as ``-Rtd`` (rsd_profile.csv)."""
    return "Info" if code in _INFO else "Rtd"
