"""The validation rules as data: well formed, sourced, and a change is a backfill, not a code edit."""

from __future__ import annotations

import shutil

import pytest

from schemas.rules import DATA_DIR, hj212_codes
from schemas.validation_rules import STREAMS, load_rules
from tests.validation.frames import measurements
from validation.suites import specs

MARKS = {"std", "impl", "plan", "config"}


def test_every_parameter_and_range_has_a_source_and_a_mark(rules):
    for param in rules.params.values():
        assert param.mark in MARKS, param.name
        assert param.source.strip(), param.name
    for r in rules.ranges:
        assert r.mark in MARKS and r.source.strip(), (r.stream, r.code)
        assert r.min <= r.max, (r.stream, r.code)


def test_range_codes_exist_in_the_code_table_and_profiles(rules):
    known = {(row["stream"], row["code_2017"]) for row in hj212_codes()}
    for r in rules.ranges:
        if r.stream in ("cems", "ambient"):
            assert (r.stream, r.code) in known, (r.stream, r.code)
        else:
            assert r.code in rules.columns(r.stream), (r.stream, r.code)


def test_o2_sits_below_its_physical_range(rules):
    o2 = next(r for r in rules.ranges_for("cems") if r.kind == "o2")
    assert rules.threshold("cems.o2_fault_pct") < o2.max == 21


@pytest.mark.parametrize("stream", STREAMS)
def test_every_expectation_has_a_configured_severity(rules, stream):
    names = [s.name for s in specs(stream, rules)]
    assert len(names) == len(set(names))
    for spec in specs(stream, rules):
        assert spec.severity in ("critical", "warning") and spec.level in ("row", "table")
        assert spec.expectation.meta["severity"] == spec.severity
        if spec.level == "row" and spec.severity == "critical":
            assert spec.reason is not None, spec.name


def test_unknown_stream_is_refused(rules):
    with pytest.raises(ValueError, match="unknown stream 'water'"):
        specs("water", rules)


def test_rule_change_is_a_backfill(tmp_path, validate):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    ranges = (data / "validation_ranges.csv").read_text(encoding="utf-8")
    line = next(x for x in ranges.splitlines() if x.startswith("cems,a21026,"))
    changed = line.replace(",-5,10000,", ",-5,85,")
    (data / "validation_ranges.csv").write_text(ranges.replace(line, changed), encoding="utf-8")
    stricter = load_rules(data)
    assert stricter.fingerprint != load_rules().fingerprint

    frame = measurements(minutes=30)  # SO2 around 80 +- 5 %
    over = frame[(frame["code"] == "a21026") & (frame["avg"] > 85)]
    assert len(over) > 0
    before = validate("cems", frame)
    after = validate("cems", frame, rules=stricter)
    assert before.quarantine.empty
    assert set(after.quarantine["reading_id"]) == set(over["reading_id"])
    assert after.quarantine["reason"].str.endswith("outside [-5, 85] mg/m3").all()
    assert after.suite != before.suite  # the old suite is kept beside the new one
