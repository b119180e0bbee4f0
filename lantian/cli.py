"""`lantian`: one command for the central side.

Each subcommand lives in the package that owns it and is imported only when called, so that
`lantian hj212 decode` starts fast and a missing server dependency is reported clearly.
"""

from __future__ import annotations

import importlib
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("lantian.demo", "run the whole path on simulated devices and write the report"),
    "hj212": ("agents.hj212.cli", "HJ 212 tools: decode frames (one per line) to JSON"),
    "simulate": ("agents.simulate.cli", "device simulators: write frames to a serial port or file"),
    "ingest": ("ingest.cli", "the ingest service: serve, devices (registry), landing"),
    "aqi": ("enforcement.aqi_cli", "compute AQI for a CSV of concentrations"),
    "report": ("reports.cli", "write the monthly bureau report"),
    "watch": (
        "lantian.watch",
        "health checks: silent devices and subdistricts, backlogs, data quality",
    ),
    "warehouse": ("lantian.migrate", "warehouse schema: upgrade, current, check, revision"),
}


def usage() -> str:
    lines = ["usage: lantian <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"lantian: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name = SUBCOMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(
            f"lantian {name}: cannot import {exc.name!r}. The central side needs the server "
            "dependencies: run `make` targets or `pip install -r requirements/server.lock`.",
            file=sys.stderr,
        )
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
