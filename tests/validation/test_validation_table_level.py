"""Table-level (critical) expectations: what makes the DAG task fail, and what does not."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.validation.frames import DAY, devices, measurements
from validation.run import RESULT_COLUMNS, CriticalValidationError, raise_if_critical


def _result(outcome, name):
    return outcome.results.set_index("expectation").loc[name]


def test_results_have_one_row_per_expectation_with_counts(validate):
    frame = measurements(minutes=3)
    frame.loc[4, "avg"] = -50.0  # O2 below zero
    outcome = validate("cems", frame)
    results = outcome.results
    assert list(results.columns) == RESULT_COLUMNS
    assert results["expectation"].is_unique
    assert set(results["run_id"]) == {"test-run"} and set(results["day"]) == {DAY}
    assert results["suite"].iloc[0].startswith("lantian_cems_")
    assert set(results["severity"]) == {"critical", "warning"}
    range_avg = _result(outcome, "range.avg")
    assert (range_avg["element_count"], range_avg["unexpected_count"]) == (15, 1)
    assert json.loads(range_avg["unexpected_ids"]) == [frame.loc[4, "reading_id"]]
    # passing expectations store an empty id list, not a missing value
    assert json.loads(_result(outcome, "flag_known")["unexpected_ids"]) == []
    # the quarantine share is reported like an expectation (GX cannot know it in advance)
    share = _result(outcome, "quarantine_share")
    assert (share["unexpected_count"], share["element_count"]) == (1, 15)
    assert share["success"] and "not judged under 100 rows" in share["detail"]
    raise_if_critical(outcome)  # row-level failures alone never fail the task


def test_missing_column_fails_the_task_and_judges_no_rows(validate):
    frame = measurements(minutes=2).drop(columns=["flag"])
    outcome = validate("cems", frame)
    assert outcome.critical_failed
    columns = _result(outcome, "schema_columns")
    assert not columns["success"] and columns["detail"] == "missing columns: flag"
    assert outcome.valid.empty and outcome.quarantine.empty
    # the row check on the missing column could not run: it is reported, as table level
    flag = _result(outcome, "flag_known")
    assert flag["level"] == "table" and flag["detail"].startswith("could not run:")
    with pytest.raises(CriticalValidationError) as caught:
        raise_if_critical(outcome)
    message = str(caught.value)
    assert f"cems {DAY}" in message and "schema_columns: 1 of 10 (missing columns: flag)" in message
    assert "flag_known" in message


def test_devices_missing_from_the_registry_are_quarantined(validate):
    outcome = validate("cems", measurements(minutes=2), reg={})
    assert len(outcome.quarantine) == 10
    assert set(outcome.quarantine["reason"]) == {"device:CEMS001 not in the registry"}


def test_wrong_types_fail_the_task(validate):
    frame = measurements(minutes=2)
    frame["data_time"] = frame["data_time"].dt.tz_localize(None)  # naive: zone lost
    frame["avg"] = frame["avg"].astype("str")  # numbers left as text
    outcome = validate("cems", frame)
    types = _result(outcome, "schema_types")
    assert not types["success"] and types["unexpected_count"] == 2
    assert "data_time is datetime64[us], not time" in types["detail"] or (
        "data_time is datetime64[ns], not time" in types["detail"]
    )
    assert "avg is str, not float" in types["detail"]
    with pytest.raises(CriticalValidationError, match="schema_types: 2 of 10"):
        raise_if_critical(outcome)


def test_empty_partition_fails_only_when_devices_were_due(validate):
    empty = measurements(minutes=1).iloc[0:0]
    installed = {"devices": devices([("CEMS001", "cems", "2017-10-01")])}
    due = validate("cems", empty, reg=installed)
    assert due.critical_failed
    assert not _result(due, "rows_due")["success"]
    with pytest.raises(CriticalValidationError, match="rows_due: 1 of 0"):
        raise_if_critical(due)

    not_yet = {"devices": devices([("CEMS001", "cems", "2017-12-01")])}
    outcome = validate("cems", empty, reg=not_yet)
    assert not outcome.critical_failed and outcome.valid.empty


def test_empty_remote_sensing_day_is_not_a_failure(validate):
    # remote sensing does not measure in rain: validation.toml due.streams leaves it out
    from tests.validation.frames import rsd_passes

    outcome = validate("rsd", rsd_passes().iloc[0:0])
    assert not outcome.critical_failed


def test_too_large_a_quarantined_share_fails_the_task(validate):
    frame = measurements(minutes=25)  # 125 rows
    frame.loc[frame.index[:30], "flag"] = "?"  # 24 % garbage flags: the logger is broken
    outcome = validate("cems", frame)
    share = _result(outcome, "quarantine_share")
    assert not share["success"] and share["unexpected_count"] == 30
    assert share["detail"] == "24.0% quarantined (limit 20%)"
    assert outcome.critical_failed
    assert len(outcome.quarantine) == 30 and len(outcome.valid) == 95
    with pytest.raises(CriticalValidationError, match="quarantine_share: 30 of 125"):
        raise_if_critical(outcome)


def test_share_at_the_limit_passes(validate):
    frame = measurements(minutes=20)  # 100 rows
    frame.loc[frame.index[:20], "flag"] = "?"
    outcome = validate("cems", frame)
    assert _result(outcome, "quarantine_share")["success"]
    assert not outcome.critical_failed


def test_data_docs_are_built_into_docs_dir(validate, tmp_path):
    frame = measurements(minutes=2)
    frame.loc[0, "flag"] = "X"
    outcome = validate("cems", frame, docs_dir=tmp_path / "docs")
    assert len(outcome.quarantine) == 1
    index = tmp_path / "docs" / "index.html"
    assert index.exists()
    pages = list((tmp_path / "docs").rglob("*.html"))
    assert len(pages) >= 2  # the index and the validation result page
    assert any("lantian_cems_" in p.read_text(encoding="utf-8") for p in pages)


def test_outcome_rows_keep_quarantined_rows_for_completeness(validate):
    frame = measurements(minutes=2)
    frame.loc[1, "avg"] = 1e6
    outcome = validate("cems", frame)
    rows = outcome.rows
    assert len(rows) == 10 and rows["quarantined"].sum() == 1
    assert rows.loc[1, "invalid_reason"].startswith("range:a21026.avg=1e+06")
    assert not rows.loc[1, "valid"]
    assert isinstance(outcome.valid, pd.DataFrame) and len(outcome.valid) == 9
