"""A fast path from the simulated district to the landing area: no pty, no agent process, no HTTP.

The field path is logger ──serial──▶ agent ──HTTPS──▶ ingest ──▶ landing. This module keeps what
decides the content of the landing area and skips the transport:

- the line's bytes (``scenario.wire_frames``: noise, damage and resends included) go through the
  agent's own framer (``agents.hj212.FrameReader`` with the device's CRC mode), split-packet
  assembler and family decoder (``agents.devices.get_family``), with the device's configuration;
- each reading is received one second after the chunk that completed its frame was sent (Beijing
  time) and its clock is judged by the agent's ``ClockWatch`` against that receive time, as a box
  reading the line in real time would;
- readings are de-duplicated by id (the agent's queue does the same), cut into batches of
  ``batch_size`` per device (``schemas.reading.Batch``), checked against the contract as ingest
  checks them, and landed with ``ingest.landing.Landing``: the same files and the same index.

It serves tests, backfills and the scale benchmark; ``lantian demo`` keeps the real path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

#: Seconds between a frame leaving the logger and the box stamping its receipt.
RECEIVE_DELAY = timedelta(seconds=1)
#: How long the assembler waits for the rest of a split packet (the agent's default).
PACKET_TIMEOUT_S = 30.0
#: The agent version written into directly landed batches, so they can be told apart.
AGENT_VERSION = "direct-load"


def decode_device(scenario: Any, device_id: str, *, wire: bool = True) -> Iterator[Any]:
    """The readings a box would decode from one simulated device, in receive order.

    Duplicates (a frame the logger sent twice) are yielded each time, as the decoder sees them;
    :func:`unique_readings` drops them by id.
    """
    from agents.devices import get_family

    config = scenario.device_config(device_id)
    family = get_family(config["family"])
    # A drifting simulated clock would log one warning per record; the readings carry the verdict.
    clock_log = logging.getLogger("lantian.agent.clock")
    level = clock_log.level
    clock_log.setLevel(logging.ERROR)
    try:
        yield from _decoded(scenario, device_id, config, family, wire)
    finally:
        clock_log.setLevel(level)


def _decoded(scenario: Any, device_id: str, config: dict, family: Any, wire: bool) -> Iterator[Any]:
    from agents.clock import ClockWatch
    from agents.hj212 import Frame, FrameReader, PacketAssembler
    from schemas.reading import BEIJING

    reader = FrameReader(crc_mode=config["crc_mode"], strict=False)
    assembler = PacketAssembler(timeout_s=PACKET_TIMEOUT_S)
    watch = ClockWatch(box_synced=lambda: True)
    source = scenario.wire_frames(device_id) if wire else scenario.frames(device_id)
    for sent_at, data in source:
        received_at = (sent_at + RECEIVE_DELAY).astimezone(BEIJING)
        now = received_at.timestamp()
        for item in reader.feed(data):
            if not isinstance(item, Frame):
                continue  # line damage: the agent logs it as a reject, nothing lands
            merged = assembler.add(item, now)
            if merged is None:
                continue
            for reading in family.decode(merged, config, received_at):
                watch.observe_reading(reading)
                yield reading
        assembler.expire(now)
    reader.flush()


def unique_readings(readings: Iterator[Any]) -> list[Any]:
    """First copy of each reading id, in order (the agent's queue keeps one copy per id)."""
    seen: set[str] = set()
    out = []
    for reading in readings:
        if reading.id not in seen:
            seen.add(reading.id)
            out.append(reading)
    return out


def reading_dict(reading: Any) -> dict[str, Any]:
    """``Reading.to_dict()`` without its deep copy (the dict is serialised, never mutated)."""
    return {name: getattr(reading, name) for name in _reading_fields()}


@cache
def _reading_fields() -> tuple[str, ...]:
    from schemas.reading import Reading

    return tuple(f.name for f in fields(Reading))


def device_batches(
    device_id: str, stream: str, readings: list[Any], batch_size: int
) -> Iterator[dict[str, Any]]:
    """Contract batches (``schemas.reading.Batch`` as a dict) of at most ``batch_size`` readings."""
    from schemas.reading import CONTRACT_VERSION, batch_id

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    for first in range(0, len(readings), batch_size):
        chunk = [reading_dict(r) for r in readings[first : first + batch_size]]
        yield {
            "device_id": device_id,
            "stream": stream,
            "readings": chunk,
            "batch_id": batch_id([r["id"] for r in chunk]),
            "agent_version": AGENT_VERSION,
            "contract": CONTRACT_VERSION,
        }


def land_scenario(
    scenario: Any,
    landing_root: Path | str,
    index_url: str,
    *,
    batch_size: int = 500,
    wire: bool = True,
    devices: list[str] | None = None,
) -> dict[str, Any]:
    """Decode every simulated device (or only ``devices``) and land its readings; return
    per-device counts.

    The result maps ``device_id`` to ``{"stream", "readings", "batches", "landed",
    "duplicates"}`` (``landed`` / ``duplicates`` count batches: landing a scenario twice changes
    nothing) plus ``"total_readings"``. Every batch passes ``schemas.reading.check_batch_dict``
    before it lands, as it would at the ingest service.
    """
    from ingest.landing import Landing
    from schemas.reading import check_batch_dict

    landing = Landing(Path(landing_root), index_url)
    out: dict[str, Any] = {}
    total = 0
    for device_id in scenario.device_ids() if devices is None else devices:
        stream = scenario.device_config(device_id)["stream"]
        readings = unique_readings(decode_device(scenario, device_id, wire=wire))
        counts = {"stream": stream, "readings": len(readings), "batches": 0}
        counts.update(landed=0, duplicates=0)
        for batch in device_batches(device_id, stream, readings, batch_size):
            check_batch_dict(batch)
            result = landing.land(batch)
            counts["batches"] += 1
            counts["landed" if result.status == "landed" else "duplicates"] += 1
        out[device_id] = counts
        total += len(readings)
    out["total_readings"] = total
    return out


# ---------------------------------------------------------------------------- bureau inputs


def _registry_frames(registry_dir: Path, scenario_or_registry: Any) -> dict[str, Any]:
    """Registry frames (text, as the bureau's CSV files read) from a scenario or a dict."""
    import pandas as pd

    if isinstance(scenario_or_registry, dict):
        return scenario_or_registry
    fresh = not (registry_dir / "stacks.csv").exists()
    if fresh and hasattr(scenario_or_registry, "write_registry"):
        scenario_or_registry.write_registry(registry_dir)
    frames = {}
    for name in ("stacks", "gas_stations", "subdistricts", "enterprises"):
        path = registry_dir / f"{name}.csv"
        if path.exists():
            frames[name] = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frames


def _truth_exceedances(scenario: Any) -> Any:
    """The planted exceedances as ``stack_id, day`` (Beijing) rows, None without a scenario."""
    import pandas as pd

    if not hasattr(scenario, "plans"):
        return None
    if "truth" in vars(scenario):  # computed already: reuse it
        planted = scenario.truth.exceedances
    else:
        from agents.simulate.truth import cems_exceedances

        planted = cems_exceedances(scenario)
    rows = [
        {
            "stack_id": e["stack_id"],
            "day": datetime.fromisoformat(e["hour_start"]).date().isoformat(),
        }
        for e in planted
    ]
    return pd.DataFrame(rows, columns=["stack_id", "day"])


def load_bureau_inputs(
    registry_dir: Path | str,
    scenario_or_registry: Any,
    month: str,
    seed: int,
    *,
    exceedances: Any = None,
) -> dict[str, Any]:
    """Write the simulated bureau inputs of ``month`` into the registry folder; return their truth.

    ``scenario_or_registry`` is a scenario (its registry CSVs are written to ``registry_dir`` when
    absent, and its planted exceedances choose the stacks of the case events unless
    ``exceedances`` (``stack_id, day``) is given) or a dict of registry frames (``stacks``,
    ``gas_stations``, ``subdistricts``). The files are the ones the bureau maintains
    (``case_events.csv``, ``fuel_samples.csv``, ``inspection_agencies.csv``, ``agency_checks.csv``,
    ``inspection_findings.csv``, ``disclosure_findings.csv``, ``dustfall_records.csv``, see
    docs/enforcement.md); the pipeline reads them from there.
    """
    from enforcement.bureau_inputs import simulate_bureau_inputs, write_bureau_inputs

    folder = Path(registry_dir)
    folder.mkdir(parents=True, exist_ok=True)
    registry = _registry_frames(folder, scenario_or_registry)
    n_stacks = len(registry.get("stacks", ()))
    if n_stacks < 4:
        raise ValueError(
            f"the registry has {n_stacks} stack(s); the simulated case events need at least four "
            "(enforcement.bureau_inputs): use the month, demo or district scale"
        )
    if exceedances is None and not isinstance(scenario_or_registry, dict):
        exceedances = _truth_exceedances(scenario_or_registry)
    inputs = simulate_bureau_inputs(registry, exceedances, seed, month)
    truth = inputs.pop("truth")
    write_bureau_inputs(inputs, folder)
    return truth


__all__ = [
    "decode_device",
    "device_batches",
    "land_scenario",
    "load_bureau_inputs",
    "unique_readings",
]
