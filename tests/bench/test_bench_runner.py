"""The benchmark runner (``python -m bench``) on throw-away benchmark modules with a tiny budget:
discovery, --quick, --only, failed rows, the wall-clock bound, results.json as a list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.__main__ import BenchModule, discover, read_module
from bench.common import check_row, cpu_seconds, format_table, peak_rss_mb, ratio, row

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")

GOOD = """
def run(quick: bool = False):
    value = 10.0 if quick else 1000.0
    print("measuring", flush=True)
    return [
        {"name": "speed", "value": value, "unit": "items/s", "baseline": 500.0,
         "ratio": value / 500.0, "target": 800.0, "met": value >= 800.0},
    ]
"""
SIZED = """
QUICK = {"rows": 7, "unknown_param": 1}

def run(rows: int = 1000):
    return [{"name": f"rows={rows}", "value": float(rows), "unit": "rows", "baseline": None,
             "ratio": None, "target": None, "met": True}]
"""
CRASH = """
def run():
    raise RuntimeError("the disk is on fire")
"""
BAD_ROWS = """
def run():
    return [{"name": "no verdict", "value": 1.0}]
"""
HANG = """
import subprocess, sys, time
TIMEOUT_S = 3

def run():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(__file__ + ".pid", "w") as fh:
        fh.write(str(child.pid))
    time.sleep(120)
"""
NOT_A_BENCHMARK = """
def helper():
    return 1
