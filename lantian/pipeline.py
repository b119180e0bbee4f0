"""The pipeline's steps: each reads its inputs, calls the pure rules, and replaces its partition.

The DAG files in ``dags/`` only wire these together; the demo and the tests call the same steps
through those DAGs. Every step is idempotent: it replaces a whole (day, stream) partition in one
transaction, so a retry, a backfill or a day recomputed after late data leaves exactly one copy.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lantian import settings

log = logging.getLogger("lantian.pipeline")

#: stream -> the loaded frames it validates (validation/load.py), each with its suite
STREAM_FRAMES = {
    "cems": (("measurements", "cems"),),
    "ambient": (("measurements", "ambient"),),
    "vapor": (("refuellings", "vapor"), ("tank_pressure", "vapor_tank")),
    "rsd": (("rsd_passes", "rsd"),),
}
#: frame -> warehouse table it lands in once validated
FRAME_TABLES = {
    "measurements": "measurements",
    "refuellings": "refuellings",
    "tank_pressure": "tank_pressure",
    "rsd_passes": "rsd_passes",
}


@dataclass
class StepResult:
    step: str
    day: str
    stream: str = ""
    rows_in: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    rows_out: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def warehouse():
    from enforcement.warehouse import Warehouse

    return Warehouse(settings.warehouse_url())


def landing_index():
    from ingest.landing import LandingIndex

    return LandingIndex(settings.landing_index_url(), settings.landing_root())


def sync_registry() -> dict[str, int]:
    """Load the bureau's registry files into the warehouse (whole-table replace)."""
    counts = warehouse().load_registry(settings.registry_dir())
    log.info("registry loaded: %s", counts)
    return counts


def registry_frames(wh) -> dict[str, Any]:
    from enforcement.warehouse_schema import REGISTRY_TABLES

    return {name: wh.read(name) for name in REGISTRY_TABLES}


def validate_day(stream: str, day: str, run_id: str = "", *, docs: bool = True) -> dict[str, Any]:
    """Load one stream's landed readings of a Beijing day, validate them, store curated rows.

    ``docs=False`` skips rendering the GX Data Docs (about half a second a partition, nothing
    the warehouse keeps): for backfills and test runs over many days."""
    from validation.load import load_day
    from validation.run import raise_if_critical, validate_partition

    run_id = run_id or f"manual-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    wh = warehouse()
    loaded = load_day(landing_index(), day, streams=(stream,))
    registry = registry_frames(wh)
    docs_dir = settings.out_dir() / "data-docs" if docs else None
    result = StepResult("validate", day, stream)
    outcomes = []
    for frame_name, suite in STREAM_FRAMES[stream]:
        frame = loaded.frames[frame_name]
        if "stream" in frame.columns:
            frame = frame[frame["stream"] == stream]
        outcome = validate_partition(
            suite, frame, registry, run_id=run_id, day=day, docs_dir=docs_dir
        )
        outcomes.append(outcome)
        table = FRAME_TABLES[frame_name]
        if table == "measurements":
            written = wh.replace(table, outcome.valid, day=day, stream=stream)
        else:
            written = wh.replace(table, outcome.valid, day=day)
        result.rows_in += len(frame)
        # quarantined rows are never valid: the count needs no copy of the valid frame
        result.rows_valid += int(outcome.rows["valid"].sum()) if len(outcome.rows) else 0
        result.rows_quarantined += len(outcome.quarantine)
        result.rows_out += written
    quarantine = _concat([o.quarantine for o in outcomes])
    if len(quarantine):
        # the partition key: a retry must find and replace every row this step wrote
        quarantine = quarantine.assign(stream=stream)
    results = _concat([o.results for o in outcomes])
    wh.replace("quarantine", quarantine, day=day, stream=stream)
    if len(results):
        results = results.assign(stream=stream)
    wh.replace("validation_results", results, day=day, stream=stream)
    _record_partition(wh, day, stream, run_id, loaded, result)
    log.info(
        "validated %s %s: %d rows in, %d valid, %d quarantined (%d batches, %d duplicate readings)",
        stream,
        day,
        result.rows_in,
        result.rows_valid,
        result.rows_quarantined,
        loaded.n_batches,
        loaded.n_duplicates,
    )
    for outcome in outcomes:
        raise_if_critical(outcome)
    return result.as_dict()


def cems_day(day: str) -> dict[str, Any]:
    """Hourly means (HJ 75) and exceedances for every stack on one Beijing day."""
    from enforcement.cems import exceedances, hourly_means

    wh = warehouse()
    minutes = wh.read("measurements", day=day, stream="cems", cn="2051")
    stacks = wh.read("stacks")
    hourly = hourly_means(minutes, stacks)
    wh.replace("cems_hourly", hourly, day=day)
    found = exceedances(hourly, stacks, wh.read("stack_limits"))
    found = _with_evidence(found, minutes, wh)
    wh.replace("exceedances", found, day=day)
    log.info("cems %s: %d stack-hours, %d exceedances", day, len(hourly), len(found))
    return StepResult("cems", day, "cems", len(minutes), rows_out=len(found)).as_dict()


def _with_evidence(found, minutes, wh):
    """Attach the raw-frame hashes behind each exceedance and the enterprise's subdistrict."""
    if found.empty:
        return found
    sha_by_reading = dict(zip(minutes["reading_id"], minutes["raw_sha256"], strict=False))
    found = found.copy()
    found["raw_sha256s"] = found["reading_ids"].map(
        lambda ids: sorted({sha_by_reading[i] for i in ids if i in sha_by_reading})
    )
    enterprises = wh.read("enterprises")[["enterprise_id", "subdistrict_id"]]
    if "subdistrict_id" in found.columns:
        found = found.drop(columns=["subdistrict_id"])
    return found.merge(enterprises, on="enterprise_id", how="left")


def monthly_report(month: str, out: Path | None = None) -> dict[str, Any]:
    """Write the bureau's monthly report for ``month`` (``YYYY-MM``)."""
    from reports.data import load_report_data
    from reports.monthly import build_report

    out = Path(out) if out else settings.out_dir() / "reports" / month
    data = load_report_data(warehouse(), month)
    paths = build_report(month, data, out)
    log.info("monthly report %s written to %s", month, out)
    return (
        {k: str(v) for k, v in asdict(paths).items()}
        if hasattr(paths, "__dataclass_fields__")
        else {"out": str(out)}
    )


def _concat(frames):
    import pandas as pd

    frames = [f for f in frames if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _record_partition(wh, day, stream, run_id, loaded, result: StepResult) -> None:
    import pandas as pd

    row = pd.DataFrame(
        [
            {
                "day": day,
                "stream": stream,
                "run_id": run_id,
                "landed_seq_max": loaded.landed_seq_max,
                "n_batches": loaded.n_batches,
                "n_readings": loaded.n_readings,
                "n_valid": result.rows_valid,
                "n_quarantined": result.rows_quarantined,
                "built_at": datetime.now(UTC),
            }
        ]
    )
    wh.replace("partitions", row, day=day, stream=stream)
