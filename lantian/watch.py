"""Health checks over the warehouse, the landing index and the boxes' heartbeats.

``run_checks(now)`` answers "does anything need a data engineer right now?" with a list of
:class:`Finding`. The DAG ``lantian_watch`` runs it hourly and hands the findings to
``lantian.notify.notify_findings``. Each check is a pure function over small DataFrames (tested
without Airflow or a database); ``run_checks`` only reads their inputs. The thresholds are data in
``schemas/data/operations.toml``.

| finding | from | runbook |
| --- | --- | --- |
| ``silent_device`` | no landed data for N hours (per stream) from a device active in the registry | silent-device |
| ``silent_subdistrict`` | every micro-station of a subdistrict silent | silent-subdistrict |
| ``box_silent`` | a box's last heartbeat too old | silent-device |
| ``backlog_rising`` / ``unsent_too_old`` | a box's queue growing, or its oldest unsent reading too old | backlog-growing |
| ``disk_low`` | a box's free disk under the floor | full-disk |
| ``quality_critical`` | a partition's critical validation failed | data-quality-failure |
| ``quarantine_share`` | a partition passed but quarantined a large share | data-quality-failure |
| ``late_data`` | batches landed for a day after it was built (a replayed backlog) | replayed-backlog |
| ``check_failed`` | a check could not run (its source is unreachable) | watch-failed |

A device's "last data" is, per batch, the earlier of its last data time and its landing time,
then the latest over its batches: a replayed backlog (old data landing now) does not make a dead
device look alive, and a clock running ahead does not either.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pandas as pd
import sqlalchemy as sa

from schemas.operations import WatchThresholds, watch_thresholds

log = logging.getLogger("lantian.watch")

BEIJING = timezone(timedelta(hours=8))


@dataclass
class Finding:
    """One thing that needs a data engineer. ``key`` identifies it across runs (deduplication)."""

    kind: str
    subject: str
    summary: str
    runbook: str
    severity: str = "warning"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}


# -- small helpers ----------------------------------------------------------------------------


def _ts(value: Any) -> pd.Timestamp | None:
    """An aware UTC timestamp, or None for a missing or unreadable value."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if pd.isna(stamp):
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def utc_series(values: pd.Series) -> pd.Series:
    """ISO strings (any offset) or datetimes as aware UTC timestamps; unreadable → NaT."""
    if len(values) == 0:
        return pd.Series(pd.DatetimeIndex([], tz="UTC"), index=values.index)
    return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")


def _bj(stamp: Any) -> str:
    stamp = _ts(stamp)
    return "never" if stamp is None else stamp.tz_convert(BEIJING).strftime("%Y-%m-%d %H:%M")


def _iso(stamp: Any) -> str | None:
    stamp = _ts(stamp)
    return None if stamp is None else stamp.isoformat()


