"""Scale: a district's month in the embedded mode, and one day on one vs two Celery workers.

**Embedded month.** The simulated district (``agents.simulate``, scale ``district``: 300 ambient
micro-stations, 40 CEMS stacks, 30 gas stations, 4 remote-sensing units; seed 2017, from
2017-12-01) goes through the pipeline end to end in one process, on SQLite, with the steps the
DAGs call, in the DAGs' order:

    simulate (scenario, registry and bureau files) → land (``lantian.direct_load``: the agent's
    framer and decoders, the ingest's landing) → registry → per day: validate ×4 streams,
    cems rules, daily rules → monthly rules → report (xlsx, PDF, HTML)

Each stage is timed and its peak RSS taken (VmHWM of this process, reset before each stage
through ``/proc/self/clear_refs`` after the freed heap is handed back with ``malloc_trim``, as a
DAG task would start in a fresh process; children's peak from ``getrusage(RUSAGE_CHILDREN)``).
Landing decodes the devices in one worker process per core (the landing index takes one writer at
a time); it is the field's work, not the pipeline's, and its peak is the workers'. Airflow's
own cost per task (a task process, a few seconds) is not in these figures: the steps are called
directly, as the pipeline tests do.

A full month takes longer than a benchmark run should (measured: see bench/README.md), so the
default run measures ``DEFAULT_DAYS`` days and extrapolates the month **linearly in days**: every
stage whose work grows with the days (simulate, land, the per-day stages, the monthly rules) is
scaled by 31 / measured days; the registry load and the report are kept as measured (their size
does not depend on the number of days: the report has one page per month). ``--days 31`` (or
``--full-month``) measures the whole month instead, and then no row is extrapolated.

**Celery scaling.** The same day (``CELERY_SCALE``, default the demo district) is landed into a
private distributed cluster (``lantian.distributed.Cluster``: PostgreSQL, Redis, scheduler,
Celery workers, on this machine's loopback) and ``lantian_daily`` runs twice: with worker-a alone
(worker-b stopped), then with both. Each worker has one slot here, so the comparison is one
validation slot against two; the row is the wall time of the DAG run with two workers over the
time with one (below 1 = faster). The first run also warms the cluster (DAG parsed, imports
cached), so one untimed warm-up run comes first. Skipped, with a row saying why, when
PostgreSQL or Redis is down.

    python -m bench.scale_month [--days N | --full-month] [--no-celery | --no-embedded]
                                [--celery-scale district]
    python -m bench --only scale_month --arg days=31
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.common import row

SEED = 2017
START = date(2017, 12, 1)
MONTH = "2017-12"
MONTH_DAYS = 31
SCALE = "district"
#: Days measured by default. A district day is about 2.5 min to land (two processes) and 4 min
#: through the pipeline on this shared 2-core host, so a whole month runs for hours: it is one
#: flag away (--full-month) instead. See bench/README.md for the figures.
DEFAULT_DAYS = 1
STREAMS = ("cems", "ambient", "vapor", "rsd")
#: Day of the Celery comparison; the demo district keeps both runs within a few minutes.
CELERY_SCALE = "demo"
#: Target for the two-worker run: no slower than one worker (ratio <= 1). On a 2-core host a
#: second slot can at best halve the validations' part of the run.
CELERY_TARGET_RATIO = 1.0
#: Target for the month: the report of month M is due within 2 working days; the pipeline must
#: finish well inside one night on the bureau's single server (8 h).
MONTH_TARGET_MIN = 8 * 60.0
#: Peak memory target: the embedded mode must fit a 4 GB office server with room to spare.
PEAK_TARGET_MB = 3 * 1024.0
TIMEOUT_S = 7200.0  # 2 h: one district day on a loaded 2-core host, and the cluster
PROGRESS_EVERY_S = 30.0
QUICK = {"days": 1, "scale": "demo", "celery": False}

Progress = Callable[[str], None]


def _say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------- memory and time


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def release_free_heap() -> bool:
    """Give freed heap back to the OS (glibc ``malloc_trim``), so a stage's peak is its own and
    not what an earlier stage freed but the allocator kept. In the DAGs each task is a process of
    its own and starts clean; here every stage runs in one process. False where unavailable."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        return bool(ctypes.CDLL(name).malloc_trim(0))
    except (OSError, AttributeError):
        return False


def peak_mb() -> float:
    """VmHWM of this process, MiB (getrusage's lifetime peak where /proc is missing)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def children_peak_mb() -> float:
    """Largest peak RSS of any waited-for child process, MiB (0 if none)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    peak_mb: float = 0.0
    #: grows with the number of days (scaled when the month is extrapolated)
    per_day: bool = True
    runs: int = 0


