"""Day-by-day penalties (MEP order 28): ledger days and amounts computed by hand from the order's rule
"from the day after service to the day a re-inspection finds the violation continuing"."""

from __future__ import annotations

import pandas as pd
import pytest

from enforcement.penalties import (
    case_id_for,
    case_rounds,
    check_events,
    open_cases,
    penalty_ledger,
    reinspection_due,
)

STACKS = pd.DataFrame({"stack_id": ["S1", "S2", "S3"], "enterprise_id": ["E1", "E2", "E3"]})


def events(*rows: tuple) -> pd.DataFrame:
    """Rows of (case_id, stack_id, event, date, amount_yuan, document_no)."""
    frame = pd.DataFrame(
        rows, columns=["case_id", "stack_id", "event", "date", "amount_yuan", "document_no"]
    )
    frame["note"] = ""
    return frame


def test_two_failed_reinspections_accumulate_and_a_pass_closes():
    ev = events(
        ("C1", "S1", "exceedance_found", "2017-11-01", None, "M-1"),
        ("C1", "S1", "fine", "2017-11-01", 100000, "F-1"),
        ("C1", "S1", "correction_order_served", "2017-11-02", None, "O-1"),
        ("C1", "S1", "reinspection_failed", "2017-11-12", None, "R-1"),
        ("C1", "S1", "reinspection_failed", "2017-11-20", None, "R-2"),
        ("C1", "S1", "reinspection_passed", "2017-11-28", None, "R-3"),
    )
    ledger = penalty_ledger(ev, STACKS)
    # 11-03 .. 11-12 = 10 days; 11-13 .. 11-20 = 8 days
    assert list(ledger["start_date"]) == ["2017-11-03", "2017-11-13"]
    assert list(ledger["end_date"]) == ["2017-11-12", "2017-11-20"]
    assert list(ledger["penalty_days"]) == [10, 8]
    assert list(ledger["amount_yuan"]) == [1_000_000.0, 800_000.0]
    assert "第五十九条" in ledger.iloc[0]["basis"] and "F-1" in ledger.iloc[0]["basis"]
    assert "2017-11-03 至 2017-11-12" in ledger.iloc[0]["basis"]
    rounds = case_rounds(ev, STACKS)
    assert rounds.iloc[0]["state"] == "closed" and rounds.iloc[0]["closed_date"] == "2017-11-28"
    assert rounds.iloc[0]["penalty_days"] == 18 and rounds.iloc[0]["penalty_yuan"] == 1_800_000.0


def test_halt_in_the_middle_of_a_round_stops_the_count():
    ev = events(
        ("C2", "S2", "fine", "2017-11-01", 50000, "F-2"),
        ("C2", "S2", "correction_order_served", "2017-11-01", None, "O-2"),
        ("C2", "S2", "halt", "2017-11-05", None, "H-2"),
        ("C2", "S2", "resume", "2017-11-08", None, "U-2"),
        ("C2", "S2", "reinspection_failed", "2017-11-10", None, "R-2"),
    )
    row = penalty_ledger(ev, STACKS).iloc[0]
    # 11-02 .. 11-10 = 9 calendar days; halted 11-05, 11-06, 11-07 (resume day counts) → 6 days
    assert (row["calendar_days"], row["halted_days"], row["penalty_days"]) == (9, 3, 6)
    assert row["amount_yuan"] == 300_000.0
    assert "停产 3 日不计" in row["basis"]


def test_halt_without_resume_stops_the_count_to_the_end():
    ev = events(
        ("C2", "S2", "fine", "2017-11-01", 50000, "F-2"),
        ("C2", "S2", "correction_order_served", "2017-11-01", None, "O-2"),
        ("C2", "S2", "reinspection_failed", "2017-11-04", None, "R-1"),
        ("C2", "S2", "halt", "2017-11-06", None, "H-2"),
    )
    ledger = penalty_ledger(ev, STACKS)
    assert list(ledger["penalty_days"]) == [3]  # 11-02..11-04
    assert case_rounds(ev, STACKS).iloc[0]["state"] == "halted"