def _error_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _hours(delta: pd.Timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


def _plain(value: Any) -> Any:
    """JSON-safe scalars (numpy numbers → Python, NaN → None)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def day_bounds(day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC instants bounding a Beijing calendar day (as validation.load reads it)."""
    start = datetime.combine(date.fromisoformat(day), time(0), tzinfo=BEIJING)
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(
        start + timedelta(days=1)
    ).tz_convert("UTC")


def recent_days(now: datetime, n: int) -> list[str]:
    """The last ``n`` Beijing days up to and including the one ``now`` falls in, newest first."""
    today = now.astimezone(BEIJING).date()
    return [(today - timedelta(days=i)).isoformat() for i in range(max(n, 0))]


# -- silent devices and subdistricts ----------------------------------------------------------


def silent_devices(
    devices: pd.DataFrame,
    last_seen: pd.DataFrame,
    now: datetime,
    hours_by_stream: Mapping[str, float],
    *,
    lookback_hours: float | None = None,
    heartbeats_last: pd.DataFrame | None = None,
) -> list[Finding]:
    """Devices active in the registry with no landed data for their stream's silence limit.

    ``devices``: ``device_id``, ``stream``, ``since`` (UTC; when the device became due — its
    installation or registration; NaT = unknown, due). ``last_seen``: ``device_id``,
    ``last_evidence`` (UTC; see the module docstring), optionally ``last_data_time`` and
    ``last_landed_at``. A device absent from ``last_seen`` sent nothing within ``lookback_hours``.
    ``heartbeats_last`` (``device_id``, ``received_at``) turns into a hint: box alive or not.
    """
    now_ts = _ts(now)
    seen = last_seen.set_index("device_id") if len(last_seen) else pd.DataFrame()
    beats = (
        heartbeats_last.groupby("device_id")["received_at"].max()
        if heartbeats_last is not None and len(heartbeats_last)
        else pd.Series(dtype="datetime64[ns, UTC]")
    )
    found = []
    for row in devices.sort_values("device_id").itertuples(index=False):
        limit = hours_by_stream.get(row.stream)
        if limit is None:
            continue
        cutoff = now_ts - pd.Timedelta(hours=float(limit))
        evidence = _ts(seen["last_evidence"].get(row.device_id)) if len(seen) else None
        if evidence is not None:
            evidence = min(evidence, now_ts)
            if evidence >= cutoff:
                continue
            silent_for = now_ts - evidence
            what = f"last data {_bj(evidence)} Beijing, {_hours(silent_for):g} h ago"
        else:
            since = _ts(getattr(row, "since", None))
            if since is not None and since > cutoff:
                continue  # installed or registered too recently to be due
            what = (
                f"no data in the last {lookback_hours:g} h" if lookback_hours else "no data landed"
            )
        details = {
            "device_id": row.device_id,
            "stream": row.stream,
            "limit_hours": float(limit),
            "last_data": _iso(evidence),
            "hours_silent": _hours(now_ts - evidence) if evidence is not None else None,
        }
        beat = _ts(beats.get(row.device_id)) if len(beats) else None
        if beat is not None and now_ts - beat <= pd.Timedelta(hours=float(limit)):
            details["hint"] = (
                f"its box sent a heartbeat at {_bj(beat)}: the box is up, look at the logger, "
                "the serial port and the agent's log"
            )
        elif beat is not None:
            details["hint"] = f"its box's last heartbeat was {_bj(beat)}: box or network down"
        else:
            details["hint"] = "no heartbeat from its box in the watch window"
        found.append(
            Finding(
                "silent_device",
                row.device_id,
                f"{row.stream} device {row.device_id} silent: {what} (limit {float(limit):g} h)",
                "silent-device",
                details=details,
            )
        )
    return found


def silent_subdistricts(
    stations: pd.DataFrame,
    silent_device_ids: Iterable[str],
    names: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Subdistricts whose every micro-station (with a device) is silent: no AQI for the area."""
    silent = set(silent_device_ids)
    names = names or {}
    rows = stations[stations["device_id"].fillna("").astype(str).str.strip() != ""]
    found = []
    for subdistrict, group in rows.groupby("subdistrict_id", sort=True):
        ids = sorted(set(group["device_id"].astype(str)))
        if ids and all(d in silent for d in ids):
            name = names.get(subdistrict, "")
            label = f"{subdistrict} {name}".strip()
            found.append(
                Finding(
                    "silent_subdistrict",
                    str(subdistrict),
                    f"subdistrict {label}: all {len(ids)} micro-station(s) silent "
                    f"({', '.join(ids[:5])}{'…' if len(ids) > 5 else ''})",
                    "silent-subdistrict",
                    severity="critical",
                    details={"subdistrict_id": str(subdistrict), "name": name, "devices": ids},
                )
            )
    return found


# -- boxes: backlog, disk, heartbeats ---------------------------------------------------------


def _box_series(rows: pd.DataFrame) -> pd.DataFrame:
    """The heartbeats of one box as one series: the device that reported last speaks for it.

    A box sends one heartbeat per enrolled device with the same box-wide queue figures, so one
    device's series is the box's; the latest reporter is one that is still configured.
    """
    last = rows.groupby("device_id")["received_at"].max()
    device = sorted(last[last == last.max()].index)[0]
    return rows[rows["device_id"] == device].sort_values("received_at")


def box_findings(heartbeats: pd.DataFrame, now: datetime, th: WatchThresholds) -> list[Finding]:
    """Backlog growing, oldest unsent too old, disk low, heartbeats stopped — one box at a time.

    ``heartbeats``: ``device_id``, ``box_id`` (may be empty), ``received_at`` (UTC),
    ``queue_depth``, ``oldest_unsent`` (UTC), ``disk_free_bytes``; optional ``alarms`` (list).
    """
    if heartbeats.empty:
        return []
    now_ts = _ts(now)
    frame = heartbeats.copy()
    box_id = frame.get("box_id", pd.Series("", index=frame.index)).fillna("").astype(str)
    frame["box"] = box_id.where(box_id.str.strip() != "", frame["device_id"].astype(str))
    found: list[Finding] = []
    for box, rows in frame.groupby("box", sort=True):
        series = _box_series(rows)
        latest = series.iloc[-1]
        devices = sorted(rows["device_id"].astype(str).unique())
        base = {"box": box, "devices": devices, "last_heartbeat": _iso(latest["received_at"])}
        alarms = latest.get("alarms") if "alarms" in series.columns else None
        if isinstance(alarms, list) and alarms:
            base["alarms"] = [str(a) for a in alarms[:10]]
        quiet = now_ts - latest["received_at"]
        if quiet > pd.Timedelta(hours=th.heartbeat_silent_hours):
            found.append(
                Finding(
                    "box_silent",
                    box,
                    f"box {box} sent no heartbeat for {_hours(quiet):g} h (last {_bj(latest['received_at'])} "
                    f"Beijing; devices {', '.join(devices)})",
                    "silent-device",
                    details=base,
                )
            )
            continue  # its last figures are stale: the other checks would repeat old news
        depths = series["queue_depth"].tail(th.rising_heartbeats + 1)
        if (
            len(depths) == th.rising_heartbeats + 1
            and depths.notna().all()
            and bool((depths.diff().iloc[1:] > 0).all())
        ):
            first, last = int(depths.iloc[0]), int(depths.iloc[-1])
            found.append(
                Finding(
                    "backlog_rising",
                    box,
                    f"box {box}: queue grew at each of the last {th.rising_heartbeats} heartbeats "
                    f"({first} → {last} readings waiting)",
                    "backlog-growing",
                    details={**base, "queue_depths": [int(d) for d in depths]},
                )
            )
        oldest = _ts(latest.get("oldest_unsent"))
        if oldest is not None:
            age = latest["received_at"] - oldest
            if age > pd.Timedelta(hours=th.oldest_unsent_hours):
                found.append(
                    Finding(
                        "unsent_too_old",
                        box,
                        f"box {box}: oldest unsent reading is {_hours(age):g} h old "
                        f"(from {_bj(oldest)} Beijing; limit {th.oldest_unsent_hours:g} h; "
                        f"{_plain(latest.get('queue_depth'))} waiting)",
                        "backlog-growing",
                        details={**base, "oldest_unsent": _iso(oldest), "hours": _hours(age)},
                    )
                )
        free = _plain(latest.get("disk_free_bytes"))
        if free is not None and free < th.min_disk_free_bytes:
            found.append(
                Finding(
                    "disk_low",
                    box,
                    f"box {box}: {free / 2**20:.0f} MiB free on its disk "
                    f"(floor {th.min_disk_free_bytes / 2**20:.0f} MiB)",
                    "full-disk",
                    severity="critical" if free < th.min_disk_free_bytes / 4 else "warning",
                    details={**base, "disk_free_bytes": int(free)},
                )
            )
    return found


# -- data quality -----------------------------------------------------------------------------


def _failed(success: pd.Series) -> pd.Series:
    """True where a check explicitly failed (a missing result is not a failure)."""
    return success.map(lambda v: v is not None and v == v and not bool(v))


def quality_findings(
    results: pd.DataFrame, quarantine_share_warn: float, share_min_rows: int
) -> list[Finding]:
    """Failed critical checks per partition, and partitions that passed with a large quarantine.

    ``results``: the warehouse's ``validation_results`` (``day``, ``stream``, ``suite``,
    ``expectation``, ``severity``, ``success``, ``element_count``, ``unexpected_count``).
    """
    if results.empty:
        return []
    found = []
    failed = results[_failed(results["success"]) & (results["severity"] == "critical")]
    for (day, stream), group in failed.groupby(["day", "stream"], sort=True):
        checks = [
            f"{r.suite}.{r.expectation} ({_plain(r.unexpected_count)}/{_plain(r.element_count)})"
            for r in group.sort_values(["suite", "expectation"]).itertuples(index=False)
        ]
        found.append(
            Finding(
                "quality_critical",
                f"{day} {stream}",
                f"{day} {stream}: critical check(s) failed: {', '.join(checks)}",
                "data-quality-failure",
                severity="critical",
                details={"day": day, "stream": stream, "checks": checks},
            )
        )
    shares = results[(results["expectation"] == "quarantine_share") & ~_failed(results["success"])]
    for r in shares.sort_values(["day", "stream", "suite"]).itertuples(index=False):
        rows, bad = _plain(r.element_count) or 0, _plain(r.unexpected_count) or 0
        if rows < share_min_rows or bad / rows <= quarantine_share_warn:
            continue
        found.append(
            Finding(
                "quarantine_share",
                f"{r.day} {r.stream} {r.suite}",
                f"{r.day} {r.stream} ({r.suite}): {bad / rows:.1%} of {rows} rows quarantined "
                f"(watch threshold {quarantine_share_warn:.0%})",
                "data-quality-failure",
                details={
                    "day": r.day,
                    "stream": r.stream,
                    "suite": r.suite,
                    "rows": rows,
                    "quarantined": bad,
                },
            )
        )
    return found


# -- late data (a replayed backlog) -----------------------------------------------------------


def late_data(partitions: pd.DataFrame, batches: pd.DataFrame) -> list[Finding]:
    """Built (day, stream) partitions that batches landed for after they were built.

    ``partitions``: ``day``, ``stream``, ``landed_seq_max`` (the last landing sequence the build
    read), ``run_id``. ``batches``: ``seq``, ``stream``, ``device_id``, ``n_readings``,
    ``first_data_time``, ``last_data_time`` (UTC). A batch belongs to a day as the loader reads
    it: its data span overlaps the Beijing day.
    """
    if partitions.empty or batches.empty:
        return []
    found = []
    for p in partitions.sort_values(["day", "stream"]).itertuples(index=False):
        start, end = day_bounds(p.day)
        built = _plain(p.landed_seq_max) or 0
        late = batches[
            (batches["stream"] == p.stream)
            & (batches["seq"] > built)
            & (batches["first_data_time"] < end)
            & (batches["last_data_time"] >= start)
        ]
        if late.empty:
            continue
        devices = sorted(late["device_id"].astype(str).unique())
        readings = int(late["n_readings"].sum())
        found.append(
            Finding(
                "late_data",
                f"{p.day} {p.stream}",
                f"{p.day} {p.stream}: {len(late)} batch(es) ({readings} readings) from "
                f"{', '.join(devices[:5])}{'…' if len(devices) > 5 else ''} landed after the day "
                f"was built; re-run lantian_daily for {p.day}",
                "replayed-backlog",
                details={
                    "day": p.day,
                    "stream": p.stream,
                    "built_by": str(_plain(p.run_id) or ""),
                    "batches": len(late),
                    "readings": readings,
                    "devices": devices,
                },
            )
        )
    return found


# -- reading the sources ----------------------------------------------------------------------


class Sources:
    """Opens the warehouse and the ingest database (landing index, registry, heartbeats) lazily."""

    def __init__(self, warehouse: Any = None, ingest_engine: sa.Engine | None = None) -> None:
        self._warehouse = warehouse
        self._engine = ingest_engine
        self._heartbeats: dict[tuple[datetime, datetime], pd.DataFrame] = {}

    @property
    def warehouse(self) -> Any:
        if self._warehouse is None:
            from lantian.pipeline import warehouse

            self._warehouse = warehouse()
        return self._warehouse

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            from ingest.db import ensure_schema
            from lantian import settings

            self._engine = ensure_schema(settings.landing_index_url())
        return self._engine

    def ingest_devices(self) -> pd.DataFrame:
        from ingest.db import devices

        query = sa.select(
            devices.c.device_id,
            devices.c.stream,
            devices.c.state,
            devices.c.created_at,
            devices.c.key_hex.is_not(None).label("enrolled"),
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).fetchall(),
                columns=["device_id", "stream", "state", "created_at", "enrolled"],
            )

    def last_seen(self, since: datetime, now: datetime) -> pd.DataFrame:
        from ingest.db import landed_batches as lb
        from ingest.db import utc_iso

        evidence = sa.case(
            (lb.c.last_data_time < lb.c.landed_at, lb.c.last_data_time), else_=lb.c.landed_at
        )
        query = (
            sa.select(
                lb.c.device_id,
                sa.func.max(evidence),
                sa.func.max(lb.c.last_data_time),
                sa.func.max(lb.c.landed_at),
            )
            .where(
                lb.c.last_data_time >= utc_iso(since),
                # as of ``now`` (also when replaying the past); data times may run ahead of it
                lb.c.landed_at <= utc_iso(now),
            )
            .group_by(lb.c.device_id)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(query).fetchall(),
                columns=["device_id", "last_evidence", "last_data_time", "last_landed_at"],
            )
        for column in ("last_evidence", "last_data_time", "last_landed_at"):
            frame[column] = utc_series(frame[column])
        return frame

    def heartbeats(self, since: datetime, now: datetime) -> pd.DataFrame:
        """Heartbeats received in ``[since, now]`` (read once per window: two checks use them)."""
        if (since, now) not in self._heartbeats:
            self._heartbeats[(since, now)] = self._read_heartbeats(since, now)
        return self._heartbeats[(since, now)]

    def _read_heartbeats(self, since: datetime, now: datetime) -> pd.DataFrame:
        from ingest.db import heartbeats as hb
        from ingest.db import utc_iso

        query = (
            sa.select(
                hb.c.device_id,
                hb.c.box_id,
                hb.c.received_at,
                hb.c.queue_depth,
                hb.c.oldest_unsent,
                hb.c.disk_free_bytes,
                hb.c.body_json,
            )
            .where(hb.c.received_at >= utc_iso(since), hb.c.received_at <= utc_iso(now))
            .order_by(hb.c.id)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(query).fetchall(),
                columns=[
                    "device_id",
                    "box_id",
                    "received_at",
                    "queue_depth",
                    "oldest_unsent",
                    "disk_free_bytes",
                    "body_json",
                ],
            )
        frame["received_at"] = utc_series(frame["received_at"])
        frame["oldest_unsent"] = utc_series(frame["oldest_unsent"])
        frame["alarms"] = frame["body_json"].map(_alarms)
        return frame.drop(columns=["body_json"])

    def late_batches(self, partitions: pd.DataFrame, now: datetime) -> pd.DataFrame:
        from ingest.db import landed_batches as lb
        from ingest.db import utc_iso

        columns = ["seq", "device_id", "stream", "n_readings", "first_data_time", "last_data_time"]
        if partitions.empty:
            return pd.DataFrame(columns=columns)
        start = day_bounds(min(partitions["day"]))[0].to_pydatetime()
        end = day_bounds(max(partitions["day"]))[1].to_pydatetime()
        after = int(pd.to_numeric(partitions["landed_seq_max"], errors="coerce").fillna(0).min())
        query = sa.select(*(lb.c[c] for c in columns)).where(
            lb.c.seq > after,
            lb.c.first_data_time < utc_iso(end),
            lb.c.last_data_time >= utc_iso(start),
            lb.c.landed_at <= utc_iso(now),
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).fetchall(), columns=columns)
        frame["first_data_time"] = utc_series(frame["first_data_time"])
        frame["last_data_time"] = utc_series(frame["last_data_time"])
        return frame


def _alarms(body: Any) -> list[str]:
    try:
        alarms = json.loads(body).get("alarms") if body else None
    except (ValueError, AttributeError):
        return []
    return [str(a) for a in alarms] if isinstance(alarms, list) else []


def watched_devices(registry: pd.DataFrame, ingest: pd.DataFrame) -> pd.DataFrame:
    """Devices that should be sending: the bureau's registry and the ingest registry, minus
    devices the ingest registry has suspended or retired.

    ``registry`` (warehouse ``devices``): ``device_id``, ``stream``, ``install_date`` (Beijing
    date). ``ingest`` (ingest ``devices``): ``device_id``, ``stream``, ``state``, ``created_at``.
    ``since`` is the later of installation and registration: a device is due once both are past.
    """
    reg = registry.reindex(columns=["device_id", "stream", "install_date"]).copy()
    reg["installed"] = utc_series(
        reg["install_date"].fillna("").astype(str).map(lambda d: f"{d}T00:00:00+08:00" if d else "")
    )
    ing = ingest.reindex(columns=["device_id", "stream", "state", "created_at"]).copy()
    ing["registered"] = utc_series(ing["created_at"].fillna("").astype(str))
    both = reg[["device_id", "stream", "installed"]].merge(
        ing[["device_id", "stream", "state", "registered"]],
        on="device_id",
        how="outer",
        suffixes=("_reg", "_ing"),
    )
    both["stream"] = both["stream_ing"].where(both["stream_ing"].notna(), both["stream_reg"])
    both["state"] = both["state"].fillna("active")
    both["since"] = both[["installed", "registered"]].max(axis=1)
    active = both[(both["state"] == "active") & both["stream"].notna()]
    return active[["device_id", "stream", "since"]].sort_values("device_id").reset_index(drop=True)


# -- all checks -------------------------------------------------------------------------------


def check_devices(src: Sources, now: datetime, th: WatchThresholds) -> list[Finding]:
    wh = src.warehouse
    devices = watched_devices(wh.read("devices"), src.ingest_devices())
    since = now - timedelta(hours=th.silence_lookback_hours)
    beats = src.heartbeats(now - timedelta(hours=th.heartbeat_lookback_hours), now)
    found = silent_devices(
        devices,
        src.last_seen(since, now),
        now,
        th.silence_hours,
        lookback_hours=th.silence_lookback_hours,
        heartbeats_last=beats[["device_id", "received_at"]],
    )
    subdistricts = wh.read("subdistricts")
    names = dict(zip(subdistricts["subdistrict_id"], subdistricts["name"], strict=False))
    silent_ids = [f.subject for f in found]
    return found + silent_subdistricts(wh.read("stations"), silent_ids, names)


def check_boxes(src: Sources, now: datetime, th: WatchThresholds) -> list[Finding]:
    beats = src.heartbeats(now - timedelta(hours=th.heartbeat_lookback_hours), now)
    return box_findings(beats, now, th)


def check_quality(src: Sources, now: datetime, th: WatchThresholds) -> list[Finding]:
    results = src.warehouse.read(
        "validation_results", days=recent_days(now, th.quality_lookback_days)
    )
    return quality_findings(results, th.quarantine_share_warn, th.share_min_rows)


def check_late_data(src: Sources, now: datetime, th: WatchThresholds) -> list[Finding]:
    partitions = src.warehouse.read("partitions", days=recent_days(now, th.late_lookback_days))
    return late_data(partitions, src.late_batches(partitions, now))


CHECKS: dict[str, Callable[[Sources, datetime, WatchThresholds], list[Finding]]] = {
    "devices": check_devices,
    "boxes": check_boxes,
    "quality": check_quality,
    "late_data": check_late_data,
}


def run_checks(
    now: datetime | None = None,
    *,
    thresholds: WatchThresholds | None = None,
    sources: Sources | None = None,
) -> list[Finding]:
    """Every check as of ``now`` (aware; default: the current time). Never raises: a check that
    cannot run becomes a ``check_failed`` finding, and the others still run."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"naive now {now!r}: give the instant with its zone")
    th = thresholds or watch_thresholds()
    src = sources or Sources()
    found: list[Finding] = []
    for name, check in CHECKS.items():
        try:
            found += check(src, now, th)
        except Exception as exc:
            log.exception("watch check %s failed", name)
            found.append(
                Finding(
                    "check_failed",
                    name,
                    f"watch check {name!r} could not run: {_error_line(exc)}",
                    "watch-failed",
                    severity="critical",
                    details={"check": name, "error": _error_line(exc)},
                )
            )
    log.info("watch at %s: %d finding(s)", now.isoformat(), len(found))
    return found


def resolve_now(params: Mapping[str, Any] | None, data_interval_end: Any) -> datetime:
    """The instant a watch run checks: its ``now`` param (ISO; Beijing if no offset), else the
    end of its data interval, else the current time."""
    text = (params or {}).get("now")
    if text:
        moment = datetime.fromisoformat(str(text))
        return moment if moment.tzinfo else moment.replace(tzinfo=BEIJING)
    stamp = _ts(data_interval_end)
    return stamp.to_pydatetime() if stamp is not None else datetime.now(UTC)


def main(argv: list[str] | None = None) -> int:
    """``python -m lantian.watch [--now ISO] [--json]``: run the checks once and print them.

    Exit status 0 when nothing was found, 1 when there are findings (nothing is notified).
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m lantian.watch",
        description="Run the watch's health checks once and print the findings (no notification).",
    )
    parser.add_argument("--now", help="check as of this ISO instant (Beijing if no offset)")
    parser.add_argument("--json", action="store_true", help="one JSON object per finding")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    findings = run_checks(resolve_now({"now": args.now}, None))
    for finding in findings:
        if args.json:
            print(json.dumps(finding.as_dict(), ensure_ascii=False, default=str))
        else:
            print(f"{finding.severity:8} {finding.summary}  [docs/runbook.md#{finding.runbook}]")
    if not args.json:
        print(f"{len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
