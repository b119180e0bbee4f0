"""The simulated district's registry: subdistricts, enterprises, stacks and their permit limits,
micro-stations, gas stations, remote-sensing units, vehicles and devices.

The layout of the CSV files is the bureau's (docs/ARCHITECTURE.md, "The bureau's registry
files"). Names of enterprises, stations and sites are invented and marked （模拟）; the 17
subdistricts are Jinshui district's; coordinates are approximate. Limits come from
schemas/data/emission_limits.csv.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path

from agents.devices.ambient.simulator import CODES as AMBIENT_CODES
from agents.devices.cems.simulator import CODES as CEMS_CODES
from agents.devices.sim import seeded
from schemas.profiles import default_units
from schemas.rules import emission_limits

#: Jinshui district's 17 subdistricts (街道办事处) with an approximate centre (lat, lon).
SUBDISTRICTS: tuple[tuple[str, float, float], ...] = (
    ("经八路街道", 34.776, 113.684),
    ("花园路街道", 34.786, 113.676),
    ("人民路街道", 34.764, 113.671),
    ("杜岭街道", 34.759, 113.681),
    ("大石桥街道", 34.771, 113.655),
    ("南阳路街道", 34.790, 113.650),
    ("南阳新村街道", 34.801, 113.656),
    ("文化路街道", 34.810, 113.665),
    ("丰产路街道", 34.790, 113.691),
    ("东风路街道", 34.806, 113.690),
    ("北林路街道", 34.821, 113.690),
    ("未来路街道", 34.771, 113.706),
    ("凤凰台街道", 34.776, 113.721),
    ("龙子湖街道", 34.790, 113.800),
    ("丰庆路街道", 34.826, 113.676),
    ("国基路街道", 34.841, 113.681),
    ("兴达路街道", 34.851, 113.661),
)

#: Which emission-limit category each fuel's stacks hold (emission_limits.csv).
FUEL_CATEGORY = {"coal": "special", "oil": "special", "gas": "special", "coal_power": "ultra_low"}
RETROFIT_CATEGORY = "low_nox_retrofit"
FAMILY_MN_CODE = {"cems": "31", "ambient": "22", "vapor": "61", "rsd": "62"}
POLLUTANTS = ("a34013", "a21026", "a21002")
PLATE_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#: Codes the simulated devices send, whose units the device configuration lists.
SENT_CODES = {"cems": CEMS_CODES, "ambient": AMBIENT_CODES}


@dataclass(frozen=True)
class Scale:
    """How big the simulated district is."""

    enterprises: tuple[tuple[str, str, int], ...]  # (industry, fuel, stacks)
    stations: int
    monitored_gas_stations: int
    unmonitored_gas_stations: int
    rsd_units: int
    vehicles: int
    nozzles: int
    rsd_peak_per_hour: float


_DISTRICT_TEMPLATES = (
    ("heating", "coal", 2),
    ("hospital", "gas", 1),
    ("university", "gas", 2),
    ("hotel", "gas", 1),
    ("food", "oil", 1),
    ("heating", "gas", 2),
    ("power", "coal_power", 2),
)


def _district_enterprises(count: int, stacks: int) -> tuple[tuple[str, str, int], ...]:
    out: list[tuple[str, str, int]] = []
    total = 0
    i = 0
    while len(out) < count:
        industry, fuel, n = _DISTRICT_TEMPLATES[i % len(_DISTRICT_TEMPLATES)]
        left_enterprises = count - len(out)
        n = min(n, stacks - total - (left_enterprises - 1))
        out.append((industry, fuel, max(1, n)))
        total += max(1, n)
        i += 1
    # Put any stacks still missing on the first enterprises.
    missing = stacks - total
    j = 0
    while missing > 0:
        industry, fuel, n = out[j]
        out[j] = (industry, fuel, n + 1)
        missing -= 1
        j = (j + 1) % len(out)
    return tuple(out)


SCALES: dict[str, Scale] = {
    "tiny": Scale((("heating", "coal", 1), ("hospital", "gas", 1)), 3, 1, 1, 1, 60, 8, 30.0),
    "demo": Scale(
        (
            ("heating", "coal", 2),
            ("hospital", "gas", 1),
            ("university", "gas", 2),
            ("power", "coal_power", 1),
        ),
        17,
        3,
        2,
        1,
        300,
        12,
        50.0,
    ),  # fmt: skip
    "district": Scale(_district_enterprises(25, 40), 300, 30, 15, 4, 2000, 12, 60.0),
    # A whole month in the default test run: the four stacks the bureau's simulated case events
    # need, the tiny district's stations, one monitored gas station and a quieter road.
    "month": Scale(
        (("heating", "coal", 1), ("hospital", "gas", 1), ("hotel", "gas", 1), ("food", "oil", 1)),
        3,
        1,
        1,
        1,
        60,
        8,
        12.0,
    ),  # fmt: skip
}

INDUSTRY_NAMES = {
    "heating": "热力有限公司",
    "hospital": "医院锅炉房",
    "university": "学院供暖站",
    "hotel": "大酒店",
    "food": "食品有限公司",
    "power": "热电有限公司",
}


@dataclass(frozen=True)
class Subdistrict:
    subdistrict_id: str
    name: str


@dataclass(frozen=True)
class Enterprise:
    enterprise_id: str
    name: str
    subdistrict_id: str
    industry: str


@dataclass(frozen=True)
class Stack:
    stack_id: str
    enterprise_id: str
    name: str
    height_m: float
    fuel: str
    o2_ref_pct: float
    device_id: str


@dataclass(frozen=True)
class StackLimit:
    stack_id: str
    pollutant: str
    limit_mg_m3: float
    o2_ref_pct: float
    valid_from: str
    valid_to: str
    standard: str
    category: str
    source: str

    def in_force(self, day: date) -> bool:
        """valid_from <= day < valid_to (empty = open), Beijing dates."""
        start = date.fromisoformat(self.valid_from) if self.valid_from else date.min
        end = date.fromisoformat(self.valid_to) if self.valid_to else date.max
        return start <= day < end


@dataclass(frozen=True)
class Station:
    station_id: str
    device_id: str
    subdistrict_id: str
    name: str
    lat: float
    lon: float
    install_date: str


@dataclass(frozen=True)
class GasStation:
    gas_station_id: str
    name: str
    subdistrict_id: str
    annual_gasoline_sales_t: int
    has_online_monitor: int
    device_id: str
    nozzles: int


@dataclass(frozen=True)
class RsdUnitRow:
    unit_id: str
    device_id: str
    site: str
    subdistrict_id: str
    calibrated_until: str


@dataclass(frozen=True)
class VehicleRow:
    plate: str
    owner: str
    transport_enterprise: str
    key_enterprise: int
    fuel_type: str
    gross_weight_t: float
    emission_standard: str


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    family: str
    stream: str
    owner_id: str
    crc_mode: str
    units: dict[str, str]
    install_date: str
    pw: str
    edition: int = field(default=2017, metadata={"csv": False})


@dataclass
class Registry:
    subdistricts: list[Subdistrict]
    enterprises: list[Enterprise]
    stacks: list[Stack]
    stack_limits: list[StackLimit]
    stations: list[Station]
    gas_stations: list[GasStation]
    rsd_units: list[RsdUnitRow]
    vehicles: list[VehicleRow]
    devices: list[DeviceRow]
    key_enterprises: list[str] = field(default_factory=list)

    def device(self, device_id: str) -> DeviceRow:
        for row in self.devices:
            if row.device_id == device_id:
                return row
        raise KeyError(f"no device {device_id!r} in the simulated registry")

    def limits_for(self, stack_id: str, pollutant: str) -> list[StackLimit]:
        return [
            lim
            for lim in self.stack_limits
            if lim.stack_id == stack_id and lim.pollutant == pollutant
        ]

    def limit_in_force(self, stack_id: str, pollutant: str, day: date) -> StackLimit | None:
        """The strictest limit in force on ``day`` (as enforcement resolves overlaps)."""
        found = [lim for lim in self.limits_for(stack_id, pollutant) if lim.in_force(day)]
        return min(found, key=lambda lim: lim.limit_mg_m3) if found else None


#: CSV file -> registry attribute, in the order the bureau lists them.
REGISTRY_FILES = (
    ("subdistricts.csv", "subdistricts"),
    ("enterprises.csv", "enterprises"),
    ("stacks.csv", "stacks"),
    ("stack_limits.csv", "stack_limits"),
    ("stations.csv", "stations"),
    ("gas_stations.csv", "gas_stations"),
    ("rsd_units.csv", "rsd_units"),
    ("vehicles.csv", "vehicles"),
    ("devices.csv", "devices"),
)


def _csv_columns(kind: type) -> list[str]:
    return [f.name for f in fields(kind) if f.metadata.get("csv", True)]


def _csv_value(value: object) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    return str(value)


def write_registry(registry: Registry, folder: Path | str) -> list[Path]:
    """Write the registry CSVs (UTF-8) into ``folder``; returns the paths written."""
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds = {
        "subdistricts": Subdistrict, "enterprises": Enterprise, "stacks": Stack,
        "stack_limits": StackLimit, "stations": Station, "gas_stations": GasStation,
        "rsd_units": RsdUnitRow, "vehicles": VehicleRow, "devices": DeviceRow,
    }  # fmt: skip
    written = []
    for file_name, attribute in REGISTRY_FILES:
        columns = _csv_columns(kinds[attribute])
        path = out_dir / file_name
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in getattr(registry, attribute):
                data = asdict(row)
                writer.writerow([_csv_value(data[c]) for c in columns])
        written.append(path)
    return written


# ---------------------------------------------------------------------------------- building


def _limit_row(fuel: str, category: str, pollutant: str) -> dict[str, str]:
    for row in emission_limits():
        if row["fuel"] == fuel and row["category"] == category and row["pollutant"] == pollutant:
            return row
    raise KeyError(f"emission_limits.csv has no {fuel}/{category}/{pollutant} limit")


def o2_reference(fuel: str) -> float:
    """The O2 reference of a fuel's limits (emission_limits.csv)."""
    return float(_limit_row(fuel, FUEL_CATEGORY[fuel], POLLUTANTS[0])["o2_ref_pct"])


