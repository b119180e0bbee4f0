"""Validity per value: flags, audits of manual values, clock faults, review marks, precedence."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tests.validation.frames import DAY_START, measurements
from validation.validity import assign_validity, audited


def _frame(flags: list[str]) -> pd.DataFrame:
    """One minute record per flag (all on code index 0 of each minute)."""
    frame = measurements(minutes=len(flags))
    frame = frame[frame["code"] == "a21026"].reset_index(drop=True)
    frame["flag"] = flags
    return frame


@pytest.mark.parametrize("flag", ["F", "M", "D", "C", "B"])
def test_flags_that_do_not_count(rules, flag):
    out = assign_validity(_frame(["N", flag]), "cems", rules)
    assert out["valid"].tolist() == [True, False]
    assert out["invalid_reason"].tolist() == ["", f"flag:{flag}"]


def test_flag_spelling_is_normalised_and_empty_is_valid(rules):
    out = assign_validity(_frame([" m", "", "n"]), "cems", rules)
    assert out["invalid_reason"].tolist() == ["flag:M", "", ""]
    assert out["valid"].tolist() == [False, True, True]


def test_t_counts_but_is_marked_for_review(rules):
    out = assign_validity(_frame(["T"]), "cems", rules)
    assert out["valid"].tolist() == [True]
    assert out["invalid_reason"].tolist() == ["review:T"]


def test_manual_values_need_an_audit_record(rules):
    frame = _frame(["S", "S", "S", "S"])  # minutes 0..3
    audits = pd.DataFrame(
        {
            "device_id": ["CEMS001", "CEMS001", "OTHER"],
            "code": ["a21026", "", ""],
            # naive times are Beijing: minute 0 exactly (inclusive edge), and minute 2 to 2
            "start": ["2017-11-15 00:00:00", "2017-11-15 00:02:00", "2017-11-15 00:00:00"],
            "end": ["2017-11-15 00:00:00", "2017-11-15 00:02:00", "2017-11-16 00:00:00"],
            "auditor": ["王工", "王工", "李工"],
            "note": ["span drift corrected", "logger reset", "other device"],
        }
    )
    out = assign_validity(frame, "cems", rules, audits=audits)
    assert out["valid"].tolist() == [True, False, True, False]
    assert out["invalid_reason"].tolist() == ["", "flag:S-unaudited", "", "flag:S-unaudited"]
    assert assign_validity(frame, "cems", rules)["invalid_reason"].tolist() == (
        ["flag:S-unaudited"] * 4
    )


def test_audit_of_another_code_does_not_cover(rules):
    frame = _frame(["S"])
    audits = pd.DataFrame(
        {
            "device_id": ["CEMS001"],
            "code": ["a21002"],
            "start": [DAY_START - timedelta(hours=1)],
            "end": [DAY_START + timedelta(hours=1)],
        }
    )
    assert audited(frame, audits).tolist() == [False]
    audits.loc[0, "code"] = "a21026"
    assert audited(frame, audits).tolist() == [True]


def test_clock_faults(rules):
    frame = _frame(["N", "N", "M"])
    frame["clock_jump"] = [True, False, True]
    frame["clock_drift"] = [False, True, False]
    out = assign_validity(frame, "cems", rules)
    # a jump invalidates; drift does not (validation.toml); a flag speaks before the clock
    assert out["invalid_reason"].tolist() == ["clock:jump", "", "flag:M"]
    assert out["valid"].tolist() == [False, True, False]


def test_quarantine_reason_comes_first(rules):
    frame = _frame(["M", "T"])
    reasons = pd.Series(["duplicate", "range:a21026.avg=1e+05 outside [-5, 10000] mg/m3"])
    out = assign_validity(frame, "cems", rules, quarantine_reason=reasons)
    assert out["invalid_reason"].tolist() == reasons.tolist()
    assert not out["valid"].any()


def test_remote_sensing_keeps_the_units_verdict(rules):
    from tests.validation.frames import rsd_passes

    frame = rsd_passes(n=3)
    frame["valid"] = ["1", "0", "0"]
    frame["invalid_reason"] = ["", "speed", ""]
    out = assign_validity(frame, "rsd", rules)
    assert out["valid"].tolist() == [True, False, False]
    assert out["invalid_reason"].tolist() == ["", "rsd:speed", "rsd:unit_invalid"]
    assert out["unit_valid"].tolist() == ["1", "0", "0"]