def test_reinspection_on_the_day_of_service_gives_no_penalty_day():
    ev = events(
        ("C3", "S3", "fine", "2017-11-01", 20000, "F-3"),
        ("C3", "S3", "correction_order_served", "2017-11-03", None, "O-3"),
        ("C3", "S3", "reinspection_failed", "2017-11-03", None, "R-1"),
        ("C3", "S3", "reinspection_failed", "2017-11-10", None, "R-2"),
    )
    accepted, refused = check_events(ev, STACKS)
    assert refused.empty
    assert (
        accepted.loc[accepted["document_no"] == "R-1", "review"].item() == "same_day_reinspection"
    )
    ledger = penalty_ledger(ev, STACKS)
    assert list(ledger["penalty_days"]) == [0, 7]  # then 11-04..11-10
    assert list(ledger["amount_yuan"]) == [0.0, 140_000.0]


def test_new_violation_after_a_passed_reinspection_opens_a_new_round():
    ev = events(
        ("C4", "S1", "fine", "2017-11-01", 100000, "F-1"),
        ("C4", "S1", "correction_order_served", "2017-11-02", None, "O-1"),
        ("C4", "S1", "reinspection_passed", "2017-11-05", None, "R-1"),
        ("C4", "S1", "exceedance_found", "2017-11-20", None, "M-2"),
        ("C4", "S1", "fine", "2017-11-21", 80000, "F-2"),
        ("C4", "S1", "correction_order_served", "2017-11-22", None, "O-2"),
        ("C4", "S1", "reinspection_failed", "2017-11-25", None, "R-2"),
    )
    ledger = penalty_ledger(ev, STACKS)
    assert list(ledger["round"]) == [2]
    assert ledger.iloc[0]["penalty_days"] == 3 and ledger.iloc[0]["amount_yuan"] == 240_000.0
    rounds = case_rounds(ev, STACKS)
    assert list(rounds["state"]) == ["closed", "served"]


def test_no_cap_on_days():
    ev = events(
        ("C5", "S1", "fine", "2017-01-01", 100000, "F"),
        ("C5", "S1", "correction_order_served", "2017-01-01", None, "O"),
        ("C5", "S1", "reinspection_failed", "2017-12-31", None, "R"),
    )
    accepted, _ = check_events(ev, STACKS)
    assert accepted.iloc[-1]["review"] == "late_reinspection"
    row = penalty_ledger(ev, STACKS).iloc[0]
    assert row["penalty_days"] == 364 and row["amount_yuan"] == 36_400_000.0
    assert bool(row["late_reinspection"])


def test_reinspection_exactly_30_days_after_service_is_not_late():
    ev = events(
        ("C6", "S1", "fine", "2017-11-01", 1000, "F"),
        ("C6", "S1", "correction_order_served", "2017-11-01", None, "O"),
        ("C6", "S1", "reinspection_failed", "2017-12-01", None, "R"),
    )
    accepted, _ = check_events(ev, STACKS)
    assert accepted.iloc[-1]["review"] == ""


