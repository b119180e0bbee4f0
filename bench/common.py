"""What the benchmarks share: the row shape, the machine description, process measurements.

A benchmark module exposes ``run(...) -> list[dict]``; each dict is one *row*:
``{name, value, unit, baseline, ratio, target, met}`` where ``baseline`` is measured in the same
run on the same machine (so the ratio means something on a shared 2-core box) and ``met`` says
whether ``value`` reached ``target``. :func:`row` builds one; the runner (``python -m bench``)
adds ``benchmark`` and ``env`` to every row it writes to ``bench/results.json``.

The /proc readers are Linux-only, like the field box (a Raspberry Pi on Linux).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The project's interpreter when the virtualenv exists, else whatever runs the bench.
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").is_dir() else sys.executable

#: Keys every row must carry (results.json and the table rely on them).
ROW_KEYS = ("name", "value", "unit", "baseline", "ratio", "target", "met")


def ratio(value: float | None, baseline: float | None, digits: int = 3) -> float | None:
    """``value / baseline``, None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0:
        return None
    if not (math.isfinite(value) and math.isfinite(baseline)):
        return None
    return round(value / baseline, digits)


def row(
    name: str,
    value: float | None,
    unit: str,
    *,
    baseline: float | None,
    target: float | None,
    met: bool | None,
    digits: int = 1,
    baseline_note: str | None = None,
) -> dict[str, Any]:
    """One result row; ``ratio`` is computed from the unrounded figures. ``met`` is None only
    for a figure shown without a target."""
    return {
        "name": name,
        "value": None if value is None else round(value, digits),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, digits),
        "ratio": ratio(value, baseline),
        "target": target,
        "met": None if target is None else bool(met),
    } | ({"baseline_note": baseline_note} if baseline_note else {})


def check_row(item: Any) -> list[str]:
    """What is wrong with a row a module returned (empty when it is usable)."""
    if not isinstance(item, dict):
        return [f"row is a {type(item).__name__}, not a dict"]
    problems = [f"row lacks {key!r}" for key in ROW_KEYS if key not in item]
    met = item.get("met")
    # A figure reported without a target (a latency shown beside its baseline) has met None.
    if "met" in item and not (
        isinstance(met, bool) or (met is None and item.get("target") is None)
    ):
        problems.append(f"met is {met!r}, not true/false (null only for a row without target)")
    return problems


#: What results.json says of a row without a baseline that gives no reason of its own.
NO_BASELINE = "n/a: the benchmark measured no baseline for this row and gave no reason"


def normalise_row(item: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The row as results.json keeps it, and what had to be said about it.

    - ``met`` is None when there is no target (nothing to meet), true/false otherwise;
    - ``ratio`` is ``value / baseline`` when the module left it out but both are numbers;
    - a row without a baseline carries ``baseline_note``: the module's own reason (why no
      baseline is meaningful for that figure) or :data:`NO_BASELINE`, which is also reported.
    """
    out, notes = dict(item), []
    if out.get("target") is None and out.get("met") is not None:
        notes.append(f"{out.get('name')}: met={out['met']!r} without a target, stored as null")
        out["met"] = None
    numbers = all(
        isinstance(out.get(k), int | float) and not isinstance(out.get(k), bool)
        for k in ("value", "baseline")
    )
    if out.get("ratio") is None and numbers:
        out["ratio"] = ratio(float(out["value"]), float(out["baseline"]))
    if out.get("baseline") is None and not out.get("baseline_note"):
        out["baseline_note"] = NO_BASELINE
        if not out.get("error"):
            notes.append(f"{out.get('name')}: no baseline and no baseline_note")
    return out, notes


# ---------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    """The checked-out commit (read-only ``git rev-parse``); None outside a work tree."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def machine_env() -> dict[str, Any]:
    """Where and when the figures were taken; the load average matters on a shared box."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "loadavg": load,
        "commit": _git_commit(),
    }


# ---------------------------------------------------------------------- processes


def proc_status_kb(pid: int | str, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (``VmHWM`` = peak RSS, ``VmRSS`` = current)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size (VmHWM) in MiB."""
    kb = proc_status_kb(pid, "VmHWM")
    return None if kb is None else kb / 1024.0


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: count fields after its closing ')'.
    fields = text[text.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class CpuMeter:
    """CPU share of a process over a wall-clock window: 100 % = one core busy."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu0 = cpu_seconds(pid)
        self._wall0 = time.monotonic()

    def percent(self) -> float | None:
        cpu = cpu_seconds(self.pid)
        wall = time.monotonic() - self._wall0
        if cpu is None or self._cpu0 is None or wall <= 0:
            return None
        return 100.0 * (cpu - self._cpu0) / wall


def free_port() -> int:
    """An unused TCP port on loopback (benchmarks never leave 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a benchmark's child process: the repo importable, nothing inherited
    that would point a child at another service's data."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    for name in ("LANTIAN_INGEST_SETTINGS", "LANTIAN_INGEST_CONFIG", "LANTIAN_AGENT_CONFIG"):
        env.pop(name, None)
    env.update(extra)
    return env


# ---------------------------------------------------------------------- the table


def _figure(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    text = (
        f"{value:,}"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else str(value)
    )
    return f"{text} {unit}".strip()


def format_table(rows: list[dict[str, Any]]) -> str:
    """One plain-text table: benchmark, what was measured, figure, baseline, ratio, target, met."""
    header = ("benchmark", "measured", "figure", "baseline", "ratio", "target", "met")
    lines: list[tuple[str, ...]] = [header]
    for item in rows:
        unit = item.get("unit") or ""
        met = {True: "yes", False: "no", None: "-"}.get(item.get("met"), "?")
        met = "FAILED" if item.get("error") else met
        lines.append(
            (
                str(item.get("benchmark", "")),
                str(item.get("name", "")),
                _figure(item.get("value"), unit),
                "n/a" if item.get("baseline") is None else _figure(item.get("baseline"), unit),
                "-" if item.get("ratio") is None else f"{item['ratio']:g}",
                # no unit: some modules state the target as a ratio to the baseline
                _figure(item.get("target"), ""),
                met,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    for item in rows:
        if item.get("error"):
            out.append(f"FAILED {item.get('benchmark')}: {item['error']}")
    for item in rows:
        note = item.get("baseline_note")
        if note and not item.get("error"):
            out.append(f"baseline n/a for {item.get('benchmark')} / {item.get('name')}: {note}")
    return "\n".join(out)
