"""Cases, day-by-day penalties, sampling and accountability from the bureau's files.

The simulated bureau inputs need at least four stacks, which the tiny district does not have, so
these run on the demo-scale registry (no device data is needed: the bureau's files and the
registry are the whole input). Expected values are the inputs' own truth
(``enforcement.bureau_inputs.simulate_bureau_inputs``) and DOMAIN.md section 9 by hand.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from tests.pipeline.conftest import MONTH, lantian_home

SEED = 2017


@pytest.fixture(scope="module")
def bureau(tmp_path_factory):
    from agents.simulate.registry import build_registry, write_registry
    from enforcement.warehouse import Warehouse
    from lantian import pipeline, rules_monthly, settings
    from lantian.direct_load import load_bureau_inputs

    home = tmp_path_factory.mktemp("bureau-home")
    registry = build_registry(SEED, date(2017, 12, 1), 3, "demo")
    with lantian_home(home):
        write_registry(registry, settings.registry_dir())
        truth = load_bureau_inputs(settings.registry_dir(), registry, MONTH, SEED)
        pipeline.sync_registry()
        steps = [rules_monthly.cases_month(MONTH), rules_monthly.bureau_month(MONTH)]
    return truth, Warehouse(f"sqlite:///{home / 'warehouse.sqlite'}"), steps, home


def test_the_files_land_beside_the_registry(bureau):
    _, _, steps, home = bureau
    written = {p.name for p in (home / "registry").glob("*.csv")}
    assert {
        "case_events.csv", "fuel_samples.csv", "inspection_agencies.csv", "agency_checks.csv",
        "inspection_findings.csv", "stacks.csv",
    } <= written  # fmt: skip
    assert "case_events" in steps[1]["note"] and "inspection_findings" in steps[1]["note"]


def test_penalty_days_and_amounts(bureau):
    truth, wh, _, _ = bureau
    ledger = wh.read_derived("penalty_ledger", MONTH)
    for case_id, planted in truth["cases"]["cases"].items():
        mine = ledger[ledger["case_id"] == case_id].sort_values("decision_no")
        assert list(mine["penalty_days"]) == planted["penalty_days"], case_id
        assert list(mine["amount_yuan"]) == pytest.approx(planted["amounts"]), case_id
        if "halted_days" in planted:
            assert list(mine["halted_days"]) == planted["halted_days"]
    # two failed re-inspections a week apart: 7 + 7 days, each decision fine × its days
    two = ledger[ledger["case_id"] == f"CASE-{MONTH}-2"]
    assert list(two["penalty_days"]) == [7, 7]
    assert (two["amount_yuan"] == two["fine_yuan"] * 7).all()
    assert ledger["enterprise_name"].notna().all() and ledger["basis"].str.len().gt(0).all()


def test_case_states_and_refused_events(bureau):
    truth, wh, _, _ = bureau
    cases = wh.read_derived("cases", MONTH).set_index("case_id")
    for case_id, planted in truth["cases"]["cases"].items():
        assert cases.loc[case_id, "status"] == planted["state"], case_id
        assert cases.loc[case_id, "stack_id"] == planted["stack_id"]
    refused = wh.read_derived("case_events_refused", MONTH)
    assert set(refused["document_no"]) == {r["document_no"] for r in truth["cases"]["refused"]}
    unknown = refused[refused["stack_id"] == "NO-SUCH-STACK"]
    assert len(unknown) == 1 and "stack" in unknown.iloc[0]["reason"]


def test_sampling_ratios_and_failed_samples(bureau):
    truth, wh, _, _ = bureau
    ratios = wh.read_derived("sampling_ratios", MONTH)
    fuel = ratios[ratios["n_stations"].notna()].iloc[0]
    assert fuel["n_stations"] == truth["fuel"]["n_stations"] == 5
    assert fuel["n_sampled"] == len(truth["fuel"]["sampled_stations"])
    assert bool(fuel["complies"]) is truth["fuel"]["complies"]
    agencies = ratios[ratios["n_agencies"].notna()].iloc[0]
    # ten agencies, ceil(10 × 20 %) + 1 = 3 checked this month: 30 % >= 20 %
    assert (agencies["n_agencies"], agencies["n_checked"]) == (10, 3) and agencies["complies"]
    assert agencies["failed_agency_ids"] == truth["agencies"]["failed_agency_ids"]
    failed = wh.read_derived("sampling_failed", MONTH)
    assert list(failed["sample_id"]) == truth["fuel"]["failed_sample_ids"]
    assert list(failed["gas_station_id"]) == truth["fuel"]["failed_station_ids"]


def test_accountability_escalations(bureau):
    truth, wh, _, _ = bureau
    table = wh.read_derived("accountability", MONTH).set_index("subdistrict_id")
    levels = truth["accountability"]["levels"]
    assert len(levels) == 4
    for subdistrict, level in levels.items():
        assert table.loc[subdistrict, "level"] == level, subdistrict
    nobody = [s for s, lv in levels.items() if not lv]
    assert nobody and (table.loc[nobody, "accountable"] == "").all()
    others = table.drop(index=list(levels))
    assert (others["level"] == "").all()


def test_the_tiny_registry_is_too_small_for_case_events(tmp_path, tiny_scenario):
    from lantian.direct_load import load_bureau_inputs

    with pytest.raises(ValueError, match="at least four"):
        load_bureau_inputs(tmp_path, tiny_scenario, MONTH, SEED)
    assert not (tmp_path / "case_events.csv").exists()
    assert len(pd.read_csv(tmp_path / "stacks.csv")) == 2