"""


def _bench(folder: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [PYTHON, "-m", "bench", "--dir", str(folder), "--out", str(folder / "results.json"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _folder(tmp_path: Path, **modules: str) -> Path:
    folder = tmp_path / "fakebench"
    folder.mkdir()
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    return folder


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_discovery_reads_run_signatures_without_importing(tmp_path):
    folder = _folder(
        tmp_path,
        good=GOOD,
        sized=SIZED,
        crash=CRASH,
        helper=NOT_A_BENCHMARK,
        _private=GOOD,
        common=GOOD,
        broken="def run(:\n",
    )
    found = {m.name: m for m in discover(folder)}
    # no run(): not a benchmark; _private and common: never; a syntax error: a failure to report
    assert sorted(found) == ["broken", "crash", "good", "sized"]
    assert found["good"].params == ("quick",) and found["good"].quick_kwargs() == {"quick": True}
    # QUICK is filtered to what run() accepts
    assert found["sized"].quick_kwargs() == {"rows": 7}
    assert found["crash"].quick_kwargs() == {}
    assert found["broken"].problems and "cannot read broken.py" in found["broken"].problems[0]


def test_quick_kwargs_for_known_size_parameters(tmp_path):
    path = tmp_path / "load.py"
    path.write_text("def run(duration_s=10, agents=50, workers=2):\n    return []\n")
    module = read_module(path)
    assert module.quick_kwargs() == {"duration_s": 3.0, "agents": 10}
    assert BenchModule("x", path, params=(), var_kwargs=True, quick={"a": 1}).quick_kwargs() == {
        "a": 1
    }


def test_runner_reports_failures_as_rows_and_bounds_a_hang(tmp_path):
    folder = _folder(tmp_path, good=GOOD, sized=SIZED, crash=CRASH, bad_rows=BAD_ROWS, hang=HANG)
    started = time.monotonic()
    done = _bench(folder, "--quick")
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr  # crashes are errors
    # the hang was stopped at its 3 s bound (plus start-up), not after its 120 s sleep
    assert elapsed < 45
    rows = json.loads((folder / "results.json").read_text())
    assert isinstance(rows, list)
    by_bench = {r["benchmark"]: r for r in rows}
    assert set(by_bench) == {"bad_rows", "crash", "good", "hang", "sized"}
    good = by_bench["good"]
    assert (good["value"], good["met"], good["ratio"]) == (10.0, False, 0.02)  # quick size
    assert good["env"]["quick"] is True and good["env"]["cpus"] == os.cpu_count()
    assert by_bench["sized"]["name"] == "rows=7"
    assert "RuntimeError: the disk is on fire" in by_bench["crash"]["error"]
    assert by_bench["crash"]["met"] is False and by_bench["crash"]["value"] is None
    assert "lacks 'met'" in by_bench["bad_rows"]["error"]
    assert "timed out after 3 s" in by_bench["hang"]["error"]
    # the hung benchmark's own child went down with its process group
    grandchild = int((folder / "hang.py.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)
    out = done.stdout
    assert "[bench] (1/5) bad_rows: running" in out
    assert "  good | measuring" in out  # the child's output, forwarded with its name
    assert "FAILED crash: RuntimeError: the disk is on fire" in out
    table = [line for line in out.splitlines() if line.startswith("good ")]
    assert table and table[0].split()[-1] == "no"  # unmet target: reported, not an error


def test_unmet_targets_are_not_errors_and_only_merges(tmp_path):
    folder = _folder(tmp_path, good=GOOD, sized=SIZED)
    first = _bench(folder)
    assert first.returncode == 0, first.stdout + first.stderr
    rows = json.loads((folder / "results.json").read_text())
    assert [r["benchmark"] for r in rows] == ["good", "sized"]
    assert rows[0]["value"] == 1000.0 and rows[0]["met"] is True
    assert rows[1]["name"] == "rows=1000"
    again = _bench(folder, "--only", "sized", "--quick")
    assert again.returncode == 0
    merged = json.loads((folder / "results.json").read_text())
    assert [(r["benchmark"], r["name"]) for r in merged] == [("good", "speed"), ("sized", "rows=7")]


def test_unknown_benchmark_is_a_usage_error(tmp_path):
    folder = _folder(tmp_path, good=GOOD)
    done = _bench(folder, "--only", "nope")
    assert done.returncode == 2
    assert "unknown benchmark(s) nope; known: good" in done.stderr
    assert not (folder / "results.json").exists()


def test_list_names_the_real_benchmarks():
    done = subprocess.run(
        [PYTHON, "-m", "bench", "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    names = [line.split("\t")[0] for line in done.stdout.splitlines()]
    assert "agent_backlog" in names
    assert "common" not in names and "__main__" not in names


# ---------------------------------------------------------------------- bench.common


def test_row_and_ratio():
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(1.0, 0.0) is None and ratio(None, 2.0) is None and ratio(1.0, float("nan")) is None
    item = row("x", 123.456, "s", baseline=61.728, target=120.0, met=False)
    assert item == {
        "name": "x",
        "value": 123.5,
        "unit": "s",
        "baseline": 61.7,
        "ratio": 2.0,
        "target": 120.0,
        "met": False,
    }
    assert check_row(item) == []
    assert check_row({"name": "y", "met": "yes"})[-1].startswith("met is 'yes', not true/false")
    # a figure without a target may leave met empty; with a target it must say yes or no
    assert check_row({**item, "target": None, "met": None}) == []
    assert check_row({**item, "met": None}) != []
    assert check_row([1]) == ["row is a list, not a dict"]


def test_table_has_one_line_per_row_and_names_failures():
    rows = [
        dict(row("speed", 1500.0, "items/s", baseline=500.0, target=1000.0, met=True), benchmark="a"),
        {**row("b (failed)", None, "", baseline=None, target=None, met=False), "benchmark": "b",
         "error": "boom"},
        {**row("p99", 0.25, "s", baseline=0.01, target=None, met=False), "met": None,
         "benchmark": "c"},
    ]  # fmt: skip
    lines = format_table(rows).splitlines()
    assert lines[0].split() == [
        "benchmark", "measured", "figure", "baseline", "ratio", "target", "met",
    ]  # fmt: skip
    assert lines[2].split() == ["a", "speed", "1,500.0", "items/s", "500.0", "items/s", "3",
                                "1,000.0", "yes"]  # fmt: skip
    assert lines[3].split()[-1] == "FAILED"
    assert lines[4].split()[-1] == "-"  # no target, no verdict
    assert lines[-1] == "FAILED b: boom"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_process_meters_read_proc():
    rss = peak_rss_mb()
    assert rss is not None and 5 < rss < 4096
    spent = cpu_seconds()
    busy = time.process_time()
    while time.process_time() - busy < 0.2:
        pass
    assert cpu_seconds() - spent >= 0.15
    assert peak_rss_mb(2**22 + 12345) is None  # no such process
