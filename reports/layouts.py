"""Loader for ``schemas/data/report_layouts.toml``: the plan's annex tables and deadlines."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from typing import Any

from schemas.rules import DATA_DIR, read_table

LAYOUTS_FILE = DATA_DIR / "report_layouts.toml"


@dataclass(frozen=True)
class Annex:
    key: str
    list_kind: str
    version: str  # "list" (annexes 1-2) or "progress" (annex 3)
    annex: str
    sheet: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (header as printed in the plan, frame column)

    @property
    def headers(self) -> list[str]:
        return [header for header, _ in self.columns]

    def title_for(self, city: str, issue: str | None) -> str:
        if issue:
            return self.title.format(city=city, issue=issue)
        # No issue number known: drop the "（第X期）" part rather than print a placeholder.
        return self.title.split("（第")[0].format(city=city)


@dataclass(frozen=True)
class Deadline:
    name: str
    value: int
    unit: str  # "working_days" or "calendar_days"
    counted_from: str
    roll_to_workday: bool
    source: str
    mark: str


@dataclass(frozen=True)
class AqiCategory:
    name: str
    upper: float
    color: str
    source: str
    mark: str


@cache
def _raw() -> dict[str, Any]:
    with open(LAYOUTS_FILE, "rb") as handle:
        return tomllib.load(handle)


def annexes() -> tuple[Annex, ...]:
    return tuple(
        Annex(
            key=entry["key"],
            list_kind=entry["list"],
            version=entry["version"],
            annex=entry["annex"],
            sheet=entry["sheet"],
            title=entry["title"],
            columns=tuple((header, column) for header, column in entry["columns"]),
        )
        for entry in _raw()["annex"]
    )


def deadlines() -> dict[str, Deadline]:
    return {
        name: Deadline(
            name,
            int(entry["value"]),
            entry["unit"],
            entry["counted_from"],
            bool(entry["roll_to_workday"]),
            entry["source"],
            entry["mark"],
        )
        for name, entry in _raw()["deadlines"].items()
    }


def disclosure_defaults() -> dict[str, str]:
    """Default 市 and 县(区) of a finding, with the source of that default."""
    return dict(_raw()["disclosure"])


def list_names() -> dict[str, str]:
    """list kind -> the list's Chinese name (the annex-1 sheet name without 名单/清单)."""
    names: dict[str, str] = {}
    for annex in annexes():
        if annex.version == "list":
            names[annex.list_kind] = annex.sheet.removesuffix("名单").removesuffix("清单")
    return names


AQI_CATEGORIES_FILE = "aqi_categories.csv"
#: 2017-2018 data is judged under HJ 633-2012 (DOMAIN.md: the edition is a parameter)
AQI_EDITION = "2012"


def aqi_categories(edition: str = AQI_EDITION) -> tuple[AqiCategory, ...]:
    """AQI categories with their colours from ``schemas/data/aqi_categories.csv``, low to high."""
    rows = [r for r in read_table(AQI_CATEGORIES_FILE) if r["edition"] == edition]
    if not rows:
        raise KeyError(f"no AQI categories for edition {edition!r} in {AQI_CATEGORIES_FILE}")
    rows.sort(key=lambda r: float(r["aqi_max"]))
    return tuple(
        AqiCategory(r["name_zh"], float(r["aqi_max"]), r["color"], r["source"], r["mark"])
        for r in rows
    )
