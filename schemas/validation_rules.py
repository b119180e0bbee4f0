"""Loader for the validation rules kept as data (stdlib only).

``validation.toml`` holds tolerances, the flag policy, required fields, the severity and level of
every check, the measurement column contracts and the tamper-rule parameters, each entry shaped
like ``thresholds.toml`` (``value``, ``unit``, ``source``, ``mark``; values may be lists or
tables). ``validation_ranges.csv`` holds the physical range of every code (CEMS, ambient) or
column (vapor, remote sensing) with its unit and source. The vapor and remote-sensing column
contracts come from the device profiles (``vapor_profile.csv``, ``rsd_profile.csv``).

Everything is bundled in one :class:`ValidationRules` value with a fingerprint of the files it was
read from: the suites are built from it, so a rule change is picked up by re-running validation
(a backfill), never by editing code.
"""

from __future__ import annotations

import csv
import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from schemas.rules import DATA_DIR

#: Streams validated by their own suite. ``vapor`` is the refuelling record (CN 2011), ``vapor_tank``
#: the station's minute record (CN 2051) of the same family.
STREAMS = ("cems", "ambient", "vapor", "vapor_tank", "rsd")
MEASUREMENT_STREAMS = ("cems", "ambient")
#: stream -> (profile file, command) for the families defined by a Lantian profile.
PROFILE_RECORDS = {
    "vapor": ("vapor_profile.csv", "2011"),
    "vapor_tank": ("vapor_profile.csv", "2051"),
    "rsd": ("rsd_profile.csv", "2011"),
}
#: profile ``type`` -> column kind checked by the suites.
PROFILE_KINDS = {"decimal": "float", "text": "str", "flag": "str", "int": "int"}
SEVERITIES = ("critical", "warning")
LEVELS = ("row", "table")


@dataclass(frozen=True)
class Param:
    name: str
    value: Any
    unit: str
    source: str
    mark: str


@dataclass(frozen=True)
class PhysicalRange:
    stream: str
    code: str  # HJ 212-2017 code (cems, ambient) or profile column (vapor, rsd)
    unit: str
    min: float
    max: float
    kind: str  # concentration, o2, temperature, ... (concentration rows need O2 for correction)
    source: str
    mark: str


@dataclass(frozen=True)
class Check:
    name: str
    severity: str  # critical | warning
    level: str  # row | table
    source: str


@dataclass(frozen=True)
class ValidationRules:
    """Every rule validation uses, read from one data folder."""

    params: dict[str, Param]
    ranges: tuple[PhysicalRange, ...]
    thresholds: dict[str, float]
    profiles: dict[str, tuple[dict[str, str], ...]] = field(default_factory=dict)
    fingerprint: str = ""

    def param(self, name: str) -> Any:
        """The value of one parameter; a missing name is an error that names it."""
        try:
            return self.params[name].value
        except KeyError:
            raise KeyError(f"no parameter {name!r} in schemas/data/validation.toml") from None

    def threshold(self, name: str) -> float:
        try:
            return self.thresholds[name]
        except KeyError:
            raise KeyError(f"no threshold {name!r} in schemas/data/thresholds.toml") from None

    def check(self, name: str) -> Check:
        entry = self.params.get(f"checks.{name}")
        if entry is None:
            raise KeyError(f"no check {name!r} in schemas/data/validation.toml [checks]")
        value = entry.value
        severity, level = value["severity"], value["level"]
        if severity not in SEVERITIES or level not in LEVELS:
            raise ValueError(f"check {name!r}: severity {severity!r} / level {level!r} unknown")
        return Check(name, severity, level, entry.source)

    def ranges_for(self, stream: str) -> list[PhysicalRange]:
        return [r for r in self.ranges if r.stream == stream]

    def columns(self, stream: str) -> dict[str, str]:
        """column -> kind (str, float, time, bool, int) the stream's frame must carry."""
        if stream in MEASUREMENT_STREAMS:
            return dict(self.param(f"schema.{stream}"))
        out = dict(self.param("schema.profile_common"))
        for row in self.profiles[stream]:
            out[row["column"]] = PROFILE_KINDS.get(row["type"], "str")
        return out

    def required(self, stream: str) -> dict[str, list[str]]:
        """command -> columns that must hold a value (``*`` = every command)."""
        if stream in MEASUREMENT_STREAMS:
            return {cn: list(cols) for cn, cols in self.param(f"required.{stream}").items()}
        return {"*": [row["column"] for row in self.profiles[stream] if row["required"] == "1"]}

    def categories(self, stream: str) -> dict[str, list[Any]]:
        name = f"categories.{stream}"
        return dict(self.params[name].value) if name in self.params else {}


def _read_params(path: Path) -> dict[str, Param]:
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    out: dict[str, Param] = {}
    for group, entries in raw.items():
        for name, entry in entries.items():
            key = f"{group}.{name}"
            out[key] = Param(key, entry["value"], entry["unit"], entry["source"], entry["mark"])
    return out


def _read_ranges(path: Path) -> tuple[PhysicalRange, ...]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        low, high = float(row["min"]), float(row["max"])
        if low > high:
            raise ValueError(f"{path.name}: {row['stream']} {row['code']} has min > max")
        out.append(
            PhysicalRange(
                row["stream"],
                row["code"],
                row["unit"],
                low,
                high,
                row["kind"],
                row["source"],
                row["mark"],
            )
        )
    return tuple(out)


def _read_profile(path: Path, cn: str) -> tuple[dict[str, str], ...]:
    with open(path, newline="", encoding="utf-8") as handle:
        return tuple(row for row in csv.DictReader(handle) if row["cn"] == cn)


def _read_thresholds(path: Path) -> dict[str, float]:
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    return {f"{g}.{n}": e["value"] for g, entries in raw.items() for n, e in entries.items()}


@cache
def _load(data_dir: Path, stamp: tuple[tuple[str, int], ...]) -> ValidationRules:
    del stamp  # only part of the cache key: a file that changed is read again
    digest = hashlib.sha256()
    files = ["validation.toml", "validation_ranges.csv", "thresholds.toml"]
    files += sorted({name for name, _ in PROFILE_RECORDS.values()})
    for name in files:
        digest.update(name.encode() + b"\0" + (data_dir / name).read_bytes())
    return ValidationRules(
        params=_read_params(data_dir / "validation.toml"),
        ranges=_read_ranges(data_dir / "validation_ranges.csv"),
        thresholds=_read_thresholds(data_dir / "thresholds.toml"),
        profiles={s: _read_profile(data_dir / f, cn) for s, (f, cn) in PROFILE_RECORDS.items()},
        fingerprint=digest.hexdigest()[:16],
    )


def load_rules(data_dir: Path | str | None = None) -> ValidationRules:
    """The validation rules of ``data_dir`` (default ``schemas/data``), re-read when a file changes."""
    folder = Path(data_dir) if data_dir is not None else DATA_DIR
    names = ["validation.toml", "validation_ranges.csv", "thresholds.toml"]
    names += sorted({name for name, _ in PROFILE_RECORDS.values()})
    stamp = tuple((n, (folder / n).stat().st_mtime_ns) for n in names)
    return _load(folder.resolve(), stamp)
