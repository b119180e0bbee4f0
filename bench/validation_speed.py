"""How fast a partition goes through validation, and does a month fit in 10 minutes?

``run(rows=...)`` builds a synthetic micro-station day in long form (one row per reading and code,
11 codes a reading, 1440 minute records per station, a few bad rows) and a synthetic stack day
(40 stacks, 7 codes, with O2), then measures in the same run:

- ``validate_partition`` (derive + GX suites + quarantine + validity: every row's verdict in
  ``outcome.rows``) at ``rows``, giving rows per second, and on 1100 rows, giving the fixed cost
  of a partition; then, apart, the first read of ``outcome.valid`` (the copy of the rows not
  quarantined, built on first read: a caller that writes them pays it);
- a plain pandas pass over the same checks (the same derived batches, each expectation of the
  suites evaluated as a pandas mask, the same reasons and validity, the valid rows as a mask):
  the baseline;
- the stack day through ``validate_partition`` (CEMS has its own suite: O2, seven codes);
- ``parallel``: one ambient day in one worker process, then one in each of two at once
  (alternating, best of ``repeats``): the wall speed-up, and the CPU seconds of a day in two
  processes against one (1.0 = the processes do not slow each other: no lock, no memory-bandwidth
  contention);
- ``month``: the whole month, **measured**: two worker processes validate 15 ambient and 15
  stack day partitions each, back to back through one context, timed from a common start with
  the GX import, context and suites included (building the synthetic days is not timed; each
  worker validates its own ambient and stack day again for every day of its share).

The month: 300 micro-stations (11 codes) and 40 stacks (7 codes of minute data) send
(300 + 40) x 1440 x 30 = 14.7 million minute readings, 154 million long-form rows, 30 ambient and
30 CEMS day partitions. Rows say how their month figure was obtained: ``MEASURED`` (the month
run above: its wall time, and the busier worker's CPU seconds, which is the wall time two free
cores would need) or ``EXTRAPOLATED`` (30 x (seconds per ambient row x rows of an ambient day +
seconds of the measured stack day), one process, wall or CPU). Each way is timed ``repeats``
times, alternating, and its best time kept (the machine is shared with other work).
``days`` > 0 also validates that many distinct full-size ambient days back to back through one
context (each built before its timer starts) and reports their mean, a check that the per-day cost
holds from day to day (no growth in the context or memory).

Worker processes start their own session (``own_session``): Linux groups a session's processes
for scheduling (autogroup, on here), so on a machine busy with other sessions two workers of one
session share one session's slice of the cores and cannot run faster than one; measured with both
settings, see docs/validation.md.

Each returned row: ``{name, value, unit, baseline, ratio, target, met}``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import row

#: ``python -m bench --quick`` sizes; the default is one full day of the month below.
QUICK = {"rows": 100_000, "parallel": False, "repeats": 1, "days": 0, "month": False}
TIMEOUT_S = 1800
MONTH_DAYS = 30
STATIONS, STATION_CODES = 300, 11
STACKS, STACK_CODES = 40, 7
MINUTES = 1440
TARGET_MINUTES = 10.0
AMBIENT = {  # code -> (unit, level, relative noise)
    "a34004": ("ug/m3", 70.0, 0.06),
    "a34002": ("ug/m3", 110.0, 0.06),
    "a21026": ("ug/m3", 18.0, 0.1),
    "a21004": ("ug/m3", 45.0, 0.08),
    "a21005": ("mg/m3", 1.1, 0.08),
    "a05024": ("ug/m3", 40.0, 0.1),
    "a01001": ("degC", 4.0, 0.1),
    "a01002": ("%", 50.0, 0.05),
    "a01006": ("kPa", 101.6, 0.002),
    "a01007": ("m/s", 2.5, 0.1),
    "a01008": ("deg", 180.0, 0.2),
}
STACK = {  # code -> (unit, level, relative noise): a coal boiler's minute data
    "a34013": ("mg/m3", 8.0, 0.1),
    "a21026": ("mg/m3", 30.0, 0.08),
    "a21002": ("mg/m3", 45.0, 0.08),
    "a19001": ("%", 9.0, 0.03),
    "a01011": ("m/s", 12.0, 0.05),
    "a01012": ("degC", 110.0, 0.02),
    "a01013": ("kPa", 0.3, 0.1),
}


def month_readings() -> int:
    return (STATIONS + STACKS) * MINUTES * MONTH_DAYS


def month_rows() -> int:
    return (STATIONS * STATION_CODES + STACKS * STACK_CODES) * MINUTES * MONTH_DAYS


def synthetic_day(
    rows: int, seed: int = 7, stream: str = "ambient"
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """About ``rows`` long-form rows of one Beijing day (``ambient`` micro-stations or ``cems``
    stacks), as validation/load.py gives them."""
    rng = np.random.default_rng(seed)
    profile = AMBIENT if stream == "ambient" else STACK
    codes = list(profile)
    readings = max(rows // len(codes), 1)
    most = STATIONS if stream == "ambient" else STACKS
    stations = min(most, max(1, readings // MINUTES + 1))
    device = np.arange(readings) % stations
    minute = np.arange(readings) // stations
    start = datetime(2017, 11, 14, 16, tzinfo=UTC)
    data_time = pd.Timestamp(start) + pd.to_timedelta(minute, unit="min")
    prefix = "4101052200000000000" if stream == "ambient" else "4101053100000000000"
    device_ids = np.array([f"{prefix}{d:05d}" for d in range(stations)])
    reading_ids = pd.Series(
        [f"{d:08x}{m:024x}" for d, m in zip(device, minute, strict=True)], dtype="str"
    )
    n = readings * len(codes)
    rep = np.repeat(np.arange(readings), len(codes))
    code = np.tile(np.array(codes), readings)
    level = np.tile(np.array([profile[c][1] for c in codes]), readings)
    noise = np.tile(np.array([profile[c][2] for c in codes]), readings)
    avg = np.round(level * (1 + noise * rng.standard_normal(n)), 2)
    flag = np.full(n, "N", dtype=object)
    flag[rng.random(n) < 0.01] = "M"  # maintenance minutes
    bad = rng.choice(n, size=max(n // 20000, 1), replace=False)
    avg[bad] = -999.0  # field garbage: 1 row in 20 000 is quarantined
    frame = pd.DataFrame(
        {
            "reading_id": reading_ids.to_numpy()[rep],
            "batch_id": "b" * 32,
            "device_id": device_ids[device][rep],
            "stream": stream,
            "cn": "2051",
            "data_time": data_time[rep],
            "received_at": (data_time + pd.Timedelta(seconds=63))[rep],
            "day": "2017-11-15",
            "code": code,
            "rtd": np.nan,
            "avg": avg,
            "min": np.nan,
            "max": np.nan,
            "cou": np.nan,
            "zs_rtd": np.nan,
            "zs_avg": np.nan,
            "flag": flag,
            "unit": np.tile(np.array([profile[c][0] for c in codes]), readings),
            "raw_sha256": "f" * 64,
            "clock_drift": False,
            "clock_jump": False,
            "device_offset_s": 0.0,
        }
    )
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("str")
    frame["data_time"] = frame["data_time"].astype("datetime64[ns, UTC]")
    frame["received_at"] = frame["received_at"].astype("datetime64[ns, UTC]")
    registry = {
        "devices": pd.DataFrame(
            {
                "device_id": device_ids,
                "family": stream,
                "stream": stream,
                "install_date": "2017-09-01",
            }
        )
    }
    return frame, registry


# --- the plain pandas pass ------------------------------------------------------------------------


def _mask(expectation, frame: pd.DataFrame) -> np.ndarray:
    """Rows failing one expectation of the suite, evaluated with pandas alone."""
    from validation.expectations import (
        ExpectALRatioInRangeWhenFuelDispensed,
        ExpectColumnValuesPresentForCommands,
        ExpectColumnValuesWithinRowBounds,
        ExpectO2WithinRangeWhenConcentrationPresent,
        al_ok_when_fuel,
        o2_ok_when_concentration,
        present_for_commands,
        within_row_bounds,
    )

    kind = type(expectation).__name__
    scope = np.ones(len(frame), dtype=bool)
    condition = getattr(expectation, "row_condition", None)
    if condition:
        text = getattr(condition, "pass_through_filter", condition)
        scope = frame.eval(text).to_numpy()
    if isinstance(expectation, ExpectColumnValuesWithinRowBounds):
        value, low, high = (frame[c] for c in expectation.column_list)
        return ~within_row_bounds(value, low, high).to_numpy()
    if isinstance(expectation, ExpectColumnValuesPresentForCommands):
        ok = present_for_commands(
            frame[expectation.column_A], frame[expectation.column_B], expectation.commands
        )
        return ~ok.to_numpy()
    if isinstance(expectation, ExpectO2WithinRangeWhenConcentrationPresent):
        ok = o2_ok_when_concentration(
            frame[expectation.column_A],
            frame[expectation.column_B],
            expectation.min_value,
            expectation.max_value,
        )
        return ~ok.to_numpy()
    if isinstance(expectation, ExpectALRatioInRangeWhenFuelDispensed):
        ok = al_ok_when_fuel(
            frame[expectation.column_A],
            frame[expectation.column_B],
            expectation.min_value,
            expectation.max_value,
            expectation.fuel_min,
        )
        return ~ok.to_numpy()
    column = frame[expectation.column]
    if kind == "ExpectColumnValuesToBeInSet":
        return (column.notna() & ~column.isin(expectation.value_set)).to_numpy() & scope
    if kind == "ExpectColumnValuesToNotBeNull":
        return column.isna().to_numpy() & scope
    if kind == "ExpectColumnValuesToBeBetween":
        low = -np.inf if expectation.min_value is None else expectation.min_value
        high = np.inf if expectation.max_value is None else expectation.max_value
        values = pd.to_numeric(column, errors="coerce")
        return (values.notna() & ~values.between(low, high)).to_numpy() & scope
    if kind == "ExpectColumnValueLengthsToBeBetween":
        return (column.notna() & (column.str.len() < expectation.min_value)).to_numpy() & scope
    raise ValueError(f"no pandas version of {kind}")


def pandas_partition(stream: str, frame: pd.DataFrame, registry: dict, rules) -> pd.DataFrame:
    """The same checks as validate_partition, without GX: every row with validity and
    ``quarantined``.

    Same derived batches (readings and values), each row-level critical expectation as a pandas
    mask on its batch, reading verdicts spread over their rows, the same reasons and validity.
    """
    from validation.derive import FLAG_COLUMN, derive_parts
    from validation.suites import spec_part, specs
    from validation.validity import assign_validity

    derived = derive_parts(stream, frame, registry, rules)
    inputs = frame.reset_index(drop=True)
    reasons: dict[int, str] = {}
    for spec in specs(stream, rules):
        if spec.level != "row" or spec.severity != "critical":
            continue
        if spec_part(stream, spec) == "reading":
            runs = np.flatnonzero(_mask(spec.expectation, derived.readings))
            failing = derived.run_rows(runs)
            texts = np.repeat(
                np.asarray(spec.reason(derived.readings.iloc[runs]), dtype=object),
                derived.lengths[runs],
            )
        else:
            failing = np.flatnonzero(_mask(spec.expectation, derived.values))
            texts = spec.reason(derived.values.iloc[failing])
        for r, text in zip(failing.tolist(), texts, strict=True):
            reasons[r] = f"{reasons[r]}; {text}" if r in reasons else text
    bad = np.fromiter(sorted(reasons), dtype="int64", count=len(reasons))
    rows = assign_validity(
        inputs,
        stream,
        rules,
        quarantine_reason=pd.Series(
            [reasons[r] for r in bad.tolist()], index=inputs.index[bad], dtype="object"
        ),
        flags=derived.values[FLAG_COLUMN].array if FLAG_COLUMN in derived.values else None,
    )
    quarantined = np.zeros(len(rows), dtype=bool)
    quarantined[bad] = True
    rows["quarantined"] = quarantined  # the valid rows as a mask, as validate_partition gives them
    return rows


# --- measuring ------------------------------------------------------------------------------------


def _thread_wait_s() -> float:
    """Seconds this process's live threads spent runnable but waiting for a core
    (/proc schedstat: the share of wall time the other work on the machine took)."""
    total = 0
    for stat in Path("/proc/self/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(stat.read_text().split()[1])
    return total / 1e9


def _watch_parent(parent: int) -> None:
    """Leave when the parent is gone: a worker in its own session is outside the process group
    the bench runner stops on a timeout."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(3)


