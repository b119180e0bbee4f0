"""``lantian-agent``: the field box's command line.

    lantian-agent run     --config agent.toml            read ports, queue, upload (the service)
    lantian-agent enroll  --config agent.toml --device MN --code CODE
    lantian-agent status  --config agent.toml [--json]   queue, dead letters, last heartbeat
    lantian-agent doctor  --config agent.toml            check ports, clocks, server, enrolment
    lantian-agent requeue --config agent.toml BATCH_ID|--all   retry dead letters after a fix
    lantian-agent decode  [FILE]                         HJ 212 frames to JSON lines

Heavy modules are imported inside the subcommands so that ``decode`` starts fast on a Pi.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from agents.version import VERSION

PROG = "lantian-agent"
DEFAULT_CONFIG = "/etc/lantian-agent/agent.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Lantian field agent")
    parser.add_argument("--version", action="version", version=f"{PROG} {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--config",
            default=os.environ.get("LANTIAN_AGENT_CONFIG", DEFAULT_CONFIG),
            help=f"agent.toml (default $LANTIAN_AGENT_CONFIG or {DEFAULT_CONFIG})",
        )
        return p

    run = with_config("run", "read the ports, queue durably, upload (what the service runs)")
    run.add_argument("--log-level", help="override [box] log_level")
    enroll = with_config("enroll", "create this device's key and register it with the server")
    enroll.add_argument("--device", required=True, help="the device's MN")
    enroll.add_argument("--code", required=True, help="the one-time enrolment code from the bureau")
    enroll.add_argument("--force", action="store_true", help="replace an existing key (rotation)")
    status = with_config("status", "queue depth, oldest unsent, dead letters, last heartbeat")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    doctor = with_config("doctor", "check ports, CRC mode, units, clocks, server and enrolment")
    doctor.add_argument("--listen", type=float, default=5.0, help="seconds to listen per port")
    doctor.add_argument("--skip-ports", action="store_true", help="only the box and server checks")
    requeue = with_config("requeue", "put dead-letter batches back in the queue after a fix")
    requeue.add_argument("batch_id", nargs="?", help="the dead letter's batch id")
    requeue.add_argument("--all", action="store_true", help="every dead letter")
    sub.add_parser(
        "decode", help="decode HJ 212 frames (one per line) to JSON lines", add_help=False
    )
    return parser


def _setup_logging(level: str) -> None:
    # Under systemd the journal stamps each line; elsewhere add the time ourselves.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=getattr(logging, level, logging.INFO), format=fmt, stream=sys.stderr)


def _load(path: str):
    from agents.config import load_config

    return load_config(path)


def cmd_run(args: argparse.Namespace) -> int:
    from agents.runner import Runner

    cfg = _load(args.config)
    _setup_logging((args.log_level or cfg.box.log_level).upper())
    try:
        runner = Runner(cfg)
    except ImportError as exc:
        print(f"{PROG} run: cannot load a device decoder: {exc}", file=sys.stderr)
        return 2
    return runner.run_forever()


def cmd_enroll(args: argparse.Namespace) -> int:
    from agents.config import key_path, write_key
    from agents.uplink import Uplink
    from schemas.signing import derive_key, new_secret

    cfg = _load(args.config)
    device = args.device
    if device not in cfg.devices:
        print(
            f"{PROG} enroll: device {device} is not in {cfg.source}; add its [[device]] first "
            f"(configured: {', '.join(cfg.devices) or 'none'})",
            file=sys.stderr,
        )
        return 2
    final = key_path(cfg.box.data_dir, device)
    if final.exists() and not args.force:
        print(
            f"{PROG} enroll: {device} is already enrolled ({final}); use --force with a new code "
            "to replace its key",
            file=sys.stderr,
        )
        return 2
    # The secret exists only in this process: the key derived from it is all anyone keeps.
    key = derive_key(new_secret(), device)
    uplink = Uplink(cfg.box.server, {}, timeout=(10.0, 30.0), agent_version=VERSION)
    result = uplink.enroll(device, args.code, key)
    if not result.delivered:
        where = f"HTTP {result.status}" if result.status else "no answer"
        print(
            f"{PROG} enroll: the server refused enrolment of {device} ({where}): {result.detail}",
            file=sys.stderr,
        )
        if result.status == 401:
            print(
                "  the code is wrong, used or expired: ask the bureau for a new one",
                file=sys.stderr,
            )
        return 1
    path = write_key(cfg.box.data_dir, device, key)
    print(
        f"enrolled {device}; key stored in {path} (mode 600). A running agent uses it within a minute."
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from agents.heartbeat import read_state
    from agents.queue import DurableQueue

    cfg = _load(args.config)
    if not cfg.queue_path.exists():
        print(f"no queue yet at {cfg.queue_path} (the agent has not run)")
        return 0
    with DurableQueue(
        cfg.queue_path, cfg.box.queue_max_bytes, alarm_ratio=cfg.box.queue_alarm_ratio
    ) as queue:
        report = {
            "queue": queue.summary(),
            "per_device": {d: queue.depth(d) for d in cfg.devices},
            "pending_batches": [vars(b) for b in queue.pending_batches()],
            "dead_letters": [vars(d) for d in queue.dead_letters()],
            "alarms": queue.alarms(),
        }
    state = read_state(cfg.state_path)
    report["agent"] = state
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1, default=str))
        return 0
    q = report["queue"]
    print(f"box {cfg.box.id}  server {cfg.box.server}")
    print(
        f"queue: {q['queue_depth']} readings waiting, {q['queue_bytes']} of {q['queue_max_bytes']} "
        f"bytes ({q['queue_bytes'] / q['queue_max_bytes']:.0%}), oldest unsent {q['oldest_unsent'] or '-'}"
    )
    for device, depth in report["per_device"].items():
        print(f"  {device}: {depth}")
    for batch in report["pending_batches"]:
        print(
            f"  batch {batch['batch_id']} ({batch['device_id']}, {batch['n']} readings, {batch['lane']}): "
            f"{batch['attempts']} failed attempts; last: {batch['last_error'] or '-'}"
        )
    print(f"dead letters: {len(report['dead_letters'])}")
    for dead in report["dead_letters"]:
        print(
            f"  {dead['batch_id']} {dead['device_id']} {dead['n']} readings at {dead['moved_at']}: {dead['reason']}"
        )
    if q["dropped_realtime"]:
        print(f"dropped by the overflow policy: {q['dropped_realtime']} real-time readings")
    if state:
        running = "running" if state.get("running", True) else "stopped"
        print(f"agent state at {state.get('at')} (pid {state.get('pid')}, {running}):")
        for name, port in (state.get("ports") or {}).items():
            print(
                f"  port {name}: {'open' if port.get('open') else 'CLOSED'}, last frame "
                f"{port.get('last_frame_at') or 'never'}, {port.get('frames', 0)} frames"
                + (f", error: {port['last_error']}" if port.get("last_error") else "")
            )
        for device, beat in (state.get("last_heartbeat") or {}).items():
            print(
                f"  heartbeat {device}: {beat.get('at')} {'ok' if beat.get('ok') else beat.get('detail')}"
            )
        alarms = state.get("alarms") or []
    else:
        print("agent state: none yet (is the agent running?)")
        alarms = report["alarms"]
    for alarm in alarms:
        print(f"ALARM: {alarm}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from agents.doctor import run_doctor

    cfg = _load(args.config)
    return run_doctor(cfg, listen_s=args.listen, skip_ports=args.skip_ports)


def cmd_requeue(args: argparse.Namespace) -> int:
    from agents.queue import DurableQueue

    cfg = _load(args.config)
    if not args.batch_id and not args.all:
        print(f"{PROG} requeue: give a batch id or --all", file=sys.stderr)
        return 2
    with DurableQueue(cfg.queue_path, cfg.box.queue_max_bytes, ballast_bytes=0) as queue:
        targets = [d.batch_id for d in queue.dead_letters()] if args.all else [args.batch_id]
        for batch_id in targets:
            try:
                added = queue.requeue_dead(batch_id)
            except KeyError as exc:
                print(f"{PROG} requeue: {exc.args[0]}", file=sys.stderr)
                return 1
            print(f"requeued {batch_id}: {added} readings back in the queue")
    return 0


COMMANDS = {
    "run": cmd_run,
    "enroll": cmd_enroll,
    "status": cmd_status,
    "doctor": cmd_doctor,
    "requeue": cmd_requeue,
}


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "decode":
        from agents.hj212.cli import main as hj212_main

        return hj212_main(args_list, prog=PROG)
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0)
    from agents.config import ConfigError

    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"{PROG} {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