def stack_limit(
    stack_id: str, fuel: str, category: str, pollutant: str, valid_from: str, valid_to: str
) -> StackLimit:
    row = _limit_row(fuel, category, pollutant)
    return StackLimit(
        stack_id=stack_id,
        pollutant=pollutant,
        limit_mg_m3=float(row["limit_mg_m3"]),
        o2_ref_pct=float(row["o2_ref_pct"]),
        valid_from=valid_from,
        valid_to=valid_to,
        standard=f"{row['standard']}-{row['edition']}",
        category=category,
        source=row["source"],
    )


def mn(family: str, serial: int) -> str:
    """A 24-character MN: district code 410105, a family code, a 16-digit serial."""
    return f"410105{FAMILY_MN_CODE[family]}{serial:016d}"


def plate(rng, prefix: str = "豫A") -> str:
    return prefix + "".join(rng.choice(PLATE_CHARS) for _ in range(5))


def limit_change_date(start: date, days: int) -> date:
    """When the planted low-NOx retrofit deadline falls: midnight inside the window when it can."""
    return start + timedelta(days=max(1, days // 2))


def build_registry(seed: int, start: date, days: int, scale: str) -> Registry:
    """The registry of a scale; ids are stable across seeds, attributes come from ``seed``."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    spec = SCALES[scale]
    rng = seeded(seed, "registry", scale)
    install = (start - timedelta(days=75)).isoformat()
    subdistricts = [
        Subdistrict(f"JS{i + 1:02d}", name) for i, (name, _, _) in enumerate(SUBDISTRICTS)
    ]
    devices: list[DeviceRow] = []
    serial = {family: 0 for family in FAMILY_MN_CODE}

    def new_device(family: str, owner: str, crc_mode: str = "standard", edition: int = 2017) -> str:
        serial[family] += 1
        device_id = mn(family, serial[family])
        defaults = default_units(family)
        units = {
            code: defaults[code] for code in SENT_CODES.get(family, defaults) if code in defaults
        }
        pw = f"{rng.randrange(10**6):06d}"
        devices.append(
            DeviceRow(device_id, family, family, owner, crc_mode, units, install, pw, edition)
        )
        return device_id

    # Enterprises and stacks -----------------------------------------------------------
    enterprises: list[Enterprise] = []
    stacks: list[Stack] = []
    limits: list[StackLimit] = []
    change = limit_change_date(start, days).isoformat()
    retrofit_done = False
    legacy_loggers = 0
    for e_index, (industry, fuel, n_stacks) in enumerate(spec.enterprises):
        enterprise_id = f"E{e_index + 1:03d}"
        sub = subdistricts[(e_index * 5) % len(subdistricts)]
        name = f"金水{sub.name[:-2]}{INDUSTRY_NAMES[industry]}（模拟）"
        enterprises.append(Enterprise(enterprise_id, name, sub.subdistrict_id, industry))
        for s_index in range(n_stacks):
            stack_id = f"S{len(stacks) + 1:03d}"
            # One logger in every ten (and the first gas stack) still speaks HJ/T 212-2005.
            legacy = fuel == "gas" and legacy_loggers == 0 or (len(stacks) % 10 == 9)
            legacy_loggers += int(legacy)
            device_id = new_device("cems", stack_id, edition=2005 if legacy else 2017)
            height = 120.0 if fuel == "coal_power" else float(rng.randrange(46, 90))
            o2_ref = o2_reference(fuel)
            stacks.append(
                Stack(
                    stack_id,
                    enterprise_id,
                    f"{s_index + 1}号排气筒",
                    height,
                    fuel,
                    o2_ref,
                    device_id,
                )
            )
            category = FUEL_CATEGORY[fuel]
            for pollutant in POLLUTANTS:
                if fuel == "gas" and pollutant == "a21002" and not retrofit_done:
                    limits.append(
                        stack_limit(stack_id, fuel, category, pollutant, "2017-01-01", change)
                    )
                    limits.append(
                        stack_limit(stack_id, fuel, RETROFIT_CATEGORY, pollutant, change, "")
                    )
                else:
                    limits.append(
                        stack_limit(stack_id, fuel, category, pollutant, "2017-01-01", "")
                    )
            if fuel == "gas":
                retrofit_done = True

    # Micro-stations --------------------------------------------------------------------
    stations: list[Station] = []
    for i in range(spec.stations):
        sub_index = i % len(subdistricts)
        sub = subdistricts[sub_index]
        _, lat, lon = SUBDISTRICTS[sub_index]
        station_id = f"M{i + 1:03d}"
        crc_mode = "modbus" if i == 1 else "standard"  # set knowingly by the technician
        device_id = new_device("ambient", station_id, crc_mode=crc_mode)
        stations.append(
            Station(
                station_id, device_id, sub.subdistrict_id,
                f"{sub.name}微站{i // len(subdistricts) + 1}号（模拟）",
                round(lat + rng.uniform(-0.006, 0.006), 5),
                round(lon + rng.uniform(-0.006, 0.006), 5),
                install,
            )
        )  # fmt: skip

    # Gas stations: monitored ones first; the first unmonitored one sells over 5000 t -----
    gas_stations: list[GasStation] = []
    total = spec.monitored_gas_stations + spec.unmonitored_gas_stations
    for i in range(total):
        gas_id = f"G{i + 1:03d}"
        sub = subdistricts[(i * 3 + 1) % len(subdistricts)]
        monitored = i < spec.monitored_gas_stations
        if monitored:
            sales = rng.randrange(5200, 9000)
        elif i == spec.monitored_gas_stations:
            sales = rng.randrange(5600, 7500)  # should have a monitor and has none
        else:
            sales = rng.randrange(1800, 4800)
        device_id = new_device("vapor", gas_id) if monitored else ""
        name = f"金水{sub.name[:-2]}加油站（模拟）"
        gas_stations.append(
            GasStation(
                gas_id, name, sub.subdistrict_id, sales, int(monitored), device_id, spec.nozzles
            )
        )

    # Remote-sensing units ----------------------------------------------------------------
    sites = ("中州大道与金水路口", "北三环与花园路口", "东风路与文化路口", "农业路与未来路口")
    rsd_units = []
    for i in range(spec.rsd_units):
        unit_id = f"R{i + 1:02d}"
        device_id = new_device("rsd", unit_id)
        sub = subdistricts[(i * 4 + 2) % len(subdistricts)]
        calibrated = (start + timedelta(days=120)).isoformat()
        rsd_units.append(
            RsdUnitRow(
                unit_id,
                device_id,
                f"{sites[i % len(sites)]}（模拟）",
                sub.subdistrict_id,
                calibrated,
            )
        )

    vehicles, key_enterprises = _vehicles(rng, spec.vehicles)
    return Registry(
        subdistricts, enterprises, stacks, limits, stations, gas_stations, rsd_units, vehicles,
        devices, key_enterprises,
    )  # fmt: skip


#: Key transport enterprises and the share of their trucks at China IV or better: the plan asks
#: for >= 80 %; one enterprise sits exactly on it, one below.
KEY_FLEETS = (("郑州金水物流有限公司（模拟）", 10, 9), ("郑州东区运输有限公司（模拟）", 10, 8),
              ("河南北环货运有限公司（模拟）", 10, 7))  # fmt: skip


def _vehicles(rng, count: int) -> tuple[list[VehicleRow], list[str]]:
    seen: set[str] = set()

    def fresh() -> str:
        while True:
            candidate = plate(rng)
            if candidate not in seen:
                seen.add(candidate)
                return candidate

    rows: list[VehicleRow] = []
    for name, trucks, modern in KEY_FLEETS:
        for k in range(trucks):
            standard = rng.choice(("IV", "V", "VI")) if k < modern else "III"
            weight = round(rng.uniform(18.0, 49.0), 1)
            rows.append(VehicleRow(fresh(), name, name, 1, "diesel", weight, standard))
    # A small courier's light diesel van (N1): the black-smoke vehicle of the plan.
    rows.append(VehicleRow(fresh(), "金水快递服务部（模拟）", "", 0, "diesel", 3.0, "III"))
    while len(rows) < count:
        if rng.random() < 0.12:
            weight = round(rng.uniform(4.5, 25.0), 1)
            owner = f"个体运输户{len(rows):04d}（模拟）"
            rows.append(
                VehicleRow(fresh(), owner, "", 0, "diesel", weight, rng.choice(("III", "IV", "V")))
            )
        else:
            owner = f"私家车主{len(rows):04d}（模拟）"
            weight = round(rng.uniform(1.2, 2.4), 1)
            rows.append(
                VehicleRow(fresh(), owner, "", 0, "gasoline", weight, rng.choice(("IV", "V", "VI")))
            )
    return rows, [name for name, _, _ in KEY_FLEETS]