def _worker(
    plan: list[str], rows: int, seed: int, own_session: bool, cold: bool, barrier, results
) -> None:
    """Validate the partitions of ``plan`` (``ambient`` / ``cems``) back to back through one
    context, timing from the barrier; ``cold``: GX import, context and suites inside the timing
    (else built before it, on a small partition), data building never."""
    if own_session:
        parent = os.getppid()
        os.setsid()
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    frames = {}
    if "ambient" in plan:
        frames["ambient"] = synthetic_day(rows, seed)
    if "cems" in plan:
        frames["cems"] = synthetic_day(STACKS * STACK_CODES * MINUTES, seed + 50, stream="cems")
    if not cold:
        context = _warm_context(frames)
    barrier.wait()
    begin, cpu, wait = time.perf_counter(), time.process_time(), _thread_wait_s()
    from validation.context import ValidationContext
    from validation.run import validate_partition

    if cold:
        context = ValidationContext()
    n_rows = 0
    for i, stream in enumerate(plan):
        frame, registry = frames[stream]
        outcome = validate_partition(
            stream, frame, registry, run_id="bench", day=f"day-{i}", context=context
        )
        n_rows += len(outcome.rows)
    results.put(
        {
            "seed": seed,
            "wall": time.perf_counter() - begin,
            "cpu": time.process_time() - cpu,
            "wait": _thread_wait_s() - wait,
            "rows": n_rows,
        }
    )


