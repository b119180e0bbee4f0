"""``lantian simulate``: the simulated district from the command line.

    lantian simulate registry --out DIR [--truth]        registry CSVs (and truth.json)
    lantian simulate devices                             the simulated devices and their roles
    lantian simulate frames --out FILE [--device MN] [--wire]
                                                         frames, one per line, in time order
    lantian simulate truth --out FILE                    what was planted and must be found
    lantian simulate pty --device MN [--speed N] [--wire] [--exit-when-done]
                                                         serve one device on a pseudo-terminal

Common options: --seed (2017), --start (2017-12-01), --days (3), --scale (tiny|month|demo|district).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from agents.simulate.registry import SCALES


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=2017, help="scenario seed (default 2017)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2017, 12, 1))
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lantian simulate", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    registry = sub.add_parser("registry", help="write the registry CSV files")
    registry.add_argument("--out", type=Path, required=True, help="folder to write into")
    registry.add_argument("--truth", action="store_true", help="also write truth.json there")
    _common(registry)
    devices = sub.add_parser("devices", help="list the simulated devices")
    _common(devices)
    frames = sub.add_parser("frames", help="write frames to a file, one per line")
    frames.add_argument("--out", type=Path, required=True, help="file to write ('-' for stdout)")
    frames.add_argument("--device", action="append", default=[], help="only this MN (repeatable)")
    frames.add_argument(
        "--wire", action="store_true", help="the line's bytes: noise, damaged and resent frames"
    )
    _common(frames)
    truth = sub.add_parser("truth", help="write what was planted and must be found (JSON)")
    truth.add_argument("--out", type=Path, required=True, help="file to write ('-' for stdout)")
    _common(truth)
    pty = sub.add_parser("pty", help="serve one device on a pseudo-terminal")
    pty.add_argument("--device", required=True, help="the device's MN")
    pty.add_argument("--speed", type=float, default=None, help="N x real time (default: fast)")
    pty.add_argument("--wire", action="store_true", help="with the line's noise")
    pty.add_argument("--exit-when-done", action="store_true", help="stop after the last frame")
    _common(pty)
    return parser


def _scenario(args: argparse.Namespace):
    from agents.simulate.scenario import build_scenario

    return build_scenario(seed=args.seed, start=args.start, days=args.days, scale=args.scale)


def _open_out(target: Path):
    if str(target) == "-":
        return sys.stdout.buffer, False
    target.parent.mkdir(parents=True, exist_ok=True)
    return open(target, "wb"), True


def _cmd_registry(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    paths = scenario.write_registry(args.out)
    if args.truth:
        path = args.out / "truth.json"
        path.write_text(json.dumps(scenario.truth.to_dict(), ensure_ascii=False, indent=1) + "\n")
        paths.append(path)
    for path in paths:
        print(path)
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    for device_id, device in scenario.devices.items():
        roles = ",".join(sorted(device.roles)) or "-"
        print(f"{device_id}\t{device.family}\t{device.owner_id}\t{device.spec.crc_mode}\t{roles}")
    return 0


def _cmd_frames(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    wanted = set(args.device)
    unknown = wanted - set(scenario.devices)
    if unknown:
        print(f"lantian simulate: no simulated device {sorted(unknown)}", file=sys.stderr)
        return 2
    handle, close = _open_out(args.out)
    count = 0
    try:
        for _, device_id, data in scenario.all_frames(wire=args.wire):
            if wanted and device_id not in wanted:
                continue
            handle.write(data)
            count += 1
    finally:
        if close:
            handle.close()
    print(f"{count} {'chunks' if args.wire else 'frames'} written", file=sys.stderr)
    return 0


def _cmd_truth(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    handle, close = _open_out(args.out)
    try:
        text = json.dumps(scenario.truth.to_dict(), ensure_ascii=False, indent=1) + "\n"
        handle.write(text.encode("utf-8"))
    finally:
        if close:
            handle.close()
    return 0


def _cmd_pty(args: argparse.Namespace) -> int:
    from agents.simulate.pty import PtyDevice

    scenario = _scenario(args)
    if args.device not in scenario.devices:
        print(f"lantian simulate: no simulated device {args.device!r}", file=sys.stderr)
        return 2
    source = scenario.wire_frames(args.device) if args.wire else scenario.frames(args.device)
    config = scenario.device_config(args.device)
    with PtyDevice(source, speed=args.speed) as device:
        print(device.port, flush=True)
        print(
            f"serving {args.device} ({config['family']}, crc {config['crc_mode']}, "
            f"pw {config['pw']}) on {device.pts}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        try:
            while not device.wait(timeout=0.5):
                pass
            print(f"all frames written ({device.chunks_written})", file=sys.stderr, flush=True)
            if args.exit_when_done:
                device.drain(timeout=30.0)  # do not hang up on bytes the agent has not read
            while not args.exit_when_done:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lantian simulate``; returns the exit status."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.days < 1:
        print("lantian simulate: --days must be at least 1", file=sys.stderr)
        return 2
    handlers = {
        "registry": _cmd_registry,
        "devices": _cmd_devices,
        "frames": _cmd_frames,
        "truth": _cmd_truth,
        "pty": _cmd_pty,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
