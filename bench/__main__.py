"""``make bench`` = ``python -m bench``: run every benchmark, print one table, write results.json.

    python -m bench [--only NAME ...] [--quick] [--arg KEY=VALUE ...] [--timeout S] [--out FILE]
                    [--list]

A benchmark is a module in ``bench/`` with a top-level ``run()`` returning rows (see
``bench/common.py``). Modules are found by reading their source (``ast``), not by importing them,
and each runs in its own child process and process group, so a benchmark that crashes, hangs or
leaves servers behind cannot take the others down: past its wall-clock bound the whole group is
stopped, and a failure becomes a failed row with its error while the others still run.

``--quick`` passes smaller sizes where the module's ``run()`` accepts them: ``quick=True`` if it
has a ``quick`` parameter, else the module's ``QUICK`` dict if it defines one, else known size
parameters (``duration_s``, ``agents``) at small values. Exit status: 0 when every benchmark ran
(unmet targets are results, not errors), 1 when one crashed or timed out, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    check_row,
    child_env,
    format_table,
    machine_env,
    normalise_row,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"
#: Modules of this folder that are not benchmarks.
NOT_BENCHMARKS = frozenset({"__init__", "__main__", "common"})
#: Wall-clock bound per benchmark unless the module sets TIMEOUT_S or --timeout is given.
DEFAULT_TIMEOUT_S = 900.0
QUICK_TIMEOUT_S = 300.0
#: --quick values for size parameters a run() may take (used when the module has no QUICK).
QUICK_BY_PARAM: dict[str, Any] = {"quick": True, "duration_s": 3.0, "agents": 10}
PROGRESS_EVERY_S = 30.0


@dataclass
class BenchModule:
    """A benchmark module as read from its source."""

    name: str
    path: Path
    params: tuple[str, ...] = ()
    var_kwargs: bool = False
    quick: dict[str, Any] | None = None
    timeout_s: float | None = None
    problems: list[str] = field(default_factory=list)

    def accepts(self, param: str) -> bool:
        return self.var_kwargs or param in self.params

    def quick_kwargs(self) -> dict[str, Any]:
        if "quick" in self.params:
            return {"quick": True}
        if self.quick is not None:
            return {k: v for k, v in self.quick.items() if self.accepts(k)}
        return {k: v for k, v in QUICK_BY_PARAM.items() if k in self.params}


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None


def read_module(path: Path) -> BenchModule | None:
    """The module's run() signature, QUICK and TIMEOUT_S; None if it has no top-level run()."""
    module = BenchModule(path.stem, path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError) as exc:
        module.problems.append(f"cannot read {path.name}: {exc}")
        return module  # reported as a failed benchmark, not silently skipped
    run_node = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "run":
            run_node = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            if node.value is None:
                continue
            if "QUICK" in names and isinstance(_literal(node.value), dict):
                module.quick = _literal(node.value)
            if "TIMEOUT_S" in names and isinstance(_literal(node.value), int | float):
                module.timeout_s = float(_literal(node.value))
    if run_node is None:
        return None
    args = run_node.args
    module.params = tuple(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs])
    module.var_kwargs = args.kwarg is not None
    return module


def discover(folder: Path = BENCH_DIR) -> list[BenchModule]:
    """Every ``*.py`` in ``folder`` with a top-level ``run()``, in name order."""
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.stem in NOT_BENCHMARKS or path.stem.startswith("_"):
            continue
        module = read_module(path)
        if module is not None:
            found.append(module)
    return found


# ---------------------------------------------------------------------- the child side


def _import(folder: Path, name: str):
    """``bench.<name>`` for this folder (so ``from bench.common import`` works); a module of
    another folder (the runner's own tests) by its file name."""
    if folder.resolve() == BENCH_DIR:
        return importlib.import_module(f"bench.{name}")
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def child_main(folder: Path, name: str, kwargs: dict[str, Any], result: Path) -> int:
    """Run one benchmark in this (child) process and write its rows, or its error, to ``result``."""
    try:
        module = _import(folder, name)
        rows = module.run(**kwargs)
        if not isinstance(rows, list):
            raise TypeError(f"run() returned a {type(rows).__name__}, not a list of rows")
        problems = [f"row {i}: {p}" for i, item in enumerate(rows) for p in check_row(item)]
        if problems:
            raise ValueError("; ".join(problems[:5]))
        payload: dict[str, Any] = {"rows": rows}
        status = 0
    except BaseException as exc:  # a benchmark's failure is a result to report
        traceback.print_exc()
        payload = {"error": f"{exc.__class__.__name__}: {exc}"}
        status = 1
    result.write_text(json.dumps(payload, ensure_ascii=False, default=str), encoding="utf-8")
    return status


# ---------------------------------------------------------------------- the parent side


def _say(text: str) -> None:
    print(text, flush=True)