@dataclass
class Stages:
    """Accumulated time and peak memory per stage name, in first-seen order."""

    stages: dict[str, Stage] = field(default_factory=dict)
    progress: Progress = _say
    clock: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def stage(self, name: str, label: str = "", per_day: bool = True) -> Iterator[None]:
        gc.collect()
        release_free_heap()
        reset_peak()
        started = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - started
            item = self.stages.setdefault(name, Stage(name, per_day=per_day))
            item.seconds += seconds
            item.peak_mb = max(item.peak_mb, peak_mb())
            item.runs += 1
            total = time.monotonic() - self.clock
            self.progress(
                f"  {label or name}: {seconds:6.1f} s, peak {peak_mb():6.0f} MB"
                f"   (elapsed {total / 60:5.1f} min)"
            )

    @property
    def total_s(self) -> float:
        return sum(s.seconds for s in self.stages.values())

    @property
    def peak(self) -> float:
        return max((s.peak_mb for s in self.stages.values()), default=0.0)


# ---------------------------------------------------------------------------- embedded month


@contextlib.contextmanager
def lantian_home(home: Path) -> Iterator[None]:
    """Point the settings at ``home`` (and nowhere else) for the steps called inside."""
    from lantian.settings import PLACE_OVERRIDES

    names = ["LANTIAN_HOME", *PLACE_OVERRIDES]
    saved = {n: os.environ.get(n) for n in names}
    for n in names[1:]:
        os.environ.pop(n, None)
    os.environ["LANTIAN_HOME"] = str(home)
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def run_days(day_names: list[str], stages: Stages, progress: Progress) -> dict[str, Any]:
    """Validation, CEMS rules and the daily rules of each day, in the DAG's order."""
    from lantian import pipeline, rules_daily
    from validation.run import CriticalValidationError

    counts: dict[str, Any] = {"rows_in": 0, "critical": []}
    for k, day in enumerate(day_names, 1):
        progress(f"[day {k}/{len(day_names)}] {day}")
        for stream in STREAMS:
            with stages.stage("validate", f"validate {stream}"):
                try:
                    result = pipeline.validate_day(stream, day, run_id="bench")
                    counts["rows_in"] += result["rows_in"]
                except CriticalValidationError as exc:
                    # the partition is stored before the check raises; the DAG task would fail
                    counts["critical"].append(f"{stream} {day}: {str(exc)[:120]}")
        with stages.stage("cems rules"):
            pipeline.cems_day(day)
        with stages.stage("daily rules"):
            for step in (
                rules_daily.ambient_day,
                rules_daily.vapor_day,
                rules_daily.rsd_day,
                rules_daily.transmission_day,
            ):
                step(day, run_id="bench")
    return counts


def _land_share(home: str, days: int, scale: str, share: int, shares: int) -> int:
    """Land every ``shares``-th device (from ``share``) of the scenario; run in a worker process."""
    from agents.simulate.scenario import build_scenario
    from lantian import settings
    from lantian.direct_load import land_scenario

    total, last = 0, time.monotonic()
    with lantian_home(Path(home)):
        scenario = build_scenario(seed=SEED, start=START, days=days, scale=scale)
        devices = scenario.device_ids()[share::shares]
        for k, device_id in enumerate(devices, 1):
            landed = land_scenario(
                scenario,
                settings.landing_root(),
                settings.landing_index_url(),
                batch_size=2000,
                devices=[device_id],
            )
            total += int(landed["total_readings"])
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                _say(f"       worker {share + 1}/{shares}: {k}/{len(devices)} devices, {total:,}")
                last = time.monotonic()
    return total


