"""Where the central side keeps its files and databases.

Everything hangs off ``LANTIAN_HOME`` (default ``./var`` under the current directory) so that the
embedded mode needs no server. The distributed mode points the databases at PostgreSQL with
``LANTIAN_WAREHOUSE_URL`` and ``LANTIAN_LANDING_INDEX_URL``; the landing folder becomes a shared volume.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The variables that point one place elsewhere than under ``LANTIAN_HOME``: a run meant to stay
#: inside a home of its own (a test, a benchmark) unsets them.
PLACE_OVERRIDES = (
    "LANTIAN_WAREHOUSE_URL",
    "LANTIAN_LANDING_INDEX_URL",
    "LANTIAN_LANDING_DIR",
    "LANTIAN_REGISTRY_DIR",
    "LANTIAN_OUT_DIR",
)


def home() -> Path:
    return Path(os.environ.get("LANTIAN_HOME", "var")).resolve()


def landing_root() -> Path:
    return Path(os.environ.get("LANTIAN_LANDING_DIR", home() / "landing")).resolve()


def landing_index_url() -> str:
    return os.environ.get(
        "LANTIAN_LANDING_INDEX_URL", f"sqlite:///{home() / 'landing-index.sqlite'}"
    )


def warehouse_url() -> str:
    return os.environ.get("LANTIAN_WAREHOUSE_URL", f"sqlite:///{home() / 'warehouse.sqlite'}")


def registry_dir() -> Path:
    """The bureau's registry CSV files (docs/ARCHITECTURE.md)."""
    return Path(os.environ.get("LANTIAN_REGISTRY_DIR", home() / "registry")).resolve()


def out_dir() -> Path:
    return Path(os.environ.get("LANTIAN_OUT_DIR", home() / "out")).resolve()