def _pump(stream, name: str, tail: deque[str]) -> None:
    """Forward a child's output line by line, prefixed, keeping the last lines for errors."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        tail.append(line)
        _say(f"  {name} | {line}")


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop the child and everything it started (its own process group)."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_bounded(proc: subprocess.Popen, name: str, started: float, timeout_s: float) -> bool:
    """Wait for the child, saying so every 30 s; stop its group past the bound (True then)."""
    next_note = started + PROGRESS_EVERY_S
    while proc.poll() is None:
        now = time.monotonic()
        if now - started > timeout_s:
            _stop_group(proc)
            return True
        if now >= next_note:
            _say(f"[bench] {name}: still running after {now - started:.0f} s")
            next_note += PROGRESS_EVERY_S
        time.sleep(0.2)
    return False


def failed_row(name: str, error: str) -> dict[str, Any]:
    return {
        "benchmark": name,
        "name": f"{name} (failed)",
        "value": None,
        "unit": "",
        "baseline": None,
        "ratio": None,
        "target": None,
        "met": False,
        "error": error,
        "baseline_note": "n/a: the benchmark failed",
    }


def parse_args_option(items: list[str]) -> dict[str, Any]:
    """``--arg KEY=VALUE`` items → kwargs; VALUE is read as JSON (31, true, "x"), else as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--arg {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(text)
        except ValueError:
            out[key.strip()] = text
    return out


def run_module(
    module: BenchModule,
    *,
    quick: bool,
    timeout_s: float,
    folder: Path = BENCH_DIR,
    extra: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Run one benchmark in a child process; (rows, ok). Rows carry ``benchmark`` and ``env``.
    ``extra`` (from ``--arg``) is passed on where ``run()`` takes it, over the quick sizes."""
    if module.problems:
        return [failed_row(module.name, "; ".join(module.problems))], False
    kwargs = module.quick_kwargs() if quick else {}
    kwargs.update({k: v for k, v in (extra or {}).items() if module.accepts(k)})
    env = machine_env()
    with tempfile.TemporaryDirectory(prefix="lantian-bench-") as tmp:
        result = Path(tmp) / "result.json"
        command = [
            PYTHON, "-m", "bench", "--child", module.name, "--dir", str(folder),
            "--kwargs", json.dumps(kwargs), "--result", str(result),
        ]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=child_env(PYTHONUNBUFFERED="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a timeout stops its servers too
        )
        tail: deque[str] = deque(maxlen=20)
        pump = threading.Thread(target=_pump, args=(proc.stdout, module.name, tail), daemon=True)
        pump.start()
        timed_out = _wait_bounded(proc, module.name, started, timeout_s)
        # Descendants that outlived the child (daemonised servers) go with its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        pump.join(5)
        elapsed = time.monotonic() - started
        env.update({"quick": quick, "kwargs": kwargs, "module_seconds": round(elapsed, 1)})
        payload: dict[str, Any] = {}
        if result.exists():
            with contextlib.suppress(ValueError):
                payload = json.loads(result.read_text(encoding="utf-8"))
    if timed_out:
        error = f"timed out after {timeout_s:g} s (wall-clock bound); stopped"
    elif "rows" in payload:
        rows = []
        for item in payload["rows"]:
            fixed, notes = normalise_row(item)
            for note in notes:
                _say(f"[bench] {module.name}: {note}")
            rows.append(dict(fixed, benchmark=module.name, env=env))
        return rows, True
    elif "error" in payload:
        error = payload["error"]
    else:
        last = next((line for line in reversed(tail) if line.strip()), "")
        error = f"exited with status {proc.returncode} without results: {last}"
    row = failed_row(module.name, error)
    row["env"] = env
    return [row], False


def _merge(out: Path, rows: list[dict[str, Any]], ran: set[str]) -> list[dict[str, Any]]:
    """With --only, keep the earlier rows of the benchmarks that did not run this time."""
    try:
        old = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return rows
    if not isinstance(old, list):
        return rows
    kept = [
        normalise_row(r)[0] for r in old if isinstance(r, dict) and r.get("benchmark") not in ran
    ]
    return kept + rows


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    """results.json is a JSON list of rows (machine info inside each row, under ``env``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(out.name + ".tmp")
    temp.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(temp, out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this benchmark (repeatable, or comma-separated)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a quick look")
    parser.add_argument("--timeout", type=float, help="wall-clock bound per benchmark, seconds")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="pass KEY=VALUE (JSON value, else text) to every run() that takes "
                        "KEY, e.g. --arg days=31 (repeatable)")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    folder = args.dir.resolve()
    try:
        extra = parse_args_option(args.arg)
    except ValueError as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    if args.child:
        return child_main(folder, args.child, json.loads(args.kwargs), args.result)
    modules = discover(folder)
    if args.list:
        for module in modules:
            quick = module.quick_kwargs()
            _say(f"{module.name}\trun({', '.join(module.params)})\tquick: {quick or 'as full'}")
        return 0
    wanted = {n.strip() for item in args.only for n in item.split(",") if n.strip()}
    unknown = wanted - {m.name for m in modules}
    if unknown:
        known = ", ".join(m.name for m in modules) or "none"
        print(f"python -m bench: unknown benchmark(s) {', '.join(sorted(unknown))}; known: {known}",
              file=sys.stderr)  # fmt: skip
        return 2
    if wanted:
        modules = [m for m in modules if m.name in wanted]
    rows: list[dict[str, Any]] = []
    crashed = []
    for k, module in enumerate(modules, start=1):
        timeout = args.timeout or module.timeout_s
        timeout = timeout or (QUICK_TIMEOUT_S if args.quick else DEFAULT_TIMEOUT_S)
        mode = f"quick {module.quick_kwargs() or '(no smaller size)'}" if args.quick else "full"
        _say(f"[bench] ({k}/{len(modules)}) {module.name}: running, {mode}, bound {timeout:g} s")
        started = time.monotonic()
        got, ok = run_module(
            module, quick=args.quick, timeout_s=timeout, folder=folder, extra=extra
        )
        rows.extend(got)
        state = "done" if ok else "FAILED"
        _say(
            f"[bench] {module.name}: {state}, {len(got)} row(s) in {time.monotonic() - started:.1f} s"
        )
        if not ok:
            crashed.append(module.name)
    output = _merge(args.out, rows, {m.name for m in modules}) if wanted else rows
    write_results(args.out, output)
    _say("")
    _say(format_table(rows))
    _say(f"\nwrote {args.out} ({len(output)} rows)")
    if crashed:
        _say(f"benchmarks that failed: {', '.join(crashed)}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
