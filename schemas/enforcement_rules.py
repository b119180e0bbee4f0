"""Loaders for the enforcement rules kept as data (stdlib only).

``enforcement.toml``, ``penalties.toml`` and ``accountability.toml`` hold settings shaped like
``thresholds.toml`` (``value``, ``unit``, ``source``, ``mark``) whose values may also be strings or
lists; ``rsd_limits.csv`` holds the remote-sensing limits and validity windows.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from functools import cache
from typing import Any

from schemas.rules import DATA_DIR, read_table

# Beijing time has had a fixed UTC+8 offset since 1991; a fixed zone avoids a tz-database dependency.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


@dataclass(frozen=True)
class Rule:
    name: str
    value: Any
    unit: str
    source: str
    mark: str
    extra: dict[str, Any] = field(default_factory=dict)


_BASE_KEYS = {"value", "unit", "source", "mark"}


def _load(file_name: str) -> dict[str, Rule]:
    with open(DATA_DIR / file_name, "rb") as handle:
        raw = tomllib.load(handle)
    out: dict[str, Rule] = {}
    for group, entries in raw.items():
        for name, entry in entries.items():
            key = f"{group}.{name}"
            extra = {k: v for k, v in entry.items() if k not in _BASE_KEYS}
            out[key] = Rule(
                key, entry["value"], entry["unit"], entry["source"], entry["mark"], extra
            )
    return out


@cache
def enforcement_rules() -> dict[str, Rule]:
    return _load("enforcement.toml")


@cache
def penalty_rules() -> dict[str, Rule]:
    return _load("penalties.toml")


@cache
def accountability_rules() -> dict[str, Rule]:
    return _load("accountability.toml")


def rule_group(rules: dict[str, Rule], group: str) -> dict[str, Rule]:
    """The rules of one group keyed by their short name (``kinds.x`` → ``x``)."""
    prefix = f"{group}."
    return {k.removeprefix(prefix): v for k, v in rules.items() if k.startswith(prefix)}


def _get(rules: dict[str, Rule], file_name: str, name: str) -> Any:
    try:
        return rules[name].value
    except KeyError:
        raise KeyError(f"no rule {name!r} in schemas/data/{file_name}") from None


def setting(name: str) -> Any:
    """One value of ``enforcement.toml`` (e.g. ``cems.pollutants``)."""
    return _get(enforcement_rules(), "enforcement.toml", name)


def penalty_setting(name: str) -> Any:
    """One value of ``penalties.toml``."""
    return _get(penalty_rules(), "penalties.toml", name)


def accountability_setting(name: str) -> Any:
    """One value of ``accountability.toml``."""
    return _get(accountability_rules(), "accountability.toml", name)


@cache
def rsd_limits() -> tuple[dict[str, str], ...]:
    """Rows of ``rsd_limits.csv`` (kind, fuel_type, pollutant, bound, value, unit, source, mark)."""
    return tuple(read_table("rsd_limits.csv"))
