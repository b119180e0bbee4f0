"""Loaders for the device families' protocol profiles (stdlib only).

``device_profiles.toml`` says, per family, which HJ 212 system codes (ST) it sends, which commands
(CN) carry readings and which CP key separates readings at one time (a nozzle, a vehicle pass).
``vapor_profile.csv`` and ``rsd_profile.csv`` define the Lantian profiles for the two families that
have no national protocol: one row per item (code and suffix) with the warehouse column it fills.
``device_code_aliases.csv`` maps vendor names (``O3``) to HJ 212-2017 codes.
See docs/device-profiles.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from typing import Any

from schemas.rules import DATA_DIR, code_2005_to_2017, hj212_codes, read_table

FAMILIES = ("cems", "ambient", "vapor", "rsd")


@dataclass(frozen=True)
class ProfileItem:
    """One item of a profile: ``code-suffix`` in the CP (or a plain CP key when suffix is empty)."""

    cn: str
    code: str
    suffix: str
    column: str
    unit: str
    type: str
    description: str
    required: bool
    version: str

    @property
    def is_key(self) -> bool:
        """A plain CP key (``Nozzle``, ``PassId``) rather than a ``code-suffix`` value."""
        return not self.suffix


@dataclass(frozen=True)
class FamilyProtocol:
    """How one family speaks HJ 212 (a section of ``device_profiles.toml``)."""

    name: str
    version: str
    st: tuple[str, ...]
    reading_cns: tuple[str, ...]
    key: str
    key_cns: tuple[str, ...]
    profile: str
    source: str
    mark: str


@cache
def _profiles_toml() -> dict[str, Any]:
    with open(DATA_DIR / "device_profiles.toml", "rb") as handle:
        return tomllib.load(handle)


@cache
def family_protocol(family: str) -> FamilyProtocol:
    """The protocol section of one family; an unknown family is an error naming the known ones."""
    raw = _profiles_toml()
    if family not in FAMILIES or family not in raw:
        raise KeyError(f"no device family {family!r}; known: {', '.join(FAMILIES)}")
    entry = raw[family]
    return FamilyProtocol(
        name=family,
        version=str(entry["version"]),
        st=tuple(str(s) for s in entry["st"]),
        reading_cns=tuple(str(c) for c in entry["reading_cns"]),
        key=str(entry.get("key", "")),
        key_cns=tuple(str(c) for c in entry.get("key_cns", ())),
        profile=str(entry.get("profile", "")),
        source=str(entry["source"]),
        mark=str(entry["mark"]),
    )


def is_non_reading_cn(cn: str) -> bool:
    """True for commands that are not readings: requests, replies, control, status uploads."""
    commands = _profiles_toml()["commands"]
    if cn in commands["non_reading_cns"]:
        return True
    return len(cn) == 4 and cn[:1] in commands["non_reading_prefixes"]


@cache
def profile_items(family: str) -> tuple[ProfileItem, ...]:
    """Rows of the family's profile CSV (vapor, rsd); empty for the national families."""
    name = family_protocol(family).profile
    if not name:
        return ()
    return tuple(
        ProfileItem(
            cn=row["cn"],
            code=row["code"],
            suffix=row["suffix"],
            column=row["column"],
            unit=row["unit"],
            type=row["type"],
            description=row["description"],
            required=row["required"] == "1",
            version=row["profile_version"],
        )
        for row in read_table(name)
    )


@cache
def profile_units(family: str) -> dict[str, str]:
    """code -> unit from the family's profile (the first non-empty unit of each code)."""
    units: dict[str, str] = {}
    for item in profile_items(family):
        if item.unit and not item.is_key:
            units.setdefault(item.code, item.unit)
    return units


@cache
def default_units(stream: str) -> dict[str, str]:
    """code -> default unit of the stream: hj212_codes.csv for cems/ambient, else the profile."""
    if stream in ("vapor", "rsd"):
        return profile_units(stream)
    return {
        row["code_2017"]: row["default_unit"] for row in hj212_codes() if row["stream"] == stream
    }


@cache
def code_aliases(family: str) -> dict[str, str]:
    """Vendor name -> HJ 212-2017 code for one family. Keys are upper-cased (match that way).

    CEMS loggers of the 2005 edition send 2005 codes (``01``, ``S01``): those come from
    hj212_codes.csv and are included here for the ``cems`` family.
    """
    out: dict[str, str] = {}
    if family == "cems":
        out.update({code.upper(): new for code, new in code_2005_to_2017().items()})
    for row in read_table("device_code_aliases.csv"):
        if row["family"] == family:
            out[row["alias"].upper()] = row["code_2017"]
    return out


@cache
def _simulation_toml() -> dict[str, Any]:
    with open(DATA_DIR / "simulation.toml", "rb") as handle:
        return tomllib.load(handle)


def simulation_setting(name: str) -> float:
    """A level from ``simulation.toml`` (``group.name``), e.g. ``rsd.no_limit_ppm``."""
    group, _, key = name.partition(".")
    try:
        return _simulation_toml()[group][key]["value"]
    except KeyError:
        raise KeyError(f"no setting {name!r} in schemas/data/simulation.toml") from None