def land_with_progress(
    home: Path, days: int, scale: str, progress: Progress, processes: int | None = None
) -> int:
    """``land_scenario`` for every device, shared over ``processes`` worker processes (default:
    one per core; the landing index takes one writer at a time, the decoding is parallel)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    processes = processes or os.cpu_count() or 1
    total = 0
    with ProcessPoolExecutor(max_workers=processes) as pool:
        futures = [
            pool.submit(_land_share, str(home), days, scale, share, processes)
            for share in range(processes)
        ]
        for done, future in enumerate(as_completed(futures), 1):
            total += future.result()
            progress(f"       {done}/{processes} worker(s) done, {total:,} readings landed")
    return total


def embedded_month(
    home: Path, days: int, scale: str = SCALE, progress: Progress = _say
) -> tuple[Stages, dict[str, Any]]:
    """Run ``days`` days of the simulated ``scale`` district and the month's rules and report."""
    from agents.simulate.scenario import build_scenario
    from lantian import pipeline, settings
    from lantian.direct_load import load_bureau_inputs
    from lantian.rules_monthly import monthly_rules

    stages = Stages(progress=progress)
    info: dict[str, Any] = {"days": days, "scale": scale}
    with lantian_home(home):
        progress(f"[simulate] {scale} scale, {days} day(s) from {START}, seed {SEED}")
        with stages.stage("simulate", "scenario, registry and bureau files"):
            scenario = build_scenario(seed=SEED, start=START, days=days, scale=scale)
            scenario.write_registry(settings.registry_dir())
            with contextlib.suppress(ValueError):  # tiny scale: too few stacks for cases
                load_bureau_inputs(settings.registry_dir(), scenario, MONTH, SEED)
        info["devices"] = len(scenario.device_ids())
        progress(f"[land] {info['devices']} devices through the decoders into the landing area")
        with stages.stage("land", f"decode and land every device ({os.cpu_count()} processes)"):
            info["readings"] = land_with_progress(home, days, scale, progress)
        progress(f"       {info['readings']:,} readings landed")
        del scenario
        with stages.stage("registry", per_day=False):
            pipeline.sync_registry()
        day_names = [(START + timedelta(days=i)).isoformat() for i in range(days)]
        info.update(run_days(day_names, stages, progress))
        progress(f"[month] {MONTH}: monthly rules")
        with stages.stage("monthly rules", "monthly rules (9 steps)"):
            monthly_rules(MONTH, run_id="bench")
        progress(f"[month] {MONTH}: report")
        with stages.stage("report", "report (xlsx, PDF, HTML)", per_day=False):
            pipeline.monthly_report(MONTH)
    info["children_peak_mb"] = children_peak_mb()
    return stages, info


def month_estimate(stages: Stages, days: int, month_days: int = MONTH_DAYS) -> dict[str, float]:
    """Stage → seconds for the whole month: stages that grow with the days scaled linearly."""
    factor = month_days / days
    return {s.name: s.seconds * factor if s.per_day else s.seconds for s in stages.stages.values()}


def embedded_rows(stages: Stages, info: dict[str, Any]) -> list[dict[str, Any]]:
    days, scale = info["days"], info["scale"]
    full = days >= MONTH_DAYS
    where = f"{scale} scale ({info['devices']} devices)"
    rows = []
    for s in stages.stages.values():
        per = (
            " per day" if s.per_day and s.name not in ("simulate", "land", "monthly rules") else ""
        )
        value = s.seconds / days if per else s.seconds
        # no baseline: a stage is a share of the run, not a comparison; the run's own total is
        # the baseline, so the ratio says which stage dominates
        rows.append(
            row(
                f"embedded {where}, {days} day(s): stage {s.name}{per} "
                f"(baseline: whole run; peak RSS {s.peak_mb:.0f} MB)",
                value,
                "s",
                baseline=stages.total_s,
                target=None,
                met=None,
            )
        )
    estimate = month_estimate(stages, days)
    month_min = sum(estimate.values()) / 60.0
    how = "measured" if full else f"extrapolated linearly in days from {days} measured day(s)"
    measured_min = stages.total_s / 60.0
    rows.append(
        row(
            f"embedded {where}: month of {MONTH_DAYS} days end to end, {how} "
            f"(baseline: the {days} day(s) actually run)",
            month_min,
            "min",
            baseline=measured_min,
            target=MONTH_TARGET_MIN,
            met=month_min <= MONTH_TARGET_MIN,
        )
    )
    peak = max(stages.peak, info.get("children_peak_mb", 0.0))
    top = max(stages.stages.values(), key=lambda s: s.peak_mb)
    rows.append(
        row(
            f"embedded {where}: peak RSS over all stages (highest in {top.name}; baseline: "
            f"peak during the registry load, what the process holds between stages)",
            peak,
            "MB",
            baseline=stages.stages["registry"].peak_mb if "registry" in stages.stages else None,
            target=PEAK_TARGET_MB,
            met=peak <= PEAK_TARGET_MB,
            digits=0,
        )
    )
    if info.get("critical"):
        print(f"critical validation outcomes (stored, a DAG task would fail): {info['critical']}")
    return rows


# ---------------------------------------------------------------------------- Celery scaling