def _warm_context(frames: dict):
    """A context whose suites are built, as after a task's first partition."""
    from validation.context import ValidationContext
    from validation.run import validate_partition

    context = ValidationContext()
    for stream, (frame, registry) in frames.items():
        validate_partition(
            stream, frame.iloc[:1100], registry, run_id="bench", day="warm", context=context
        )
    return context


def processes(
    plans: list[list[str]],
    rows: int,
    own_session: bool = True,
    cold: bool = True,
    timeout_s: float = 1500.0,
) -> dict:
    """Run one worker per plan at once; wall time from the common start to the last worker's end,
    with each worker's wall, CPU and run-queue wait."""
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(len(plans) + 1), spawn.Queue()
    workers = [
        spawn.Process(target=_worker, args=(plan, rows, 1 + i, own_session, cold, barrier, results))
        for i, plan in enumerate(plans)
    ]
    for w in workers:
        w.start()
    try:
        barrier.wait(timeout=timeout_s)
        load = _load()
        begin = time.perf_counter()
        got = [results.get(timeout=timeout_s) for _ in workers]
        return {"wall": time.perf_counter() - begin, "load": load, "workers": got}
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.terminate()


def _load() -> float:
    return os.getloadavg()[0]


def _loads(values: list[float]) -> str:
    return f"load {min(values):.1f}-{max(values):.1f}"


