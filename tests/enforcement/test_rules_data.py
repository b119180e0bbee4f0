"""The enforcement data files: every number names its source and a confidence mark."""

from __future__ import annotations

import pytest

from schemas.enforcement_rules import (
    accountability_rules,
    enforcement_rules,
    penalty_rules,
    rsd_limits,
    setting,
)

MARKS = {"std", "impl", "plan", "config"}


@pytest.mark.parametrize("loader", [enforcement_rules, penalty_rules, accountability_rules])
def test_every_rule_has_source_and_mark(loader):
    rules = loader()
    assert rules
    for rule in rules.values():
        assert rule.source.strip(), rule.name
        assert rule.mark in MARKS, rule.name


def test_rsd_limits_rows_are_complete():
    rows = rsd_limits()
    assert {r["kind"] for r in rows} == {"window", "limit"}
    for row in rows:
        assert row["bound"] in {"min", "max"}
        float(row["value"])
        assert row["source"].strip() and row["mark"] in MARKS
    diesel = {r["quantity"]: float(r["value"]) for r in rows if r["fuel_type"] == "diesel"}
    assert diesel == {"opacity_pct": 30.0, "ringelmann": 1.0, "no_ppm": 1500.0}


def test_unknown_setting_names_the_file():
    with pytest.raises(KeyError, match="enforcement.toml"):
        setting("cems.no_such_rule")
