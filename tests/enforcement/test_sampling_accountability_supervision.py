"""Fuel and agency sampling shares, quantified accountability, the supervision list."""

from __future__ import annotations

import pandas as pd
import pytest

from enforcement.accountability import accountability, scored_findings
from enforcement.sampling import agency_sampling, at_least, failed_samples, station_sampling
from enforcement.supervision import supervision_list

# --- fuel sampling ------------------------------------------------------------------------------

STATIONS = pd.DataFrame(
    {
        "gas_station_id": [f"G{i:02d}" for i in range(30)],
        "name": [f"站{i}" for i in range(30)],
        "subdistrict_id": [f"SD{i % 3:02d}" for i in range(30)],
    }
)


def samples(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["sample_id", "gas_station_id", "date", "product", "sulfur_mg_kg", "result"]
    )


def test_exactly_10_percent_of_stations_complies():
    # 3 of 30 stations in November (one sampled twice), 2 of 30 in December
    frame = samples(
        [
            ("S1", "G00", "2017-11-03", "92#", "8.0", "合格"),
            ("S2", "G01", "2017-11-04", "95#", "9.5", "合格"),
            ("S3", "G02", "2017-11-05", "0# diesel", "7.0", "合格"),
            ("S4", "G02", "2017-11-20", "92#", "7.0", "合格"),
            ("S5", "G03", "2017-12-01", "92#", "7.0", "合格"),
            ("S6", "G04", "2017-12-02", "92#", "7.0", "合格"),
            ("S7", "G99", "2017-12-03", "92#", "7.0", "合格"),  # not in the registry
        ]
    )
    out = station_sampling(frame, STATIONS, ["2017-11", "2017-12"]).set_index("month")
    assert out.loc["2017-11", "n_sampled"] == 3 and bool(out.loc["2017-11", "complies"])
    assert out.loc["2017-12", "n_sampled"] == 2 and not out.loc["2017-12", "complies"]
    assert out.loc["2017-12", "unknown_ids"] == ["G99"]
    assert out.loc["2017-11", "n_stations"] == 30


def test_at_least_is_exact():
    assert at_least(3, 30, 0.10) and at_least(1, 10, 0.1) and not at_least(2, 30, 0.10)
    assert at_least(2, 10, 0.20) and not at_least(1, 6, 0.20) and not at_least(0, 0, 0.1)


def test_failed_samples_sulfur_strictly_above_10_and_failed_labels():
    frame = samples(
        [
            ("S1", "G00", "2017-11-03", "92#", "10", "合格"),  # exactly 10: passes
            ("S2", "G01", "2017-11-04", "92#", "10.5", "合格"),  # over: fails despite the label
            ("S3", "G02", "2017-11-05", "0# diesel", "6", "不合格"),  # another parameter failed
        ]
    )
    failed = failed_samples(frame, STATIONS)
    assert list(failed["sample_id"]) == ["S2", "S3"]
    assert "sulfur 10.5 mg/kg > 10 mg/kg" in failed.iloc[0]["reason"]
    assert failed.iloc[1]["reason"] == "result 不合格"
    assert failed.iloc[0]["station_name"] == "站1" and failed.iloc[0]["subdistrict_id"] == "SD01"
    assert station_sampling(frame, STATIONS, ["2017-11"]).iloc[0]["n_failed_samples"] == 2


def test_agency_checks_20_percent():
    agencies = pd.DataFrame(
        {"agency_id": [f"A{i}" for i in range(10)], "name": "x", "subdistrict_id": "SD00"}
    )
    checks = pd.DataFrame(
        {
            "check_id": ["K1", "K2", "K3"],
            "agency_id": ["A1", "A2", "A3"],
            "date": ["2017-11-02", "2017-11-09", "2017-12-05"],
            "result": ["pass", "fail", "pass"],
            "note": "",
        }
    )
    out = agency_sampling(checks, agencies, ["2017-11", "2017-12"]).set_index("month")
    assert bool(out.loc["2017-11", "complies"]) and out.loc["2017-11", "share"] == pytest.approx(
        0.2
    )
    assert not out.loc["2017-12", "complies"]
    assert out.loc["2017-11", "failed_agency_ids"] == ["A2"]


# --- accountability ----------------------------------------------------------------------------


def findings(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=[
            "finding_id",
            "subdistrict_id",
            "date",
            "kind",
            "count",
            "assigned_deadline",
            "rectified_date",
            "note",
        ],
    )


