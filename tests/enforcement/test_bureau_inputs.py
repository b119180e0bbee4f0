"""Bureau CSV readers (errors name file, line, column) and the simulated inputs with their truth."""

from __future__ import annotations

import pandas as pd
import pytest

from enforcement.accountability import accountability
from enforcement.bureau_inputs import (
    BureauInputError,
    read_bureau_csv,
    read_bureau_inputs,
    simulate_bureau_inputs,
    validate_frame,
    write_bureau_inputs,
)
from enforcement.penalties import case_rounds, check_events, penalty_ledger
from enforcement.sampling import agency_sampling, failed_samples, station_sampling


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_fuel_samples_are_typed(tmp_path):
    path = write(
        tmp_path,
        "fuel_samples.csv",
        "\ufeffsample_id,gas_station_id,date,product,sulfur_mg_kg,result\n"
        "S1,G01,2017-11-03,92#,8.5,合格\nS2,G02,2017-11-04,95#,,\n",
    )
    frame = read_bureau_csv(path)
    assert list(frame["sulfur_mg_kg"].isna()) == [False, True]
    assert frame.loc[0, "sulfur_mg_kg"] == 8.5 and frame.loc[0, "date"] == "2017-11-03"


def test_errors_name_file_line_and_column(tmp_path):
    path = write(
        tmp_path,
        "fuel_samples.csv",
        "sample_id,gas_station_id,date,product,sulfur_mg_kg,result\n"
        "S1,G01,2017-11-03,92#,8.5,合格\n"
        "S2,G02,2017/11/04,95#,abc,合格\n"
        "S1,,2017-11-05,95#,-1,合格\n",
    )
    with pytest.raises(BureauInputError) as caught:
        read_bureau_csv(path)
    problems = {(line, column) for _, line, column, _ in caught.value.problems}
    assert problems == {
        (3, "date"),
        (3, "sulfur_mg_kg"),
        (4, "gas_station_id"),
        (4, "sulfur_mg_kg"),
        (4, "sample_id"),
    }
    text = str(caught.value)
    assert "fuel_samples.csv line 3 column 'date'" in text and "duplicate id 'S1'" in text


def test_missing_header_column(tmp_path):
    path = write(tmp_path, "agency_checks.csv", "check_id,agency_id,result\nK1,A1,pass\n")
    with pytest.raises(BureauInputError, match="agency_checks.csv line 1 column 'date'"):
        read_bureau_csv(path)


def test_findings_kind_and_assigned_deadline_are_checked():
    frame = pd.DataFrame(
        {
            "finding_id": ["F1", "F2"],
            "subdistrict_id": ["SD01", "SD01"],
            "date": ["2017-11-01", "2017-11-02"],
            "kind": ["assigned_issue", "ufo_sighting"],
            "count": ["1", "1"],
            "assigned_deadline": ["", ""],
            "rectified_date": ["", ""],
            "note": ["", ""],
        }
    )
    with pytest.raises(BureauInputError) as caught:
        validate_frame(frame, "inspection_findings.csv")
    columns = [(line, column) for _, line, column, _ in caught.value.problems]
    assert columns == [(2, "assigned_deadline"), (3, "kind")]


def test_case_events_reader_leaves_row_refusals_to_check_events(tmp_path):
    path = write(
        tmp_path,
        "case_events.csv",
        "case_id,stack_id,event,date,amount_yuan,document_no,note\n"
        "C1,S1,fine,2017-11-01,-5,F1,\nC1,S1,penalty,2017-11-02,,X,\n",
    )
    frame = read_bureau_csv(path)
    _, refused = check_events(frame)
    assert sorted(refused["document_no"]) == ["F1", "X"]


# --- the simulator ----------------------------------------------------------------------------


def registry() -> dict[str, pd.DataFrame]:
    subdistricts = pd.DataFrame(
        {"subdistrict_id": [f"SD{i:02d}" for i in range(1, 18)], "name": "街道"}
    )
    stacks = pd.DataFrame(
        {
            "stack_id": [f"ST{i:02d}" for i in range(1, 7)],
            "enterprise_id": [f"E{i:02d}" for i in range(1, 7)],
            "device_id": [f"D{i:02d}" for i in range(1, 7)],
        }
    )
    gas = pd.DataFrame(
        {
            "gas_station_id": [f"G{i:02d}" for i in range(1, 21)],
            "name": "站",
            "subdistrict_id": "SD01",
        }
    )
    return {"subdistricts": subdistricts, "stacks": stacks, "gas_stations": gas}