def run(
    rows: int = 5_155_200,
    parallel: bool = True,
    repeats: int = 2,
    days: int = 0,
    month: bool = True,
    own_session: bool = True,
) -> list[dict]:
    """See the module docstring. ``month``: validate a whole month (60 day partitions) in two
    processes; ``own_session``: each worker process in its own session (see ``processes``)."""
    from schemas.validation_rules import load_rules
    from validation.context import ValidationContext
    from validation.run import validate_partition

    rules = load_rules()
    context = ValidationContext()
    frame, registry = synthetic_day(rows)
    stack_rows = STACKS * STACK_CODES * MINUTES
    stacks, stack_registry = synthetic_day(stack_rows, seed=11, stream="cems")
    tiny = frame.iloc[:1100]

    def gx(stream, part, reg):
        return validate_partition(
            stream, part, reg, run_id="bench", day="2017-11-15", context=context
        )

    gx("ambient", tiny, registry)  # the suites are built once per process, as in a task
    gx("cems", stacks.iloc[:700], stack_registry)
    # the machine is shared: alternate the ways and keep each one's best time
    gx_times, pd_times, fixed_times, stack_times, copy_times, loads = [], [], [], [], [], []
    gx_cpu, pd_cpu, stack_cpu = [], [], []
    for _ in range(repeats):
        loads.append(_load())
        begin, cpu = time.perf_counter(), time.process_time()
        outcome = gx("ambient", frame, registry)
        gx_times.append(time.perf_counter() - begin)
        gx_cpu.append(time.process_time() - cpu)
        begin = time.perf_counter()
        n_valid = len(outcome.valid)  # the valid frame is built on first read
        copy_times.append(time.perf_counter() - begin)
        begin, cpu = time.perf_counter(), time.process_time()
        plain = pandas_partition("ambient", frame, registry, rules)
        pd_times.append(time.perf_counter() - begin)
        pd_cpu.append(time.process_time() - cpu)
        begin = time.perf_counter()
        gx("ambient", tiny, registry)
        fixed_times.append(time.perf_counter() - begin)
        begin, cpu = time.perf_counter(), time.process_time()
        stack_outcome = gx("cems", stacks, stack_registry)
        stack_times.append(time.perf_counter() - begin)
        stack_cpu.append(time.process_time() - cpu)
    loads.append(_load())
    assert int((~plain["quarantined"]).sum()) == n_valid, "the pandas pass must keep the same rows"
    assert len(stack_outcome.valid) + len(stack_outcome.quarantine) == len(stacks)
    t_gx, t_pd, t_fixed, t_stack = min(gx_times), min(pd_times), min(fixed_times), min(stack_times)
    n_rows = len(frame)
    # the workers below need the memory (``tiny`` is a view: it would keep the day alive)
    del frame, tiny, outcome, plain, stacks, stack_outcome

    day_times = []
    for day in range(days):
        other, other_registry = synthetic_day(rows, seed=100 + day)
        begin = time.perf_counter()
        gx("ambient", other, other_registry)
        day_times.append(time.perf_counter() - begin)
        del other

    ambient_day_rows = STATIONS * STATION_CODES * MINUTES
    # per-row cost measured at ``rows``, scaled to an ambient day, plus the measured stack day
    gx_day = t_gx * ambient_day_rows / n_rows + t_stack
    pd_day = t_pd * ambient_day_rows / n_rows + t_stack
    one_gx, one_pd = MONTH_DAYS * gx_day / 60, MONTH_DAYS * pd_day / 60
    need_rate = month_rows() / (TARGET_MINUTES * 60)
    gx_rate, pd_rate = n_rows / t_gx, n_rows / t_pd
    extrapolated = (
        f"month of {month_readings() / 1e6:.1f} M readings ({month_rows() / 1e6:.0f} M rows) "
        "EXTRAPOLATED as 30 x (one ambient day + one stack day) measured"
    )
    out = [
        row(
            f"validate_partition throughput, one process ({n_rows} rows, best of {repeats}, "
            f"{_loads(loads)}; valid frame not built)",
            gx_rate,
            "rows/s",
            baseline=pd_rate,
            target=round(need_rate),
            met=gx_rate >= need_rate,
            digits=0,
        ),
        row(
            f"building outcome.valid on first read ({n_rows} rows; paid by a caller that "
            "reads it, e.g. the warehouse write)",
            min(copy_times),
            "s",
            baseline=None,
            target=None,
            met=True,
            digits=2,
            baseline_note="a cost apart: the pandas pass gives its valid rows as a mask too",
        ),
        row(
            f"stack day ({stack_rows} cems rows) through validate_partition",
            t_stack,
            "s",
            baseline=None,
            target=None,
            met=True,
            digits=2,
            baseline_note="the pandas pass is run on the ambient day only",
        ),
        row(
            "fixed cost of a partition (1100 rows)",
            t_fixed,
            "s",
            baseline=None,
            target=None,
            met=True,
            digits=2,
            baseline_note="two GX runs a partition: a cost GX adds, none in the pandas pass",
        ),
        row(
            f"{extrapolated}, one process, wall",
            one_gx,
            "min",
            baseline=one_pd,
            target=TARGET_MINUTES,
            met=one_gx <= TARGET_MINUTES,
        ),
    ]
    # the same extrapolation from CPU seconds: what the month costs one core of its own (the
    # machine is shared, so wall time also holds other work's share of the cores)
    cpu_day = min(gx_cpu) * ambient_day_rows / n_rows + min(stack_cpu)
    cpu_pd_day = min(pd_cpu) * ambient_day_rows / n_rows + min(stack_cpu)
    out.append(
        row(
            f"{extrapolated}, one process, CPU seconds",
            MONTH_DAYS * cpu_day / 60,
            "min",
            baseline=MONTH_DAYS * cpu_pd_day / 60,
            target=TARGET_MINUTES,
            met=MONTH_DAYS * cpu_day / 60 <= TARGET_MINUTES,
        )
    )
    if day_times:
        mean = sum(day_times) / len(day_times)
        out.append(
            row(
                f"{len(day_times)} more distinct ambient days back to back: mean s per day "
                f"(max {max(day_times):.1f} s)",
                mean,
                "s",
                baseline=t_gx,
                target=None,
                met=True,
                digits=2,
            )
        )
    if parallel:
        out.extend(_parallel_rows(rows, repeats, own_session))
    if month:
        out.extend(_month_rows(own_session))
    return out


