"""Settings of the ingest service, from ``ingest.toml`` (see ``infra/ingest/ingest.toml``).

Paths default from ``LANTIAN_HOME`` (``./var``) as docs/ARCHITECTURE.md fixes them:
``<home>/landing/`` and ``<home>/landing-index.sqlite``; ``LANTIAN_LANDING_DIR`` and
``LANTIAN_LANDING_INDEX_URL`` override them (a shared volume and a PostgreSQL URL in the
distributed mode). Values in the file win over all of these.

The numbers here are operational settings of the service (windows, sizes, rates), not rules of
the campaign; the timestamp plausibility bounds are data in ``schemas/data/ingest_plausibility.toml``.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from schemas.rules import DATA_DIR

ENV_CONFIG = "LANTIAN_INGEST_CONFIG"
#: Effective settings as JSON, set by ``lantian ingest serve`` for its worker processes.
ENV_SETTINGS = "LANTIAN_INGEST_SETTINGS"


def lantian_home() -> Path:
    return Path(os.environ.get("LANTIAN_HOME", "var")).resolve()


# Same defaults and variables as lantian/settings.py (which ingest may not import).
def default_db_url() -> str:
    url = os.environ.get("LANTIAN_LANDING_INDEX_URL")
    return url or f"sqlite:///{lantian_home() / 'landing-index.sqlite'}"


def default_landing_root() -> Path:
    return Path(os.environ.get("LANTIAN_LANDING_DIR", lantian_home() / "landing")).resolve()


@dataclass(frozen=True)
class Plausibility:
    """Timestamp bounds a reading must satisfy to be landed."""

    max_future_min: float
    earliest_year: int


def load_plausibility(path: Path | None = None) -> Plausibility:
    with open(path or DATA_DIR / "ingest_plausibility.toml", "rb") as handle:
        raw = tomllib.load(handle)["ingest"]
    return Plausibility(
        max_future_min=float(raw["max_future_min"]["value"]),
        earliest_year=int(raw["earliest_year"]["value"]),
    )


@dataclass(frozen=True)
class Settings:
    db_url: str = field(default_factory=default_db_url)
    landing_root: Path = field(default_factory=default_landing_root)
    host: str = "127.0.0.1"
    port: int = 8212
    workers: int = 1
    #: A request's timestamp must be within this many seconds of the server's clock.
    timestamp_window_s: float = 300.0
    #: After a re-enrolment the previous key is still accepted this long.
    key_grace_s: float = 86_400.0
    #: Request body as sent (gzip); larger is refused with 413 before it is read.
    max_body_bytes: int = 8 * 1024 * 1024
    #: Body after gunzip (a gzip bomb stops here, also 413).
    max_inflated_bytes: int = 64 * 1024 * 1024
    #: Per-device token bucket, in requests: refill rate and bucket size. 0 disables.
    rate_per_s: float = 5.0
    rate_burst: int = 30
    #: How often (at most) a process deletes expired replay-cache rows.
    replay_purge_interval_s: float = 60.0
    log_level: str = "INFO"
    plausibility: Plausibility = field(default_factory=load_plausibility)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


#: ingest.toml section.key -> Settings field
_TOML_KEYS = {
    ("database", "url"): "db_url",
    ("landing", "root"): "landing_root",
    ("server", "host"): "host",
    ("server", "port"): "port",
    ("server", "workers"): "workers",
    ("server", "log_level"): "log_level",
    ("auth", "timestamp_window_s"): "timestamp_window_s",
    ("auth", "key_grace_s"): "key_grace_s",
    ("auth", "replay_purge_interval_s"): "replay_purge_interval_s",
    ("limits", "max_body_bytes"): "max_body_bytes",
    ("limits", "max_inflated_bytes"): "max_inflated_bytes",
    ("limits", "rate_per_s"): "rate_per_s",
    ("limits", "rate_burst"): "rate_burst",
}


def settings_from_dict(raw: dict[str, Any], base_dir: Path | None = None) -> Settings:
    """Settings from a parsed ``ingest.toml``; unknown keys are errors (typos must not pass)."""
    values: dict[str, Any] = {}
    for section, entries in raw.items():
        if not isinstance(entries, dict):
            raise ValueError(f"ingest.toml: [{section}] must be a table")
        for key, value in entries.items():
            name = _TOML_KEYS.get((section, key))
            if name is None:
                raise ValueError(f"ingest.toml: unknown setting [{section}] {key}")
            values[name] = value
    if "landing_root" in values:
        root = Path(values["landing_root"])
        values["landing_root"] = root if root.is_absolute() or base_dir is None else base_dir / root
    for name in ("port", "workers", "max_body_bytes", "max_inflated_bytes", "rate_burst"):
        if name in values:
            values[name] = int(values[name])
    for name in ("timestamp_window_s", "key_grace_s", "rate_per_s", "replay_purge_interval_s"):
        if name in values:
            values[name] = float(values[name])
    return Settings(**values)


def settings_to_json(settings: Settings) -> str:
    """The settings as the sections of ``ingest.toml``, in JSON (for worker processes)."""
    raw: dict[str, dict[str, Any]] = {}
    for (section, key), name in _TOML_KEYS.items():
        value = getattr(settings, name)
        raw.setdefault(section, {})[key] = str(value) if isinstance(value, Path) else value
    return json.dumps(raw)


def load_settings(path: Path | str | None = None) -> Settings:
    """Settings from a TOML file, else ``$LANTIAN_INGEST_SETTINGS`` (JSON), else
    ``$LANTIAN_INGEST_CONFIG`` (a TOML path), else the defaults."""
    if path is None and os.environ.get(ENV_SETTINGS):
        return settings_from_dict(json.loads(os.environ[ENV_SETTINGS]))
    path = path or os.environ.get(ENV_CONFIG)
    if not path:
        return Settings()
    path = Path(path)
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    return settings_from_dict(raw, base_dir=path.parent)