def celery_day(scale: str = CELERY_SCALE, progress: Progress = _say) -> list[dict[str, Any]]:
    """One day through ``lantian_daily`` on one worker, then on two; wall time of each run."""
    from agents.simulate.scenario import build_scenario
    from lantian.direct_load import land_scenario
    from lantian.distributed import (
        Cluster,
        DistributedError,
        check_postgres,
        check_redis,
        clear_broker,
        database_names,
        drop_databases,
        environment,
        private_overrides,
    )

    pg, redis_url = "postgresql://postgres@127.0.0.1:5432", "redis://127.0.0.1:6379/0"
    name = f"lantian_daily, one {scale} district day: wall time on two Celery workers"
    missing = [p for p in (check_postgres(pg), check_redis(redis_url)) if p]
    if missing:
        progress(f"[celery] skipped: {'; '.join(missing)}")
        return [
            row(
                f"{name} (not run: {'; '.join(missing)})",
                None,
                "x",
                baseline=None,
                target=CELERY_TARGET_RATIO,
                met=False,
            )  # fmt: skip
        ]
    home = Path(tempfile.mkdtemp(prefix="lantian-bench-celery-"))
    overrides = private_overrides(home, pg, redis_url, "bench")
    # one slot per worker: one worker = one task at a time, two workers = two
    overrides["LANTIAN_WORKER_A_CONCURRENCY"] = "1"
    overrides["LANTIAN_WORKER_B_CONCURRENCY"] = "1"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LANTIAN_"))}
    env = environment(overrides, base=base)
    cluster = Cluster(env)
    day = START.isoformat()
    timings: dict[str, float] = {}
    try:
        progress(f"[celery] starting a private cluster under {home}")
        clock = time.monotonic()
        cluster.start(timeout_s=300)
        progress(f"[celery] cluster up in {time.monotonic() - clock:.0f} s; landing {day}")
        scenario = build_scenario(seed=SEED, start=START, days=1, scale=scale)
        scenario.write_registry(Path(env["LANTIAN_REGISTRY_DIR"]))
        landed = land_scenario(
            scenario, env["LANTIAN_LANDING_DIR"], env["LANTIAN_LANDING_INDEX_URL"],
            batch_size=2000,
        )  # fmt: skip
        progress(f"[celery] {landed['total_readings']:,} readings landed")
        for label, setup in (
            ("warm-up (two workers)", None),
            ("one worker", "stop"),
            ("two workers", "start"),
        ):
            if setup == "stop":
                cluster.stop(["worker-b"])
            elif setup == "start":
                cluster.start(["worker-b"], timeout_s=150)
                cluster.wait_ready(["worker-b"], timeout_s=150)
            progress(f"[celery] lantian_daily {day}, {label}")
            clock = time.monotonic()
            cluster.run_dag("lantian_daily", {"day": day}, timeout_s=TIMEOUT_S / 2)
            timings[label] = time.monotonic() - clock
            progress(f"[celery]   {timings[label]:.1f} s")
    except DistributedError as exc:
        progress(f"[celery] failed: {exc}")
        raise
    finally:
        with contextlib.suppress(DistributedError):
            cluster.stop(timeout_s=120)
        drop_databases(pg, database_names(env))
        clear_broker(redis_url, env["LANTIAN_REDIS_PREFIX"])
        shutil.rmtree(home, ignore_errors=True)
    one, two = timings["one worker"], timings["two workers"]
    return [
        row(
            f"{name} (baseline: the same run on one worker; ratio < 1 = faster)",
            two,
            "s",
            baseline=one,
            target=CELERY_TARGET_RATIO,
            met=two / one <= CELERY_TARGET_RATIO,
        )
    ]


# ---------------------------------------------------------------------------- entry points


def run(
    days: int = DEFAULT_DAYS,
    scale: str = SCALE,
    celery: bool = True,
    celery_scale: str = CELERY_SCALE,
    embedded: bool = True,
) -> list[dict[str, Any]]:
    """Rows of the embedded month (``days`` measured) and, with ``celery``, of the 1 vs 2 worker
    comparison."""
    days = max(1, min(int(days), MONTH_DAYS))
    rows: list[dict[str, Any]] = []
    if embedded:
        home = Path(tempfile.mkdtemp(prefix="lantian-bench-month-"))
        try:
            stages, info = embedded_month(home, days, scale)
            rows += embedded_rows(stages, info)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    if celery:
        rows += celery_day(celery_scale)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_month",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days to measure")
    parser.add_argument("--full-month", action="store_true", help=f"all {MONTH_DAYS} days")
    parser.add_argument("--scale", default=SCALE, choices=("tiny", "demo", "district"))
    parser.add_argument("--no-celery", action="store_true", help="skip the 1 vs 2 worker runs")
    parser.add_argument("--celery-scale", default=CELERY_SCALE, choices=("demo", "district"))
    parser.add_argument("--no-embedded", action="store_true", help="only the 1 vs 2 worker runs")
    args = parser.parse_args(argv)
    from bench.common import format_table

    rows = run(
        days=MONTH_DAYS if args.full_month else args.days,
        scale=args.scale,
        celery=not args.no_celery,
        celery_scale=args.celery_scale,
        embedded=not args.no_embedded,
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
