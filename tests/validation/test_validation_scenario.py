"""The tamper rules on a simulated district (agents/simulate): every planted fraud or fault is
caught, no honest device is flagged. Detection and false-positive rates are printed (run with -s).

The frames come from the scenario's arriving readings (tests/validation/sim_frames.py), are
validated day by day like the DAG does, and the rules run on the validated rows.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from validation import tamper

scenario_module = pytest.importorskip("agents.simulate.scenario")

FRAUD_RULES = {"flatline", "dilution", "ratio_step", "flag_cluster", "same_series", "neighbour"}


def _run(scale: str, days: int, validate, tmp_path_factory):
    from tests.validation.sim_frames import measurement_frame, registry_frames

    scenario = scenario_module.build_scenario(
        seed=2017, start=date(2017, 12, 1), days=days, scale=scale
    )
    registry = registry_frames(scenario, tmp_path_factory.mktemp(f"registry-{scale}"))
    frame = measurement_frame(scenario)
    outcomes = [
        validate(stream, part, reg=registry, day=day)
        for (stream, day), part in frame.groupby(["stream", "day"], sort=True)
    ]
    rows = pd.concat([o.rows for o in outcomes], ignore_index=True)
    found = tamper.detect_all(rows, registry)
    return scenario, registry, outcomes, found


def _overlaps(hit, start: str, end: str) -> bool:
    return hit["window_start"] < pd.Timestamp(end) and hit["window_end"] > pd.Timestamp(start)


def evaluate(scenario, found: pd.DataFrame) -> dict:
    truth = scenario.truth
    devices = set(scenario.device_ids("cems")) | set(scenario.device_ids("ambient"))
    planted = {f["device_id"] for f in truth.fakes + truth.flatlines + truth.dilutions}
    jumps = {c["device_id"] for c in truth.clocks if c["kind"] == "jump"}
    fraud = found[found["rule"].isin(FRAUD_RULES)]
    flagged = set(fraud["device_id"])
    honest = devices - planted
    clock_flagged = set(found.loc[found["rule"] == "clock_jump", "device_id"])
    return {
        "devices": len(devices),
        "planted": sorted(planted),
        "detection_rate": len(planted & flagged) / len(planted) if planted else 1.0,
        "false_positives": sorted(flagged & honest),
        "false_positive_rate": len(flagged & honest) / len(honest) if honest else 0.0,
        "clock_jumps_found": sorted(clock_flagged & jumps),
        "clock_false_positives": sorted(clock_flagged - jumps),
    }


def _check_planted_windows(scenario, found: pd.DataFrame) -> None:
    truth = scenario.truth
    by = {k: g for k, g in found.groupby(["device_id", "rule"])}
    for entry in truth.flatlines:
        hits = by[(entry["device_id"], "flatline")]
        hits = hits[hits["code"] == entry["pollutant"]]
        assert any(_overlaps(h, entry["start"], entry["end"]) for _, h in hits.iterrows())
    for entry in truth.dilutions:
        hits = by[(entry["device_id"], "dilution")]
        assert any(_overlaps(h, entry["start"], entry["end"]) for _, h in hits.iterrows())
    for entry in truth.fakes:
        if entry["kind"] == "copied":
            hits = by[(entry["device_id"], "same_series")]
            assert entry["source_device_id"] in hits["detail"].iloc[0]
            assert "later" in hits["detail"].iloc[0]
        else:  # too smooth: an invented day holds O2, temperature and velocity constant
            hits = found[found["device_id"] == entry["device_id"]]
            assert any(_overlaps(h, entry["start"], entry["end"]) for _, h in hits.iterrows())


def test_tiny_district_one_day(validate, tmp_path_factory):
    scenario, _, outcomes, found = _run("tiny", 1, validate, tmp_path_factory)
    report = evaluate(scenario, found)
    print(f"\ntiny scenario, 1 day: {report}")
    assert report["detection_rate"] == 1.0
    assert report["false_positives"] == []
    assert report["clock_jumps_found"] == sorted(
        c["device_id"] for c in scenario.truth.clocks if c["kind"] == "jump"
    )
    assert report["clock_false_positives"] == []
    _check_planted_windows(scenario, found)
    # the partitions themselves are sound: no task would fail
    assert not any(o.critical_failed for o in outcomes)


@pytest.mark.slow
def test_demo_district_two_days(validate, tmp_path_factory):
    scenario, _, outcomes, found = _run("demo", 2, validate, tmp_path_factory)
    report = evaluate(scenario, found)
    print(f"\ndemo scenario, 2 days: {report}")
    assert report["detection_rate"] == 1.0
    assert report["false_positives"] == []
    assert report["clock_false_positives"] == []
    _check_planted_windows(scenario, found)
