"""`lantian demo`: the whole path on simulated devices, on the embedded default.

simulated data loggers ──pty──▶ lantian-agent ──HTTP──▶ lantian ingest serve ──▶ landing
   ──▶ Airflow (dags test, SQLite): lantian_daily per day ──▶ lantian_monthly_report ──▶ report

Every piece runs as it would in the field: the loggers write HJ 212 frames into pseudo-terminals,
the agent reads them through pyserial as a separate process, the ingest service is a real uvicorn
process, and the DAGs run through Airflow. The run is deterministic from its seed, so what it finds
can be compared with what the simulator planted (``scenario.truth``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from schemas.reading import BEIJING

MARKER = ".lantian-demo"


@dataclass
class DemoSummary:
    home: str
    seed: int
    scale: str
    days: list[str]
    readings_expected: int = 0
    readings_landed: int = 0
    readings_validated: int = 0
    readings_quarantined: int = 0
    exceedances_planted: list[dict[str, Any]] = field(default_factory=list)
    exceedances_found: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, str] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def exceedances_match(self) -> bool:
        return _exceedance_keys(self.exceedances_planted) == _exceedance_keys(
            self.exceedances_found
        )


def _exceedance_keys(rows: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(r["stack_id"], r["pollutant"], r["hour_start"]) for r in rows}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def prepare_home(home: Path) -> Path:
    """A fresh demo folder; refuse to wipe a folder that is not a previous demo's."""
    home = home.resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise SystemExit(
                f"lantian demo: {home} exists and is not a demo folder; choose another"
            )
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / MARKER).write_text("created by lantian demo; safe to delete\n")
    return home


def enrol_devices(scenario: Any, db_url: str, agent_dir: Path) -> None:
    """Give each simulated device a secret, register its key, and store it on the box."""
    from agents.config import write_key
    from ingest.cli import register_device_key
    from schemas.signing import derive_key, new_secret

    for device_id in scenario.device_ids():
        config = scenario.device_config(device_id)
        key = derive_key(new_secret(), device_id)
        register_device_key(
            db_url,
            device_id,
            key,
            config["stream"],
            family=config["family"],
            owner_id=scenario.devices[device_id].owner_id,
        )
        write_key(agent_dir, device_id, key)


def agent_config(scenario: Any, ports: dict[str, str], server: str, agent_dir: Path) -> str:
    """agent.toml for one box reading every simulated device, one pty each."""
    lines = [
        "[box]",
        'id = "demo-box"',
        f'data_dir = "{agent_dir}"',
        f'server = "{server}"',
        "backlog_rate = 1000000",
        "batch_max_readings = 2000",
        "heartbeat_interval_s = 5",
        "replay = true",
        'log_level = "WARNING"',
        "",
    ]
    for device_id, port in ports.items():
        config = scenario.device_config(device_id)
        lines += [
            "[[port]]",
            f'name = "{device_id}"',
            f'path = "{port}"',
            "baud = 115200",
            f'family = "{config["family"]}"',
            f'crc_mode = "{config["crc_mode"]}"',
            f'devices = ["{device_id}"]',
            "",
        ]
    for device_id in ports:
        config = scenario.device_config(device_id)
        units = ", ".join(f'{code} = "{unit}"' for code, unit in sorted(config["units"].items()))
        lines += [
            "[[device]]",
            f'mn = "{device_id}"',
            f'family = "{config["family"]}"',
            f'pw = "{config["pw"]}"',
            f"units = {{ {units} }}",
            "",
        ]
    return "\n".join(lines)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _stop(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def landed_reading_ids(db_url: str, root: Path) -> set[str]:
    from ingest.landing import LandingIndex

    index = LandingIndex(db_url, root)
    ids: set[str] = set()
    for _entry, batch in index.iter_batches():
        ids.update(r["id"] for r in batch["readings"])
    return ids


def _count_landed(db_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT COALESCE(SUM(n_readings), 0) FROM landed_batches")
                ).scalar()
            )
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def _bureau_inputs(registry_dir: Path, scenario: Any, month: str, seed: int) -> str:
    """The bureau's own inputs (case events, fuel samples, findings) beside the registry files."""
    from lantian.direct_load import load_bureau_inputs

    try:
        load_bureau_inputs(registry_dir, scenario, month, seed)
    except ValueError as exc:
        return f"bureau inputs not simulated at this scale ({exc})"
    return "bureau inputs (cases, samples, findings) simulated"