@pytest.mark.parametrize(
    ("rows", "refused_doc", "reason_part"),
    [
        (
            [
                ("X", "S1", "fine", "2017-11-01", 1000, "F"),
                ("X", "S1", "reinspection_failed", "2017-11-05", None, "R"),
            ],
            "R",
            "before any correction order",
        ),
        (
            [
                ("X", "S1", "correction_order_served", "2017-11-03", None, "O"),
                ("X", "S1", "fine", "2017-11-05", 1000, "F"),
            ],
            "O",
            "dates out of order",
        ),
        ([("X", "S1", "correction_order_served", "2017-11-03", None, "O")], "O", "before any fine"),
        ([("X", "S9", "fine", "2017-11-01", 1000, "F")], "F", "unknown stack"),
        ([("X", "S1", "fine", "2017-11-01", -5, "F")], "F", "negative amount"),
        ([("X", "S1", "fine", "2017-11-01", None, "F")], "F", "positive amount"),
        ([("X", "S1", "penalty", "2017-11-01", 10, "F")], "F", "unknown event"),
        ([("X", "S1", "fine", "2017-13-45", 10, "F")], "F", "date"),
        (
            [
                ("X", "S1", "fine", "2017-11-01", 1000, "F"),
                ("X", "S1", "correction_order_served", "2017-11-01", None, "O"),
                ("X", "S1", "halt", "2017-11-03", None, "H"),
                ("X", "S1", "reinspection_failed", "2017-11-05", None, "R"),
            ],
            "R",
            "contradicts the halt",
        ),
        (
            [
                ("X", "S1", "fine", "2017-11-01", 1000, "F"),
                ("X", "S1", "fine", "2017-11-02", 2000, "F2"),
            ],
            "F2",
            "second fine",
        ),
        ([("X", "S1", "resume", "2017-11-01", None, "U")], "U", "without a halt"),
        (
            [
                ("X", "S1", "fine", "2017-11-01", 1000, "F"),
                ("X", "S1", "correction_order_served", "2017-11-01", None, "O"),
                ("X", "S1", "reinspection_passed", "2017-11-03", None, "P"),
                ("X", "S1", "reinspection_failed", "2017-11-05", None, "R"),
            ],
            "R",
            "was closed",
        ),
        (
            [
                ("X", "S1", "fine", "2017-11-01", 1000, "F"),
                ("X", "S2", "correction_order_served", "2017-11-02", None, "O"),
            ],
            "O",
            "differs from the case",
        ),
    ],
)
def test_wrong_events_are_refused_with_a_reason(rows, refused_doc, reason_part):
    accepted, refused = check_events(events(*rows), STACKS)
    assert refused_doc in list(refused["document_no"])
    reason = refused.loc[refused["document_no"] == refused_doc, "reason"].item()
    assert reason_part in reason
    assert refused_doc not in list(accepted["document_no"])


def test_refused_events_never_reach_the_ledger_and_duplicates_count_once():
    ev = events(
        ("C7", "S1", "fine", "2017-11-01", 1000, "F"),
        ("C7", "S1", "reinspection_failed", "2017-11-03", None, "R0"),  # before any order: refused
        ("C7", "S1", "correction_order_served", "2017-11-04", None, "O"),
        ("C7", "S1", "correction_order_served", "2017-11-04", None, "O"),  # duplicate row
        ("C7", "S1", "reinspection_failed", "2017-11-09", None, "R1"),
    )
    accepted, refused = check_events(ev, STACKS)
    assert sorted(refused["row"]) == [2, 4]
    assert "duplicate" in refused.loc[refused["row"] == 4, "reason"].item()
    ledger = penalty_ledger(ev, STACKS)
    assert list(ledger["penalty_days"]) == [5]  # 11-05..11-09


def test_rows_out_of_file_order_are_judged_by_date():
    ev = events(
        ("C8", "S1", "reinspection_failed", "2017-11-09", None, "R"),
        ("C8", "S1", "correction_order_served", "2017-11-02", None, "O"),
        ("C8", "S1", "fine", "2017-11-01", 1000, "F"),
    )
    accepted, refused = check_events(ev, STACKS)
    assert refused.empty and len(accepted) == 3
    assert penalty_ledger(ev, STACKS).iloc[0]["penalty_days"] == 7


# --- cases from data ---------------------------------------------------------------------------


def exceedance(stack: str, day: str, hour: int, value: float = 150.0, limit: float = 100.0) -> dict:
    start = pd.Timestamp(f"{day} {hour:02d}:00", tz="Asia/Shanghai").tz_convert("UTC")
    return {
        "exceedance_id": f"{stack}-{day}-{hour}",
        "stack_id": stack,
        "enterprise_id": "E" + stack[1:],
        "pollutant": "a21026",
        "hour_start": start,
        "day": day,
        "hourly_mean": value,
        "limit_value": limit,
        "limit_source": "permit",
        "n_readings": 60,
        "reading_ids": [],
    }


