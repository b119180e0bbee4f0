"""Loaders for the ambient-air rules kept as data (stdlib only).

Files in ``schemas/data``: ``aqi_breakpoints.csv``, ``aqi_categories.csv``, ``aqi_rules.toml``
(HJ 633, per edition), ``ambient_validity.toml`` (GB 3095 / HJ 663, per edition),
``ambient_codes.csv`` (HJ 212 code -> AQI item), ``ambient_targets.toml`` (campaign goals and
ranking rules) and ``alert_levels.toml`` (national alert levels, plan clauses 34 and 35(3)).

Every edition-keyed loader takes the edition as a string ("2012"); a later edition is added as data
only. A malformed table fails loudly here, naming the file and the row, instead of giving a wrong
index downstream.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_EDITION = "2012"


@dataclass(frozen=True)
class Value:
    """One documented number (or setting) with its source and confidence mark."""

    name: str
    value: Any
    unit: str
    source: str
    mark: str


@dataclass(frozen=True)
class Breakpoints:
    """One breakpoint table: concentrations and the IAQI at each (both strictly increasing)."""

    kind: str
    concentrations: tuple[float, ...]
    iaqis: tuple[float, ...]
    unit: str
    source: str
    mark: str


@dataclass(frozen=True)
class Category:
    """AQI category: ``aqi_min < AQI <= aqi_max`` (the first category also includes its minimum)."""

    aqi_min: float
    aqi_max: float
    level: str
    name_en: str
    name_zh: str
    color: str


@dataclass(frozen=True)
class AqiRules:
    edition: str
    rounding: str
    scale_max: float
    primary_aqi_above: float
    exceeding_iaqi_above: float
    #: report kind ("hourly" | "daily") -> input column -> breakpoint table
    kinds: dict[str, dict[str, str]]
    #: breakpoint table -> (fallback table, column read for the fallback when present)
    above_top: dict[str, tuple[str, str]]
    #: input column -> (display name, Chinese name)
    names: dict[str, tuple[str, str]]
    breakpoints: dict[str, Breakpoints] = field(repr=False)
    categories: tuple[Category, ...] = field(repr=False)


@dataclass(frozen=True)
class AlertLevel:
    name: str
    name_zh: str
    rank: int
    min_heavy_days: int
    min_severe_days: int
    reach_aqi: float | None
    cuts: dict[str, float]
    source: str
    cuts_source: str


@dataclass(frozen=True)
class AlertRules:
    heavy_aqi_above: float
    severe_aqi_above: float
    day_hours: int
    lift_aqi_at_most: float
    lift_hours: int
    early_start_horizon_hours: int
    early_start_improved_at_most: float
    #: ordered by rank, lowest first
    levels: tuple[AlertLevel, ...]
    values: dict[str, Value] = field(repr=False)


def _read_csv(name: str) -> list[dict[str, str]]:
    with open(DATA_DIR / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _read_toml(name: str) -> dict[str, Any]:
    with open(DATA_DIR / name, "rb") as handle:
        return tomllib.load(handle)


def _values(entries: dict[str, Any], prefix: str = "") -> dict[str, Value]:
    return {
        name: Value(prefix + name, e["value"], e.get("unit", ""), e["source"], e["mark"])
        for name, e in entries.items()
        if isinstance(e, dict) and "value" in e
    }


def _edition_table(file: str, edition: str) -> dict[str, Any]:
    editions = _read_toml(file)["editions"]
    if edition not in editions:
        known = ", ".join(sorted(editions))
        raise KeyError(f"edition {edition!r} not in schemas/data/{file} (known: {known})")
    return editions[edition]


@cache
def aqi_editions() -> tuple[str, ...]:
    """Editions for which AQI rules are shipped."""
    return tuple(sorted(_read_toml("aqi_rules.toml")["editions"]))


@cache
def aqi_breakpoints(edition: str = DEFAULT_EDITION) -> dict[str, Breakpoints]:
    rows: dict[str, list[dict[str, str]]] = {}
    for row in _read_csv("aqi_breakpoints.csv"):
        if row["edition"] == edition:
            rows.setdefault(row["kind"], []).append(row)
    if not rows:
        raise KeyError(
            f"no breakpoints for edition {edition!r} in schemas/data/aqi_breakpoints.csv"
        )
    out: dict[str, Breakpoints] = {}
    for kind, kind_rows in rows.items():
        concentrations = tuple(float(r["concentration"]) for r in kind_rows)
        iaqis = tuple(float(r["iaqi"]) for r in kind_rows)
        for seq, what in ((concentrations, "concentration"), (iaqis, "iaqi")):
            if any(b <= a for a, b in zip(seq, seq[1:], strict=False)):
                raise ValueError(
                    f"aqi_breakpoints.csv edition {edition} {kind}: {what} not strictly increasing"
                )
        first = kind_rows[0]
        out[kind] = Breakpoints(
            kind, concentrations, iaqis, first["unit"], first["source"], first["mark"]
        )
    return out


@cache
def aqi_categories(edition: str = DEFAULT_EDITION) -> tuple[Category, ...]:
    cats = tuple(
        Category(
            float(r["aqi_min"]),
            float(r["aqi_max"]),
            r["level"],
            r["name_en"],
            r["name_zh"],
            r["color"],
        )
        for r in _read_csv("aqi_categories.csv")
        if r["edition"] == edition
    )
    if not cats:
        raise KeyError(f"no categories for edition {edition!r} in schemas/data/aqi_categories.csv")
    for a, b in zip(cats, cats[1:], strict=False):
        if a.aqi_max != b.aqi_min:
            raise ValueError(f"aqi_categories.csv edition {edition}: gap after {a.name_en}")
    return cats


@cache
def aqi_rules(edition: str = DEFAULT_EDITION) -> AqiRules:
    """The AQI rules of one edition of HJ 633 with its breakpoints and categories."""
    table = _edition_table("aqi_rules.toml", edition)
    breakpoints = aqi_breakpoints(edition)
    kinds = {k: dict(v) for k, v in table["kinds"].items()}
    for kind, mapping in kinds.items():
        for column, bp in mapping.items():
            if bp not in breakpoints:
                raise KeyError(f"aqi_rules.toml {edition}.{kind}.{column}: no breakpoints {bp!r}")
    above_top = {
        k: (v["fallback_kind"], v["fallback_column"]) for k, v in table["above_top"].items()
    }
    names = {
        k: (v["name"], v["name_zh"]) for k, v in _read_toml("aqi_rules.toml")["pollutants"].items()
    }
    return AqiRules(
        edition=edition,
        rounding=table["rounding"]["value"],
        scale_max=float(table["scale_max"]["value"]),
        primary_aqi_above=float(table["primary_aqi_above"]["value"]),
        exceeding_iaqi_above=float(table["exceeding_iaqi_above"]["value"]),
        kinds=kinds,
        above_top=above_top,
        names=names,
        breakpoints=breakpoints,
        categories=aqi_categories(edition),
    )


@cache
def ambient_validity(edition: str = DEFAULT_EDITION) -> dict[str, Value]:
    """Validity rules (minimum data counts) of one edition, keyed by name."""
    return _values(_edition_table("ambient_validity.toml", edition))


def validity(name: str, edition: str = DEFAULT_EDITION) -> Any:
    try:
        return ambient_validity(edition)[name].value
    except KeyError:
        raise KeyError(f"no {name!r} for edition {edition!r} in ambient_validity.toml") from None


@cache
def ambient_codes() -> dict[str, str]:
    """HJ 212-2017 ambient code -> AQI input column (``a34004`` -> ``pm25``)."""
    return {r["code"]: r["pollutant"] for r in _read_csv("ambient_codes.csv")}


@cache
def ambient_targets() -> dict[str, Value]:
    """Campaign goals and ranking rules keyed ``group.name`` (``campaign.pm25_reduction_min``)."""
    out: dict[str, Value] = {}
    for group, entries in _read_toml("ambient_targets.toml").items():
        for name, value in _values(entries, f"{group}.").items():
            out[f"{group}.{name}"] = value
    return out


def target(name: str) -> Any:
    try:
        return ambient_targets()[name].value
    except KeyError:
        raise KeyError(f"no target {name!r} in schemas/data/ambient_targets.toml") from None


@cache
def alert_rules() -> AlertRules:
    raw = _read_toml("alert_levels.toml")
    values = _values(raw["rules"])
    levels = tuple(
        sorted(
            (
                AlertLevel(
                    name=name,
                    name_zh=e["name_zh"],
                    rank=int(e["rank"]),
                    min_heavy_days=int(e["min_heavy_days"]),
                    min_severe_days=int(e["min_severe_days"]),
                    reach_aqi=float(e["reach_aqi"]) if "reach_aqi" in e else None,
                    cuts={k: float(v) for k, v in e["cuts"].items()},
                    source=e["source"],
                    cuts_source=e["cuts_source"],
                )
                for name, e in raw["levels"].items()
            ),
            key=lambda level: level.rank,
        )
    )

    def v(name: str) -> Any:
        return values[name].value

    return AlertRules(
        heavy_aqi_above=float(v("heavy_aqi_above")),
        severe_aqi_above=float(v("severe_aqi_above")),
        day_hours=int(v("day_hours")),
        lift_aqi_at_most=float(v("lift_aqi_at_most")),
        lift_hours=int(v("lift_hours")),
        early_start_horizon_hours=int(v("early_start_horizon_hours")),
        early_start_improved_at_most=float(v("early_start_improved_at_most")),
        levels=levels,
        values=values,
    )
