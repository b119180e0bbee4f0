"""Loaders for the rules kept as data in ``schemas/data`` (stdlib only).

Every number a rule uses comes from here, with the source it was taken from, so that a report can
cite it and a bureau can override a ``config`` default without touching code.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Threshold:
    name: str
    value: float
    unit: str
    source: str
    mark: str


@cache
def thresholds() -> dict[str, Threshold]:
    """All scalar thresholds, keyed ``group.name`` (e.g. ``stack.effective_transmission_min``)."""
    with open(DATA_DIR / "thresholds.toml", "rb") as handle:
        raw = tomllib.load(handle)
    out: dict[str, Threshold] = {}
    for group, entries in raw.items():
        for name, entry in entries.items():
            key = f"{group}.{name}"
            out[key] = Threshold(key, entry["value"], entry["unit"], entry["source"], entry["mark"])
    return out


def threshold(name: str) -> float:
    """The value of one threshold; a missing name is an error that names it."""
    try:
        return thresholds()[name].value
    except KeyError:
        raise KeyError(f"no threshold {name!r} in schemas/data/thresholds.toml") from None


def read_table(name: str) -> list[dict[str, str]]:
    """Rows of ``schemas/data/<name>`` as dicts of strings."""
    with open(DATA_DIR / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@cache
def emission_limits() -> list[dict[str, str]]:
    return read_table("emission_limits.csv")


@cache
def hj212_codes() -> list[dict[str, str]]:
    return read_table("hj212_codes.csv")


@cache
def code_2005_to_2017() -> dict[str, str]:
    """Map of HJ/T 212-2005 flue-gas codes to their 2017 codes."""
    return {row["code_2005"]: row["code_2017"] for row in hj212_codes() if row["code_2005"]}
