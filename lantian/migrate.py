"""Warehouse migrations from Python and from the command line, the same in both modes.

    python -m lantian.migrate upgrade [--url URL]     # to the newest revision
    python -m lantian.migrate current [--url URL]     # print the revision
    python -m lantian.migrate check   [--url URL]     # exit 1 if the database differs from the code
    python -m lantian.migrate revision -m "add refuellings"   # draft the next revision

``--url`` defaults to ``LANTIAN_WAREHOUSE_URL`` (else the embedded SQLite under ``LANTIAN_HOME``).
The work is done in ``enforcement.migrations`` so that ``enforcement.warehouse`` can call it
without importing this package.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lantian import settings

if TYPE_CHECKING:
    import sqlalchemy as sa


def upgrade(url: str | sa.Engine, revision: str = "head") -> str:
    """Migrate the warehouse at ``url`` (SQLite or PostgreSQL URL, or an engine) to ``revision``;
    return the revision it is at. Safe to call from many processes at once on PostgreSQL."""
    from enforcement.migrations import upgrade as _upgrade

    return _upgrade(url, revision)


def current(url: str | sa.Engine) -> str | None:
    from enforcement.migrations import current as _current

    return _current(url)


def check(url: str | sa.Engine) -> list[Any]:
    """Differences between the database and ``enforcement.warehouse_schema.METADATA``."""
    from enforcement.migrations import check as _check

    return _check(url)


def next_revision_id(existing: list[str]) -> str:
    """``["0001", "0002"]`` → ``"0003"``: ids stay sequential and sort by age."""
    numbers = [int(rev) for rev in existing if re.fullmatch(r"\d{4}", rev)]
    return f"{max(numbers, default=0) + 1:04d}"


def draft_revision(message: str, *, version_path: Path | None = None) -> Path:
    """Write the next revision with autogenerate, diffing METADATA against a scratch database
    at head. Review it before committing: autogenerate misses renames and data moves.

    ``version_path`` writes the file elsewhere than ``enforcement/migrations/versions`` (tests).
    """
    import sqlalchemy as sa
    from alembic import command
    from alembic.script import ScriptDirectory

    from enforcement.migrations import MIGRATIONS_DIR, alembic_config

    config = alembic_config()
    if version_path:
        # Alembic only writes into a folder it knows: list it beside the real one.
        versions = MIGRATIONS_DIR / "versions"
        config.set_main_option("version_locations", f"{versions}{os.pathsep}{version_path}")
        config.set_main_option("path_separator", "os")
    script = ScriptDirectory.from_config(config)
    rev_id = next_revision_id([s.revision for s in script.walk_revisions()])
    with tempfile.TemporaryDirectory(prefix="lantian-migrate-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'head.sqlite'}"
        upgrade(url)
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                made = command.revision(
                    config,
                    message=message,
                    autogenerate=True,
                    rev_id=rev_id,
                    version_path=str(version_path) if version_path else None,
                )
        finally:
            engine.dispose()
    scripts = made if isinstance(made, list) else [made]
    path = Path(scripts[0].path)
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():  # autogenerate's layout is not the project's; the review diff should be
        subprocess.run([str(ruff), "format", "-q", str(path)], check=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lantian migrate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("upgrade", "current", "check"):
        one = sub.add_parser(name)
        one.add_argument("--url", help="warehouse URL (default $LANTIAN_WAREHOUSE_URL)")
    revision = sub.add_parser("revision", help="draft the next revision from warehouse_schema.py")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)

    if args.action == "revision":
        print(draft_revision(args.message))
        return 0
    url = args.url or settings.warehouse_url()
    if args.action == "upgrade":
        print(f"warehouse at revision {upgrade(url)}")
    elif args.action == "current":
        print(current(url) or "(not migrated)")
    else:
        diffs = check(url)
        from enforcement.migrations import describe

        for diff in diffs:
            print(describe(diff))
        print("warehouse matches the schema" if not diffs else f"{len(diffs)} differences")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