def test_open_cases_attach_exceedances_and_propose_new_cases():
    ev = events(
        ("C1", "S1", "exceedance_found", "2017-11-01", None, "M"),
        ("C1", "S1", "fine", "2017-11-01", 100000, "F"),
        ("C1", "S1", "correction_order_served", "2017-11-02", None, "O"),
        ("C1", "S1", "reinspection_passed", "2017-11-05", None, "P"),
    )
    ex = pd.DataFrame(
        [
            exceedance("S1", "2017-11-01", 3),
            exceedance("S1", "2017-11-03", 4),
            exceedance("S1", "2017-11-20", 5),  # after the closure: a new violation
            exceedance("S2", "2017-11-10", 6),  # no case yet
            exceedance("S2", "2017-11-11", 7),
        ]
    )
    cases = open_cases(ex, ev, STACKS).set_index("case_id")
    assert cases.loc["C1", "n_exceedances"] == 2 and cases.loc["C1", "state"] == "closed"
    new_s1 = case_id_for("S1", "S1-2017-11-20-5")
    new_s2 = case_id_for("S2", "S2-2017-11-10-6")
    assert cases.loc[new_s1, "state"] == "found" and cases.loc[new_s1, "source"] == "exceedances"
    assert cases.loc[new_s2, "n_exceedances"] == 2
    assert cases.loc[new_s2, "next_action"].startswith("fine at once")
    assert cases.loc[new_s2, "enterprise_id"] == "E2"
    # proposing again from the same data gives the same id
    assert new_s2 in set(open_cases(ex, ev, STACKS)["case_id"])


def test_reinspection_due_ranks_stacks_still_exceeding_first():
    ev = events(
        ("C1", "S1", "fine", "2017-11-01", 100000, "F"),
        ("C1", "S1", "correction_order_served", "2017-11-02", None, "O"),
        ("C2", "S2", "fine", "2017-11-01", 100000, "F"),
        ("C2", "S2", "correction_order_served", "2017-11-02", None, "O"),
        ("C3", "S3", "fine", "2017-11-01", 100000, "F"),
        ("C3", "S3", "correction_order_served", "2017-11-02", None, "O"),
        ("C3", "S3", "reinspection_passed", "2017-11-06", None, "P"),
    )
    ex = pd.DataFrame(
        [exceedance("S1", "2017-11-01", 3), exceedance("S1", "2017-11-04", 8, value=250.0)]
    )
    # the service day itself does not count as "after service"
    ex_s2 = pd.DataFrame([exceedance("S2", "2017-11-02", 9)])
    cases = open_cases(pd.concat([ex, ex_s2], ignore_index=True), ev, STACKS)
    due = reinspection_due(cases, pd.concat([ex, ex_s2], ignore_index=True), as_of="2017-12-05")
    assert list(due["case_id"]) == ["C1", "C2"]  # C3 is closed
    first = due.iloc[0]
    assert first["still_exceeding"] and first["priority"] == 1
    assert first["n_exceeding_hours_after"] == 1 and first["max_ratio"] == pytest.approx(2.5)
    assert first["due_by"] == "2017-12-02" and first["overdue"]
    assert due.iloc[1]["priority"] == 2 and not due.iloc[1]["still_exceeding"]


def test_reinspection_due_from_hourly_means_with_limits():
    ev = events(
        ("C1", "S1", "fine", "2017-11-01", 100000, "F"),
        ("C1", "S1", "correction_order_served", "2017-11-02", None, "O"),
    )
    hourly = pd.DataFrame(
        {
            "stack_id": ["S1", "S1"],
            "device_id": ["D1", "D1"],
            "pollutant": ["a21026", "a21026"],
            "hour_start": pd.to_datetime(["2017-11-03 02:00", "2017-11-03 03:00"], utc=True),
            "day": ["2017-11-03", "2017-11-03"],
            "mean_corrected": [90.0, 99.0],
            "valid": [True, True],
        }
    )
    limits = pd.DataFrame(
        {
            "stack_id": ["S1"],
            "pollutant": ["a21026"],
            "limit_mg_m3": [100.0],
            "valid_from": [""],
            "valid_to": [""],
        }
    )
    cases = open_cases(pd.DataFrame([exceedance("S1", "2017-11-01", 1)]), ev, STACKS)
    due = reinspection_due(cases, hourly, limits)
    assert due.iloc[0]["priority"] == 3 and due.iloc[0]["n_hours_after"] == 2