def run_demo(
    home: Path,
    *,
    seed: int = 2017,
    start: date = date(2017, 12, 1),
    days: int = 3,
    scale: str = "demo",
    progress: Callable[[str], None] = print,
    field_timeout_s: float = 900.0,
) -> DemoSummary:
    """Run the whole path once; return what was emitted, landed, validated and found."""
    from agents.simulate.pty import PtyDevice
    from agents.simulate.scenario import build_scenario

    clock = time.monotonic()
    home = prepare_home(Path(home))
    os.environ["LANTIAN_HOME"] = str(home)
    from lantian import settings

    scenario = build_scenario(seed=seed, start=start, days=days, scale=scale)
    registry_dir = settings.registry_dir()
    scenario.write_registry(registry_dir)
    day_names = [d.isoformat() for d in scenario.day_list()]
    bureau_note = _bureau_inputs(registry_dir, scenario, day_names[0][:7], seed)
    summary = DemoSummary(home=str(home), seed=seed, scale=scale, days=day_names)
    devices = scenario.device_ids()
    expected: set[str] = set()
    for device_id in devices:
        expected |= scenario.expected_readings(device_id)
    summary.readings_expected = len(expected)
    progress(
        f"[1/4] simulated district: {len(devices)} devices, {len(day_names)} day(s) from "
        f"{day_names[0]}, {len(expected)} readings to deliver (seed {seed}, scale {scale}); "
        f"{bureau_note}"
    )

    db_url = settings.landing_index_url()
    landing_root = settings.landing_root()
    agent_dir = home / "agent"
    env = dict(os.environ, LANTIAN_HOME=str(home), PYTHONUNBUFFERED="1")
    ingest_proc = agent_proc = None
    ptys: list[PtyDevice] = []
    try:
        port = free_port()
        server = f"http://127.0.0.1:{port}"
        ingest_log = open(home / "ingest.log", "w")  # noqa: SIM115 - closed with the process
        ingest_proc = subprocess.Popen(
            [_bin("lantian"), "ingest", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=ingest_log,
            stderr=subprocess.STDOUT,
        )
        _wait_http(f"{server}/readyz", 60, ingest_proc)
        enrol_devices(scenario, db_url, agent_dir)
        pty_ports = {}
        for device_id in devices:
            pty = PtyDevice(scenario.wire_frames(device_id), name=f"tty-{device_id[-6:]}")
            ptys.append(pty)
            pty_ports[device_id] = pty.port
        config_path = home / "agent.toml"
        config_path.write_text(agent_config(scenario, pty_ports, server, agent_dir))
        agent_log = open(home / "agent.log", "w")  # noqa: SIM115 - closed with the process
        agent_proc = subprocess.Popen(
            [_bin("lantian-agent"), "run", "--config", str(config_path)],
            env=env,
            stdout=agent_log,
            stderr=subprocess.STDOUT,
        )
        progress(f"[2/4] ingest on {server}; agent reading {len(ptys)} serial ports (ptys)")
        deadline = time.monotonic() + field_timeout_s
        last = -1
        while time.monotonic() < deadline:
            if agent_proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent_proc.returncode}; see agent.log")
            landed = _count_landed(db_url)
            written = sum(p.bytes_written for p in ptys)
            done = sum(p.done.is_set() for p in ptys)
            if landed != last:
                progress(
                    f"      serial: {written / 1e6:6.1f} MB written, {done}/{len(ptys)} devices "
                    f"finished; landed {landed} readings"
                )
                last = landed
            if done == len(ptys) and landed >= len(expected):
                break
            time.sleep(2.0)
        _stop(agent_proc)
        _stop(ingest_proc)
    finally:
        for pty in ptys:
            pty.close()
        _stop(agent_proc)
        _stop(ingest_proc)
    landed_ids = landed_reading_ids(db_url, landing_root)
    summary.readings_landed = len(landed_ids)
    summary.timings_s["field"] = round(time.monotonic() - clock, 1)
    if landed_ids != expected:
        missing = len(expected - landed_ids)
        extra = len(landed_ids - expected)
        progress(
            f"      !! landed set differs from the simulator's: {missing} missing, {extra} extra"
        )

    from lantian.airflow_local import airflow_env, run_dag

    airflow = airflow_env(home / "airflow")
    for number, day in enumerate(day_names, 1):
        progress(f"[3/4] Airflow lantian_daily {day} ({number}/{len(day_names)})")
        run_dag("lantian_daily", {"day": day}, env=airflow, progress=progress)
    summary.timings_s["daily"] = round(time.monotonic() - clock - summary.timings_s["field"], 1)
    month = day_names[0][:7]
    progress(f"[4/4] Airflow lantian_monthly_report {month}")
    run_dag("lantian_monthly_report", {"month": month}, env=airflow, progress=progress)
    summary.timings_s["total"] = round(time.monotonic() - clock, 1)
    _fill_results(summary, scenario, month)
    return summary