EXCEEDANCES = pd.DataFrame(
    {"stack_id": ["ST05", "ST05", "ST02"], "day": ["2017-11-03", "2017-11-04", "2017-11-06"]}
)


def test_simulation_is_deterministic():
    a = simulate_bureau_inputs(registry(), EXCEEDANCES, 7, "2017-11")
    b = simulate_bureau_inputs(registry(), EXCEEDANCES, 7, "2017-11")
    c = simulate_bureau_inputs(registry(), EXCEEDANCES, 8, "2017-11")
    for name in (
        "case_events",
        "fuel_samples",
        "inspection_agencies",
        "agency_checks",
        "inspection_findings",
    ):
        pd.testing.assert_frame_equal(a[name], b[name])
    assert a["truth"] == b["truth"]
    assert not a["fuel_samples"].equals(c["fuel_samples"])


def test_simulated_cases_meet_their_truth():
    sim = simulate_bureau_inputs(registry(), EXCEEDANCES, 11, "2017-11")
    truth = sim["truth"]["cases"]
    events = sim["case_events"]
    stacks = registry()["stacks"]
    # the stacks that exceeded first get the first cases
    assert truth["cases"]["CASE-2017-11-1"]["stack_id"] == "ST05"
    assert truth["cases"]["CASE-2017-11-2"]["stack_id"] == "ST02"
    _, refused = check_events(events, stacks)
    assert sorted(refused["document_no"]) == sorted(r["document_no"] for r in truth["refused"])
    for expected in truth["refused"]:
        reason = refused.loc[refused["document_no"] == expected["document_no"], "reason"].item()
        assert expected["reason"] in reason
    ledger = penalty_ledger(events, stacks)
    rounds = case_rounds(events, stacks).set_index("case_id")
    for case_id, expected in truth["cases"].items():
        mine = ledger[ledger["case_id"] == case_id]
        assert list(mine["penalty_days"]) == expected["penalty_days"], case_id
        assert list(mine["amount_yuan"]) == expected["amounts"], case_id
        assert rounds.loc[case_id, "state"] == expected["state"], case_id
    # the halt case: 10 calendar days, 4 halted
    halt = ledger[ledger["case_id"] == "CASE-2017-11-3"].iloc[0]
    assert (halt["calendar_days"], halt["halted_days"]) == (10, 4)


def test_simulated_sampling_and_findings_meet_their_truth(tmp_path):
    reg = registry()
    sim = simulate_bureau_inputs(reg, None, 3, "2017-11")
    # through the files, as the pipeline reads them
    write_bureau_inputs(sim, tmp_path)
    inputs = read_bureau_inputs(tmp_path)
    assert set(inputs) == {
        "case_events",
        "fuel_samples",
        "inspection_agencies",
        "agency_checks",
        "inspection_findings",
        "disclosure_findings",
        "dustfall_records",
    }
    fuel = sim["truth"]["fuel"]
    sampled = station_sampling(inputs["fuel_samples"], reg["gas_stations"], ["2017-11"]).iloc[0]
    assert (
        bool(sampled["complies"]) == fuel["complies"]
        and sampled["covered_ids"] == fuel["sampled_stations"]
    )
    assert (
        list(failed_samples(inputs["fuel_samples"], reg["gas_stations"])["sample_id"])
        == fuel["failed_sample_ids"]
    )
    agencies = sim["truth"]["agencies"]
    checked = agency_sampling(
        inputs["agency_checks"],
        inputs["inspection_agencies"],
        [agencies["month_under"], agencies["month_ok"]],
    ).set_index("month")
    assert not checked.loc[agencies["month_under"], "complies"]
    assert bool(checked.loc[agencies["month_ok"], "complies"])
    assert checked.loc[agencies["month_ok"], "failed_agency_ids"] == agencies["failed_agency_ids"]
    levels = sim["truth"]["accountability"]["levels"]
    out = accountability(inputs["inspection_findings"], ["2017-11"], reg["subdistricts"]).set_index(
        "subdistrict_id"
    )
    for subdistrict, level in levels.items():
        assert out.loc[subdistrict, "level"] == level
    assert sorted(set(levels.values())) == ["", "deputy", "head", "secretary"]
    # without a stack registry the no-exceedance simulation still picks four distinct stacks
    assert sim["case_events"]["stack_id"].nunique() >= 4
