"""`lantian ingest`: serve the ingest API, maintain the device registry, inspect the landing.

    lantian ingest serve [--config ingest.toml] [--host H] [--port P] [--workers N]
    lantian ingest devices list|import FILE [--keys K]|export FILE [--keys K]
    lantian ingest devices add --device D --stream S [--owner KIND:ID|ID] [--family F]
    lantian ingest devices suspend|activate|retire --device D
    lantian ingest devices rotate --device D [--key-file F] [--grace SECONDS]
    lantian ingest landing list [--start ISO] [--end ISO] [--after-seq N] [--stream S]
    lantian ingest landing verify

Every command takes ``--config`` (default ``$LANTIAN_INGEST_CONFIG``, else the LANTIAN_HOME
defaults) and ``--db`` / ``--landing`` to override the database URL and the landing root.
Keys are never printed and never taken from the command line (``ps`` shows arguments): a key for
``rotate --key-file`` is read from a file.
"""

from __future__ import annotations

import argparse
import json
import logging.config
import os
import sys
from datetime import datetime
from pathlib import Path

from ingest.settings import ENV_CONFIG, ENV_SETTINGS, Settings, load_settings, settings_to_json


def register_device_key(
    db_url: str,
    device_id: str,
    key_hex: str,
    stream: str,
    *,
    family: str | None = None,
    owner_kind: str | None = None,
    owner_id: str = "",
) -> None:
    """Register (or re-key) an active device with a derived key, without the HTTP enrolment.

    For tests and the demo's simulated boxes: ``key_hex = schemas.signing.derive_key(secret,
    device_id)``.
    """
    from ingest.registry import Registry

    registry = Registry(db_url)
    if registry.get(device_id) is None:
        registry.add(device_id, stream, owner_kind=owner_kind, owner_id=owner_id, family=family)
    registry.set_key(device_id, key_hex, grace_s=0.0)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    return settings.with_overrides(
        db_url=args.db, landing_root=Path(args.landing) if args.landing else None
    )