def test_scores_from_the_annex():
    frame = findings(
        [
            ("F1", "SD01", "2017-11-03", "coal_village_unfinished", 1, "", "", ""),
            ("F2", "SD01", "2017-11-04", "coal_village_reburning", 1, "", "", ""),
            ("F3", "SD01", "2017-11-05", "coal_boiler_not_retired", 3, "", "", ""),
            ("F4", "SD01", "2017-11-06", "offpeak_plan_missing", 1, "", "", ""),
            ("F5", "SD01", "2017-11-07", "offpeak_enterprise_not_following", 2, "", "", ""),
            ("F6", "SD01", "2017-10-20", "coal_boiler_not_retired", 1, "", "", ""),  # before 11-01
            ("F7", "SD01", "2017-11-08", "nonsense", 1, "", "", ""),
        ]
    )
    scored = scored_findings(frame).set_index("finding_id")
    assert list(scored.loc[["F1", "F2", "F3", "F4", "F5"], "score"]) == [0.5, 0.5, 1.5, 1.0, 2.0]
    assert not scored.loc["F6", "counts"] and "2017-11-01" in scored.loc["F6", "why_not"]
    assert scored.loc["F7", "why_not"] == "unknown kind"
    out = accountability(frame, ["2017-11"]).iloc[0]
    # 0.5 + 0.5 + 1.5 + 1 + 2 = 5.5 > 3 → party secretary
    assert out["b_new_score"] == pytest.approx(5.5)
    assert out["level"] == "secretary" and out["article"] == "第十条"
    assert out["levels"] == ["deputy", "head", "secretary"]


@pytest.mark.parametrize(
    ("b_rows", "a_rows", "expected"),
    [
        (2, 0, ""),  # 2 × 0.5 = 1: not more than 1
        (3, 0, "deputy"),  # 1.5 > 1
        (4, 0, "deputy"),  # 2: not more than 2
        (5, 0, "head"),  # 2.5 > 2
        (6, 0, "head"),  # 3: not more than 3
        (7, 0, "secretary"),
        (0, 1, "deputy"),  # any (a)
        (0, 2, "head"),  # more than 1
        (0, 3, "secretary"),  # more than 2
    ],
)
def test_escalation_cut_offs(b_rows, a_rows, expected):
    rows = [
        (f"B{i}", "SD02", "2017-11-10", "coal_village_unfinished", 1, "", "", "")
        for i in range(b_rows)
    ]
    rows += [
        (f"A{i}", "SD02", "2017-10-01", "assigned_issue", 1, "2017-11-15", "", "")
        for i in range(a_rows)
    ]
    out = accountability(findings(rows), ["2017-11"], pd.DataFrame({"subdistrict_id": ["SD02"]}))
    assert out.iloc[0]["level"] == expected


def test_assigned_issue_counts_in_its_deadline_month_unless_rectified_on_time():
    frame = findings(
        [
            (
                "A1",
                "SD03",
                "2017-10-01",
                "assigned_issue",
                1,
                "2017-11-15",
                "2017-11-15",
                "",
            ),  # on time
            (
                "A2",
                "SD03",
                "2017-10-01",
                "assigned_issue",
                1,
                "2017-11-15",
                "2017-11-16",
                "",
            ),  # late
            ("A3", "SD03", "2017-10-01", "assigned_issue", 1, "2017-11-30", "", ""),  # never
            ("A4", "SD03", "2017-10-01", "assigned_issue", 1, "2017-12-10", "", ""),  # next month
        ]
    )
    out = accountability(frame, ["2017-11", "2017-12"]).set_index("month")
    assert out.loc["2017-11", "a_unrectified"] == 2 and out.loc["2017-11", "finding_ids"] == [
        "A2",
        "A3",
    ]
    assert out.loc["2017-11", "level"] == "head"
    assert out.loc["2017-12", "a_unrectified"] == 1 and out.loc["2017-12", "level"] == "deputy"


# --- supervision -------------------------------------------------------------------------------

ENTERPRISES = pd.DataFrame(
    {
        "enterprise_id": ["E1", "E2", "E3", "E4"],
        "name": "x",
        "subdistrict_id": ["SD01", "SD01", "SD02", "SD03"],
        "industry": "x",
    }
)
SUP_STACKS = pd.DataFrame(
    {
        "stack_id": ["S1", "S2", "S3", "S4"],
        "enterprise_id": ["E1", "E2", "E3", "E4"],
        "device_id": ["D1", "D2", "D3", "D4"],
    }
)


def test_supervision_two_enterprises_or_transmission_under_90():
    ex = pd.DataFrame(
        {
            "stack_id": ["S1", "S1", "S2", "S3", "S3"],
            "day": ["2017-11-02", "2017-11-03", "2017-11-20", "2017-11-05", "2017-11-06"],
        }
    )
    rates = pd.DataFrame(
        {
            "device_id": ["D1", "D2", "D3", "D4"],
            "month": "2017-11",
            "received": [43200, 43200, 43200, 43200],
            "valid": [43200, 43200, 38880, 38879],  # D3 exactly 90 %, D4 just under
            "due": 43200,
        }
    )
    rates["rate"] = rates["valid"] / rates["due"]
    out = supervision_list(ex, rates, SUP_STACKS, ENTERPRISES, ["2017-11"]).set_index(
        "subdistrict_id"
    )
    assert bool(out.loc["SD01", "listed_for_exceedances"]) and out.loc[
        "SD01", "exceeding_enterprises"
    ] == ["E1", "E2"]
    # SD02: one enterprise exceeding several times is not "several enterprises"; 90 % complies
    assert not out.loc["SD02", "listed"]
    assert bool(out.loc["SD03", "listed_for_transmission"]) and out.loc[
        "SD03", "stacks_under_transmission"
    ] == ["S4"]
    assert "S4" in out.loc["SD03", "reasons"]
