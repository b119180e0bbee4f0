"""Loader for ``schemas/data/operations.toml``: when the watch notifies, and how (stdlib only)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from typing import Any

from schemas.rules import DATA_DIR, Threshold

STREAMS = ("cems", "ambient", "vapor", "rsd")


@cache
def operations_settings() -> dict[str, Threshold]:
    """Every entry of operations.toml, keyed ``group.name`` (e.g. ``backlog.oldest_unsent_hours``)."""
    with open(DATA_DIR / "operations.toml", "rb") as handle:
        raw = tomllib.load(handle)
    return {
        f"{group}.{name}": Threshold(
            f"{group}.{name}", entry["value"], entry["unit"], entry["source"], entry["mark"]
        )
        for group, entries in raw.items()
        for name, entry in entries.items()
    }


def operations_setting(name: str) -> Any:
    try:
        return operations_settings()[name].value
    except KeyError:
        raise KeyError(f"no setting {name!r} in schemas/data/operations.toml") from None


@dataclass(frozen=True)
class WatchThresholds:
    """The numbers the checks of ``lantian.watch`` compare against, in one object to pass around."""

    silence_hours: dict[str, float]
    silence_lookback_hours: float
    rising_heartbeats: int
    oldest_unsent_hours: float
    min_disk_free_bytes: int
    heartbeat_silent_hours: float
    heartbeat_lookback_hours: float
    quality_lookback_days: int
    quarantine_share_warn: float
    share_min_rows: int
    late_lookback_days: int


def watch_thresholds() -> WatchThresholds:
    s = operations_setting
    return WatchThresholds(
        silence_hours={stream: float(s(f"silence.hours_{stream}")) for stream in STREAMS},
        silence_lookback_hours=float(s("silence.lookback_hours")),
        rising_heartbeats=int(s("backlog.rising_heartbeats")),
        oldest_unsent_hours=float(s("backlog.oldest_unsent_hours")),
        min_disk_free_bytes=int(s("backlog.min_disk_free_bytes")),
        heartbeat_silent_hours=float(s("backlog.heartbeat_silent_hours")),
        heartbeat_lookback_hours=float(s("backlog.heartbeat_lookback_hours")),
        quality_lookback_days=int(s("quality.lookback_days")),
        quarantine_share_warn=float(s("quality.quarantine_share_warn")),
        share_min_rows=int(s("quality.share_min_rows")),
        late_lookback_days=int(s("late.lookback_days")),
    )