def _log_config(level: str) -> dict:
    """JSON access lines go out as they are; uvicorn's own lines stay plain text."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(message)s"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "lantian.ingest": {"handlers": ["stdout"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stdout"], "level": level, "propagate": False},
        },
    }


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    # Worker processes (and the in-process server) rebuild exactly these settings.
    os.environ[ENV_SETTINGS] = settings_to_json(settings)
    from ingest.db import ensure_schema

    ensure_schema(settings.db_url)  # once, before workers race to create tables
    host, port = args.host or settings.host, args.port or settings.port
    workers = args.workers or settings.workers
    options = {
        "log_config": _log_config(settings.log_level),
        "access_log": False,  # the app writes its own JSON access line
        "date_header": False,  # the app sets Date itself (agents correct their clocks from it)
        "server_header": False,
        "timeout_graceful_shutdown": 30,
    }
    if workers > 1:
        # One SO_REUSEPORT socket per worker (see ingest/serve.py), not uvicorn's shared one.
        from ingest.serve import Supervisor

        return Supervisor("ingest.app:create_app_from_env", host, port, workers, options).run()
    uvicorn.run("ingest.app:create_app_from_env", factory=True, host=host, port=port, **options)
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from ingest.registry import Registry, RegistryError

    registry = Registry(_settings(args).db_url)
    try:
        if args.action == "list":
            for d in registry.all():
                enrolled = "enrolled" if d.enrolled else "not enrolled"
                pending = "\tenrolment pending" if d.enrolment_pending else ""
                print(
                    f"{d.device_id}\t{d.stream}\t{d.family}\t{d.owner_kind}:{d.owner_id}\t"
                    f"{d.state}\t{enrolled}{pending}"
                )
        elif args.action == "import":
            count = registry.import_csv(args.file, args.keys)
            print(f"imported {count} devices from {args.file}")
        elif args.action == "export":
            count = registry.export_csv(args.file, args.keys)
            keys = f" (keys: {args.keys}, mode 0600)" if args.keys else ""
            print(f"exported {count} devices to {args.file}{keys}")
        elif args.action == "add":
            kind, _, owner_id = (args.owner or "").rpartition(":")
            code = registry.add(args.device, args.stream, kind or None, owner_id, args.family)
            print(f"device {args.device} registered; one-time enrolment code (shown once):")
            print(code)
        elif args.action in ("suspend", "activate", "retire"):
            state = {"suspend": "suspended", "activate": "active", "retire": "retired"}[args.action]
            registry.set_state(args.device, state)
            print(f"device {args.device} is now {state}")
        elif args.action == "rotate":
            if args.key_file:
                key = Path(args.key_file).read_text(encoding="utf-8").strip()
                registry.set_key(args.device, key, grace_s=args.grace)
                print(f"device {args.device}: new key installed, old key valid {args.grace:g} s")
            else:
                code = registry.issue_code(args.device)
                print(
                    f"device {args.device}: one-time enrolment code (shown once); the current "
                    "key stays valid until the box re-enrols, then for the grace window:"
                )
                print(code)
    except (RegistryError, OSError) as exc:
        print(f"lantian ingest devices {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise SystemExit(f"lantian ingest landing: {text!r} needs a UTC offset (e.g. +08:00)")
    return moment


def cmd_landing(args: argparse.Namespace) -> int:
    from ingest.landing import LandingIndex

    settings = _settings(args)
    index = LandingIndex(settings.db_url, settings.landing_root)
    if args.action == "list":
        entries = index.batches(
            _instant(args.start), _instant(args.end), after_seq=args.after_seq, stream=args.stream
        )
        for e in entries:
            print(
                f"{e.seq}\t{e.batch_id}\t{e.device_id}\t{e.stream}\t{e.n_readings}\t"
                f"{e.first_data_time.isoformat()}\t{e.last_data_time.isoformat()}\t{e.path}"
            )
        return 0
    report = index.verify()
    for kind in ("tampered", "missing", "unindexed", "temporaries"):
        for path in getattr(report, kind):
            print(f"{kind}\t{path}")
    print(
        json.dumps(
            {
                "checked": report.checked,
                "tampered": len(report.tampered),
                "missing": len(report.missing),
                "unindexed": len(report.unindexed),
                "temporaries": len(report.temporaries),
                "ok": report.ok,
            }
        )
    )
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help=f"ingest.toml (default ${ENV_CONFIG})")
    common.add_argument("--db", help="database URL (sqlite:///… or postgresql://…)")
    common.add_argument("--landing", help="landing root directory")

    parser = argparse.ArgumentParser(prog="lantian ingest", description=__doc__.split("\n")[0])
    groups = parser.add_subparsers(dest="group", required=True)

    serve = groups.add_parser("serve", parents=[common], help="run the HTTP service (uvicorn)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    devices = groups.add_parser("devices", help="the device registry")
    actions = devices.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common])
    for name in ("import", "export"):
        sub = actions.add_parser(name, parents=[common], help=f"{name} the registry CSV")
        sub.add_argument("file")
        sub.add_argument("--keys", help="separate keys file (mode 0600)")
    add = actions.add_parser("add", parents=[common], help="register a device; prints its code")
    add.add_argument("--device", required=True)
    add.add_argument("--stream", required=True)
    add.add_argument(
        "--owner", help="KIND:ID (enterprise|stack|station|gas_station|rsd_unit) or ID"
    )
    add.add_argument("--family")
    for name in ("suspend", "activate", "retire"):
        actions.add_parser(name, parents=[common]).add_argument("--device", required=True)
    rotate = actions.add_parser("rotate", parents=[common], help="issue a re-enrolment code")
    rotate.add_argument("--device", required=True)
    rotate.add_argument("--key-file", help="install this derived key (hex) directly instead")
    rotate.add_argument("--grace", type=float, default=86_400.0, help="old key valid (s)")
    devices.set_defaults(func=cmd_devices)

    landing = groups.add_parser("landing", help="the landing area")
    landing_actions = landing.add_subparsers(dest="action", required=True)
    listing = landing_actions.add_parser("list", parents=[common])
    listing.add_argument("--start")
    listing.add_argument("--end")
    listing.add_argument("--after-seq", type=int)
    listing.add_argument("--stream")
    landing_actions.add_parser("verify", parents=[common], help="re-hash every landed file")
    landing.set_defaults(func=cmd_landing)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return int(args.func(args))


if __name__ == "__main__":
    logging.basicConfig()
    sys.exit(main())
