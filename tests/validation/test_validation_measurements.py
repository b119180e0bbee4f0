"""Every row-level expectation of the CEMS and ambient suites: passes on good rows, fails on one
crafted bad row (the kind a field produces), quarantines it with its reason, and the results row
names it with its count and reading ids."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tests.validation.frames import DAY, DAY_START, devices, measurements

# A clean frame: 5 minute records x 5 codes, row index = minute * 5 + code position
# (a34013, a21026, a21002, a19001, a01012).
PM, SO2, NOX, O2, TEMP = range(5)


def row(minute: int, code: int) -> int:
    return minute * 5 + code


def rows_of_minute(minute: int) -> list[int]:
    return [row(minute, c) for c in range(5)]


def _failed(outcome, name):
    results = outcome.results.set_index("expectation")
    return results.loc[name]


def test_clean_cems_partition_passes_everything(validate):
    frame = measurements(minutes=5)
    outcome = validate("cems", frame)
    assert outcome.results["success"].all(), outcome.results[~outcome.results["success"]]
    assert outcome.quarantine.empty
    assert not outcome.critical_failed
    assert len(outcome.valid) == 25
    assert outcome.valid["valid"].all()
    assert (outcome.valid["invalid_reason"] == "").all()
    # the valid frame carries the input columns plus validity, no derived columns
    assert list(outcome.valid.columns) == [*frame.columns, "valid", "invalid_reason"]


def test_clean_ambient_partition_passes_everything(validate):
    outcome = validate("ambient", measurements("AMB001", "ambient", minutes=4))
    assert outcome.results["success"].all()
    assert outcome.quarantine.empty and len(outcome.valid) == 12
    # the ambient suite has no O2 expectation: no O2 code in its ranges
    assert "o2_with_concentration" not in set(outcome.results["expectation"])


# One bad thing per minute, so that each expectation has its own rows and any cross-talk
# between expectations would show.
MUTATIONS = {
    # name: (rows, mutation, reason)
    "stream": ([row(0, PM)], ("stream", "ambient"), "stream:'ambient' in the cems partition"),
    "device_registered": (
        rows_of_minute(1),
        ("device_id", "CEMS999"),
        "device:CEMS999 not in the registry",
    ),
    "command_known": (rows_of_minute(2), ("cn", "2099"), "cn:'2099' is not a data command"),
    "flag_known": ([row(3, TEMP)], ("flag", "X"), "flag:unknown 'X'"),  # noise turned N into X
    "unit_known": ([row(4, SO2)], ("unit", "ppm"), "unit:'ppm' not configured for a21026"),
    "range.avg": (
        [row(5, NOX)],
        ("avg", 6000.0),
        "range:a21002.avg=6000 outside [-5, 5000] mg/m3",
    ),
    "range.min": ([row(6, NOX)], ("min", -10.0), "range:a21002.min=-10 outside [-5, 5000] mg/m3"),
    "range.max": ([row(7, O2)], ("max", 25.0), "range:a19001.max=25 outside [0, 21] %"),
    "required.avg": ([row(8, TEMP)], ("avg", np.nan), "required:avg missing for cn 2051"),
    # O2 inside 0-21 but at the fault cut-off: the reading's concentrations cannot be corrected
    "o2_with_concentration": (
        [row(9, PM), row(9, SO2), row(9, NOX)],
        None,
        "o2:20.6 % outside [0, 20.5) for a concentration",
    ),
    "future": (
        rows_of_minute(10),
        None,
        "future:data time 3560 s after receipt (tolerance 300 s)",
    ),
    # the same reading id and code landed twice: the second copy goes, the first stays
    "duplicate": ([60], None, "duplicate"),
}


@pytest.fixture(scope="module")
def crafted(validate):
    frame = measurements(minutes=12)
    for name, (rows, change, _) in MUTATIONS.items():
        if change is not None:
            frame.loc[rows, change[0]] = change[1]
        elif name == "o2_with_concentration":
            frame.loc[row(9, O2), "avg"] = 20.6
        elif name == "future":
            frame.loc[rows, "data_time"] += timedelta(hours=1)
    frame = pd.concat([frame, frame.iloc[[row(11, PM)]]], ignore_index=True)
    return frame, validate("cems", frame)


def test_crafted_partition_fails_exactly_the_crafted_expectations(crafted):
    frame, outcome = crafted
    failed = outcome.results[~outcome.results["success"]]
    assert set(failed["expectation"]) == set(MUTATIONS)
    assert not outcome.critical_failed  # row-level failures only: the rest go on
    bad = sorted(r for rows, _, _ in MUTATIONS.values() for r in rows)
    assert len(outcome.quarantine) == len(bad)
    assert len(outcome.valid) == len(frame) - len(bad)
    assert not set(outcome.valid["reading_id"] + outcome.valid["code"]) & set(
        frame.loc[[r for r in bad if r != 60], "reading_id"]
        + frame.loc[[r for r in bad if r != 60], "code"]
    )


def test_valid_frame_is_built_from_rows_on_first_read(validate):
    frame = measurements(minutes=3)
    frame.loc[row(1, NOX), "avg"] = 6000.0  # quarantined
    frame.loc[row(2, PM), "flag"] = "M"  # kept, but not valid
    outcome = validate("cems", frame)
    before = outcome.rows.copy()
    valid = outcome.valid
    assert outcome.valid is valid  # built once
    assert len(valid) == len(frame) - 1 and list(valid.index) == list(range(len(frame) - 1))
    kept = set(zip(valid["reading_id"], valid["code"], strict=True))
    assert (frame.loc[row(1, NOX), "reading_id"], frame.loc[row(1, NOX), "code"]) not in kept
    assert list(valid.columns) == [*frame.columns, "valid", "invalid_reason"]
    # the verdicts in ``rows`` count the same valid rows (the pipeline counts on rows)
    assert int(outcome.rows["valid"].sum()) == int(valid["valid"].sum()) == len(frame) - 2
    pd.testing.assert_frame_equal(outcome.rows, before)  # reading ``valid`` left rows alone


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_expectation_quarantines_its_crafted_bad_row(crafted, name):
    frame, outcome = crafted
    bad, _, reason = MUTATIONS[name]
    result = _failed(outcome, name)
    assert result["severity"] == "critical" and result["level"] == "row"
    assert result["unexpected_count"] == len(bad)
    bad_ids = list(dict.fromkeys(frame.loc[bad, "reading_id"]))
    assert json.loads(result["unexpected_ids"]) == bad_ids

    q = outcome.quarantine[outcome.quarantine["expectation"] == name]
    assert len(q) == len(bad)
    assert set(q["reason"]) == {reason}
    assert set(q["stream"]) == {"cems"} and set(q["day"]) == {DAY}
    assert list(q["reading_id"]) == list(frame.loc[bad, "reading_id"])
    # the evidence row is the input row, as JSON
    first = json.loads(q["row_json"].iloc[0])
    assert first["reading_id"] == frame.loc[bad[0], "reading_id"]
    assert first["code"] == frame.loc[bad[0], "code"]


def test_the_first_copy_of_a_duplicate_stays(crafted):
    frame, outcome = crafted
    original = frame.loc[row(11, PM)]
    kept = outcome.valid[
        (outcome.valid["reading_id"] == original["reading_id"])
        & (outcome.valid["code"] == original["code"])
    ]
    assert len(kept) == 1


def test_required_realtime_value_and_range_on_rtd(validate):
    frame = measurements(minutes=3, cn="2011")
    frame.loc[row(0, SO2), "rtd"] = np.nan
    frame.loc[row(2, PM), "rtd"] = 1500.0
    outcome = validate("cems", frame)
    reasons = dict(
        zip(outcome.quarantine["expectation"], outcome.quarantine["reason"], strict=True)
    )
    assert reasons == {
        "required.rtd": "required:rtd missing for cn 2011",
        "range.rtd": "range:a34013.rtd=1500 outside [-5, 1000] mg/m3",
    }


def test_range_bounds_are_inclusive(validate):
    frame = measurements(minutes=2)
    frame.loc[row(0, NOX), "avg"] = 5000.0
    frame.loc[row(1, NOX), "avg"] = -5.0
    frame.loc[row(0, O2), "max"] = 21.0
    outcome = validate("cems", frame)
    assert outcome.quarantine.empty


def test_o2_edges(validate):
    frame = measurements(minutes=4)
    frame.loc[row(0, O2), "avg"] = 20.49  # just under the cut-off: correctable
    frame.loc[row(1, O2), "avg"] = 0.0  # lower edge
    frame.loc[row(2, O2), "avg"] = 20.5  # the cut-off itself is a fault
    frame = frame.drop(index=[row(3, O2)]).reset_index(drop=True)  # no O2 sent: not judged here
    outcome = validate("cems", frame)
    q = outcome.quarantine
    assert set(q["expectation"]) == {"o2_with_concentration"}
    assert list(q["reading_id"].unique()) == [frame.loc[row(2, PM), "reading_id"]]
    assert len(q) == 3  # PM, SO2, NOx of minute 2; temperature is not a concentration


def test_several_failures_of_one_row_are_all_reported(validate):
    frame = measurements(minutes=3)
    frame.loc[row(1, SO2), "flag"] = "?"
    frame.loc[row(1, SO2), "avg"] = 20000.0
    outcome = validate("cems", frame)
    q = outcome.quarantine
    assert len(q) == 1
    assert q["expectation"].iloc[0] == "flag_known"  # first in suite order
    assert q["reason"].iloc[0] == (
        "flag:unknown '?'; range:a21026.avg=20000 outside [-5, 10000] mg/m3"
    )


def test_unknown_code_is_a_warning_and_passes_through(validate):
    frame = measurements(minutes=2)
    frame.loc[row(0, TEMP), "code"] = "a99999"
    outcome = validate("cems", frame)
    result = _failed(outcome, "code_known")
    assert result["severity"] == "warning" and not result["success"]
    assert result["unexpected_count"] == 1
    assert outcome.quarantine.empty
    assert len(outcome.valid) == 10 and outcome.valid["valid"].all()


def test_clock_jump_and_drift_are_warnings_with_validity(validate):
    frame = measurements(minutes=3)
    frame.loc[rows_of_minute(1), "clock_jump"] = True
    frame.loc[rows_of_minute(2), "clock_drift"] = True
    outcome = validate("cems", frame)
    jump, drift = _failed(outcome, "clock_jump"), _failed(outcome, "clock_drift")
    assert jump["severity"] == drift["severity"] == "warning"
    assert jump["unexpected_count"] == drift["unexpected_count"] == 5
    assert json.loads(jump["unexpected_ids"]) == [frame.loc[5, "reading_id"]]
    assert outcome.quarantine.empty and not outcome.critical_failed
    valid = outcome.valid
    assert list(valid.loc[rows_of_minute(1), "invalid_reason"].unique()) == ["clock:jump"]
    assert not valid.loc[rows_of_minute(1), "valid"].any()
    # drift keeps the value valid (validation.toml validity.clock_drift_invalid = false)
    assert valid.loc[rows_of_minute(2), "valid"].all()


def test_install_date_edges(validate):
    frame = pd.concat(
        [
            measurements("CEMS001", minutes=2),
            measurements("CEMS002", minutes=2),
        ],
        ignore_index=True,
    )
    reg = {
        "devices": devices(
            [("CEMS001", "cems", DAY), ("CEMS002", "cems", "2017-11-16")]  # day itself / tomorrow
        )
    }
    outcome = validate("cems", frame, reg=reg)
    q = outcome.quarantine
    assert set(q["reading_id"]) == set(frame.loc[10:, "reading_id"])
    assert set(q["expectation"]) == {"before_install"}
    assert q["reason"].iloc[0].startswith("before_install:data time 2017-11-14 16:00:00+00:00")
    # CEMS001 installed on the day: its 00:00 Beijing reading is accepted
    assert len(outcome.valid) == 10


def test_monotonic_per_device_in_receive_order(validate):
    frame = measurements(minutes=5, cn="2011")
    late = rows_of_minute(1)
    # minute 1 reaches the box after minute 3: its data time steps back 120 s
    frame.loc[late, "received_at"] = frame.loc[row(3, 0), "received_at"] + timedelta(seconds=5)
    outcome = validate("cems", frame)
    q = outcome.quarantine
    assert set(q["expectation"]) == {"monotonic"}
    assert list(q["reading_id"].unique()) == [frame.loc[late[0], "reading_id"]]
    assert q["reason"].iloc[0] == "time_backwards:-120 s behind the device's previous reading"
    assert len(q) == 5


def test_monotonic_ignores_replayed_interval_records_and_other_devices(validate):
    frame = measurements(minutes=4)  # CN 2051: a logger may replay stored minutes late
    frame.loc[rows_of_minute(0), "received_at"] += timedelta(minutes=10)
    other = measurements("CEMS002", minutes=2, cn="2011", start=DAY_START - timedelta(hours=-2))
    outcome = validate("cems", pd.concat([frame, other], ignore_index=True))
    assert outcome.quarantine.empty


def test_equal_receive_times_never_look_backwards(validate):
    frame = measurements(minutes=3, cn="2011")
    frame["received_at"] = frame["received_at"].iloc[-1]  # one burst
    outcome = validate("cems", frame)
    assert outcome.quarantine.empty