def _parallel_rows(rows: int, repeats: int, own_session: bool) -> list[dict]:
    """One ambient day in one worker, then one in each of two workers, alternating."""
    ones, twos = [], []
    for _ in range(repeats):
        ones.append(processes([["ambient"]], rows, own_session, cold=False))
        twos.append(processes([["ambient"], ["ambient"]], rows, own_session, cold=False))
    one = min(ones, key=lambda r: r["wall"])
    two = min(twos, key=lambda r: r["wall"])
    one_cpu = min(r["workers"][0]["cpu"] for r in ones)
    two_cpu = max(w["cpu"] for w in two["workers"])
    waited = sum(w["wait"] for w in two["workers"]) / sum(w["wall"] for w in two["workers"])
    loads = _loads([r["load"] for r in ones + twos])
    session = "each worker its own session" if own_session else "workers in one session"
    return [
        row(
            f"speed-up of two ambient days in two processes, wall ({session}, suites built "
            f"before the timing, best of {repeats}, "
            f"{loads}; the workers waited for a core {waited:.0%} of their time)",
            2 * one["wall"] / two["wall"],
            "x",
            baseline=1.0,
            # 2.0 is the ceiling of two cores; at least 1.5 counts as scaling
            target=1.5,
            met=2 * one["wall"] / two["wall"] >= 1.5,
            digits=2,
        ),
        row(
            "CPU seconds of an ambient day: in two processes / in one (1.0 = nothing shared "
            "slows the processes down: no lock, no memory-bandwidth contention)",
            two_cpu / one_cpu,
            "x",
            baseline=1.0,
            # at most: up to 20 % more CPU per day in two processes is noise, not contention
            target=1.2,
            met=two_cpu / one_cpu <= 1.2,
            digits=2,
        ),
    ]


