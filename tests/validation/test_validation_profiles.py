"""Vapor (refuellings, tank records) and remote-sensing suites, and the custom expectations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.validation.frames import refuellings, rsd_passes, tank_records
from validation.expectations import (
    al_ok_when_fuel,
    dtype_has_kind,
    o2_ok_when_concentration,
    within_row_bounds,
)


def _by_expectation(outcome) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, reason in zip(
        outcome.quarantine["expectation"], outcome.quarantine["reason"], strict=True
    ):
        out.setdefault(name, []).append(reason)
    return out


# --- the custom expectations' row logic --------------------------------------------------------


def test_o2_rule_row_by_row():
    o2 = pd.Series([5.0, 20.49, 20.5, 21.0, -0.1, np.nan, 25.0, 0.0])
    conc = pd.Series([True, True, True, True, True, True, False, True])
    ok = o2_ok_when_concentration(o2, conc, 0.0, 20.5)
    assert ok.tolist() == [True, True, False, False, False, True, True, True]


def test_al_rule_row_by_row():
    al = pd.Series([1.1, np.nan, 5.0, 3.0, 0.0, -0.2, 7.0, np.nan])
    fuel = pd.Series([30.0, 30.0, 0.0, 12.0, 8.0, 8.0, np.nan, 0.0])
    ok = al_ok_when_fuel(al, fuel, 0.0, 3.0, 0.0)
    # no fuel (0 or missing): not judged; fuel dispensed: present and inside [0, 3]
    assert ok.tolist() == [True, False, True, True, True, False, True, True]


def test_row_bounds_rule():
    values = pd.Series([1.0, 5.0, np.nan, 2.0, -1.0])
    low = pd.Series([0.0, 0.0, 0.0, np.nan, -1.0])
    high = pd.Series([3.0, 4.0, 3.0, 1.0, 0.0])
    assert within_row_bounds(values, low, high).tolist() == [True, False, True, True, True]


@pytest.mark.parametrize(
    ("dtype", "kind", "expected"),
    [
        (pd.StringDtype(na_value=np.nan), "str", True),
        (np.dtype("object"), "str", False),
        (np.dtype("float64"), "float", True),
        (pd.DatetimeTZDtype(tz="UTC"), "time", True),
        (np.dtype("datetime64[ns]"), "time", False),
        (np.dtype("bool"), "bool", True),
        (pd.StringDtype(na_value=np.nan), "int", True),
        (np.dtype("int64"), "int", True),
        (np.dtype("bool"), "int", False),
    ],
)
def test_column_kinds(dtype, kind, expected):
    assert dtype_has_kind(dtype, kind) is expected


# --- vapor refuellings ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vapor_outcome(validate):
    frame = refuellings(n=10)
    frame.loc[1, "al_ratio"] = 5.0  # 30 L dispensed with A/L 5: a sensor fault
    frame.loc[2, ["al_ratio", "fuel_volume_l", "vapor_volume_l"]] = [9.0, 0.0, 0.0]  # no fuel
    frame.loc[3, "nozzle_status"] = 7.0
    frame.loc[4, "fuel_flow_l_min"] = 80.0
    frame.loc[5, "nozzle_id"] = ""
    frame.loc[6, "duration_s"] = 4000.0
    frame = pd.concat([frame, frame.iloc[[7]]], ignore_index=True)  # landed twice
    return frame, validate("vapor", frame)


def test_vapor_crafted_rows(vapor_outcome):
    frame, outcome = vapor_outcome
    assert _by_expectation(outcome) == {
        "al_when_fuel": ["al_ratio:5 outside [0, 3] with 31 L dispensed"],
        "category.nozzle_status": ["category:nozzle_status=7 not in [0, 1, 2]"],
        "range.fuel_flow_l_min": ["range:fuel_flow_l_min=80 outside [0, 60] L/min"],
        "required.nozzle_id": ["required:nozzle_id missing"],
        "range.duration_s": ["range:duration_s=4000 outside [0, 1800] s"],
        "duplicate": ["duplicate"],
    }
    quarantined = set(outcome.quarantine["reading_id"])
    assert quarantined == set(frame.loc[[1, 3, 4, 5, 6], "reading_id"]) | {
        frame.loc[10, "reading_id"]
    }
    # the refuelling without fuel keeps its odd A/L: not judged
    assert frame.loc[2, "reading_id"] in set(outcome.valid["reading_id"])
    al = outcome.results.set_index("expectation").loc["al_when_fuel"]
    assert json.loads(al["unexpected_ids"]) == [frame.loc[1, "reading_id"]]
    assert not outcome.critical_failed
    assert outcome.valid["valid"].all() and len(outcome.valid) == 5


def test_vapor_tank_records(validate):
    frame = tank_records(minutes=4)
    frame.loc[0, "tank_pressure_pa"] = -9000.0
    frame.loc[1, "zero_pressure_alarm"] = "3"  # text digits are accepted for profile ints too
    frame.loc[2, "tank_pressure_flag"] = "D"
    outcome = validate("vapor_tank", frame)
    assert _by_expectation(outcome) == {
        "range.tank_pressure_pa": ["range:tank_pressure_pa=-9000 outside [-5000, 5000] Pa"],
        "category.zero_pressure_alarm": ["category:zero_pressure_alarm=3 not in [0, 1]"],
    }
    # the D-flagged pressure is kept but not valid
    valid = outcome.valid.set_index("reading_id")
    assert valid.loc[frame.loc[2, "reading_id"], "invalid_reason"] == "flag:D"
    assert valid.loc[frame.loc[3, "reading_id"], "valid"]


def test_rsd_passes(validate):
    frame = rsd_passes(n=5)
    frame.loc[0, "speed_km_h"] = 350.0
    frame.loc[1, "fuel_type"] = "hydrogen"
    frame.loc[2, ["valid", "invalid_reason"]] = [0.0, "vsp"]  # the unit's own verdict
    frame.loc[3, "plate"] = ""
    outcome = validate("rsd", frame)
    assert _by_expectation(outcome) == {
        "range.speed_km_h": ["range:speed_km_h=350 outside [0, 200] km/h"],
        "category.fuel_type": [
            "category:fuel_type=hydrogen not in ['diesel', 'gasoline', 'unknown']"
        ],
        "required.plate": ["required:plate missing"],
    }
    valid = outcome.valid.set_index("reading_id")
    row = valid.loc[frame.loc[2, "reading_id"]]
    assert (row["valid"], row["invalid_reason"]) == (False, "rsd:vsp")
    assert (row["unit_valid"], row["unit_invalid_reason"]) == (0.0, "vsp")
    assert valid.loc[frame.loc[4, "reading_id"], "valid"]
