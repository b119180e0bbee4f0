"""Loader for ``schemas/data/pipeline.toml``: the pipeline wiring's own settings (stdlib only)."""

from __future__ import annotations

import tomllib
from functools import cache
from typing import Any

from schemas.rules import DATA_DIR


@cache
def _settings() -> dict[str, dict[str, Any]]:
    with open(DATA_DIR / "pipeline.toml", "rb") as handle:
        raw = tomllib.load(handle)
    return {
        f"{group}.{name}": entry
        for group, entries in raw.items()
        for name, entry in entries.items()
    }


def pipeline_setting(name: str) -> Any:
    """One value of ``pipeline.toml`` (e.g. ``suspicions.window_days``)."""
    try:
        return _settings()[name]["value"]
    except KeyError:
        raise KeyError(f"no setting {name!r} in schemas/data/pipeline.toml") from None