def _month_rows(own_session: bool) -> list[dict]:
    """The whole month, measured at its own sizes: 30 ambient days (300 stations x 11 codes x
    1440 minutes) and 30 stack days (40 x 7 x 1440) validated back to back in two processes
    (15 + 15 each; each worker validates its own synthetic ambient and stack day again for every
    day of its share)."""
    share = ["ambient", "cems"] * (MONTH_DAYS // 2)
    result = processes([share, share], STATIONS * STATION_CODES * MINUTES, own_session)
    wall = result["wall"] / 60
    cpu = max(w["cpu"] for w in result["workers"]) / 60
    waited = sum(w["wait"] for w in result["workers"]) / sum(w["wall"] for w in result["workers"])
    n = sum(w["rows"] for w in result["workers"])
    assert n == month_rows(), (n, month_rows())
    name = (
        f"month MEASURED: {2 * len(share)} day partitions ({n / 1e6:.0f} M rows, "
        f"{month_readings() / 1e6:.1f} M readings) validated in two processes, GX import and "
        f"context included"
    )
    note = "no baseline: the plain pandas pass is compared per day (first row), not over a month"
    return [
        row(
            f"{name}, wall (load {result['load']:.1f} at start; the workers waited for a core "
            f"{waited:.0%} of their time)",
            wall,
            "min",
            baseline=None,
            target=TARGET_MINUTES,
            met=wall <= TARGET_MINUTES,
            baseline_note=note,
        ),
        row(
            f"{name}, the busier worker's CPU seconds (= its wall time with a core of its own)",
            cpu,
            "min",
            baseline=None,
            target=TARGET_MINUTES,
            met=cpu <= TARGET_MINUTES,
            baseline_note=note,
        ),
    ]


if __name__ == "__main__":
    import sys

    for result in run(int(sys.argv[1])) if len(sys.argv) > 1 else run():
        print(result)