def _fill_results(summary: DemoSummary, scenario: Any, month: str) -> None:
    from lantian import settings
    from lantian.pipeline import warehouse

    wh = warehouse()
    ids: set[str] = set()
    for table in ("measurements", "refuellings", "tank_pressure", "rsd_passes"):
        if table in wh.engine.dialect.get_table_names(wh.engine.connect()):
            frame = wh.read(table, month=month)
            ids |= set(frame["reading_id"]) if len(frame) else set()
    summary.readings_validated = len(ids)
    quarantine = wh.read("quarantine", month=month)
    summary.readings_quarantined = quarantine["reading_id"].nunique() if len(quarantine) else 0
    found = wh.read("exceedances", month=month)
    summary.exceedances_found = [
        {
            "stack_id": r.stack_id,
            "pollutant": r.pollutant,
            "hour_start": r.hour_start.isoformat(),
            "hourly_mean": round(float(r.hourly_mean), 3),
            "limit": float(r.limit_value),
            "n_readings": int(r.n_readings),
        }
        for r in found.sort_values(["hour_start", "stack_id", "pollutant"]).itertuples()
    ]
    summary.exceedances_planted = [
        {
            "stack_id": e["stack_id"],
            "pollutant": e["pollutant"],
            "hour_start": _utc_iso(e["hour_start"]),
        }
        for e in scenario.truth.exceedances
    ]
    report_dir = settings.out_dir() / "reports" / month
    summary.report = {p.suffix.lstrip("."): str(p) for p in sorted(report_dir.glob("*.*"))}


def _utc_iso(text: str) -> str:
    from datetime import UTC, datetime

    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


def print_summary(summary: DemoSummary) -> None:
    print()
    print("Lantian demo — what happened")
    print(f"  folder:               {summary.home}")
    print(f"  days:                 {', '.join(summary.days)} (seed {summary.seed})")
    print(f"  readings to deliver:  {summary.readings_expected}")
    print(f"  readings landed:      {summary.readings_landed}")
    print(f"  readings validated:   {summary.readings_validated}")
    print(f"  readings quarantined: {summary.readings_quarantined}")
    print(
        f"  exceedances:          {len(summary.exceedances_found)} found, "
        f"{len(summary.exceedances_planted)} planted — "
        + ("exactly the planted hours" if summary.exceedances_match else "MISMATCH")
    )
    for row in summary.exceedances_found[:10]:
        hour = datetime.fromisoformat(row["hour_start"]).astimezone(BEIJING)
        print(
            f"    {hour:%Y-%m-%d %H:00} (Beijing) {row['stack_id']} {row['pollutant']}: "
            f"{row['hourly_mean']} > {row['limit']} mg/m3 ({row['n_readings']} readings)"
        )
    if summary.report:
        print("  report:")
        for kind, path in summary.report.items():
            print(f"    {kind:5} {path}")
    print(f"  time: {summary.timings_s}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lantian demo", description=__doc__.splitlines()[0])
    parser.add_argument("--home", default="var/demo", help="demo folder (wiped on each run)")
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--days", type=int, default=2, help="days of December 2017 (default 2)")
    parser.add_argument("--month", action="store_true", help="the whole month (31 days)")
    parser.add_argument("--scale", default="demo", choices=["tiny", "demo", "district"])
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    # SIGTERM must unwind like Ctrl-C so that the ingest and agent processes are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    days = 31 if args.month else args.days
    summary = run_demo(Path(args.home), seed=args.seed, days=days, scale=args.scale)
    if args.json:
        print(json.dumps(asdict(summary), ensure_ascii=False, indent=2))
    else:
        print_summary(summary)
    ok = summary.readings_landed == summary.readings_expected and summary.exceedances_match
    return 0 if ok else 1
