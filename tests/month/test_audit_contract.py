"""One shape of audit record for manually set (S) values, read the same way by validation and by
the CEMS rules (docs/ARCHITECTURE.md, "Audit records of manual values")."""

from __future__ import annotations

import pandas as pd

from tests.enforcement._helpers import SO2, STACKS, minute_rows


def _s_hour() -> pd.DataFrame:
    # 40 normal minutes and 5 set by hand (S) in one hour of SO2: 45 counted minutes only when
    # the S minutes are audited
    return minute_rows("2017-11-01 10:00", 45, flag=["N"] * 40 + ["S"] * 5)


def _audits(rows: pd.DataFrame, start: str, end: str, code: str = SO2) -> pd.DataFrame:
    device = rows["device_id"].iloc[0]
    return pd.DataFrame(
        [{"device_id": device, "code": code, "start": start, "end": end, "auditor": "张工",
          "note": "手工补录"}]
    )  # fmt: skip


def _validation_audited(rows: pd.DataFrame, audits: pd.DataFrame) -> set[str]:
    from validation.validity import audited

    s_rows = rows[rows["flag"] == "S"].reset_index(drop=True)
    return set(s_rows.loc[audited(s_rows, audits), "reading_id"])


def _rules_minutes(rows: pd.DataFrame, audits: pd.DataFrame | None) -> int:
    from enforcement.cems import hourly_means

    hourly = hourly_means(rows, STACKS, audits=audits)
    return int(hourly[hourly["pollutant"] == SO2].iloc[0]["n_valid_minutes"])


def test_the_same_audit_record_counts_the_same_minutes_on_both_sides():
    rows = _s_hour()
    s_times = sorted(rows.loc[rows["flag"] == "S", "data_time"].unique())
    # naive times are Beijing, as the bureau writes them; the rows' data_time is UTC
    first = pd.Timestamp(s_times[0]).tz_convert("Asia/Shanghai").tz_localize(None)
    cases = {
        "whole hour": (str(first.floor("h")), str(first.floor("h") + pd.Timedelta(minutes=59))),
        "first two S minutes": (str(first), str(first + pd.Timedelta(minutes=1))),
        "open end": (str(first + pd.Timedelta(minutes=3)), ""),
        "before the hour": ("2017-11-01 08:00", "2017-11-01 09:00"),
    }
    counted = {}
    for name, (start, end) in cases.items():
        audits = _audits(rows, start, end)
        by_validation = _validation_audited(rows, audits)
        s_so2 = rows[(rows["flag"] == "S") & (rows["code"] == SO2)]
        n_validation = int(s_so2["reading_id"].isin(by_validation).sum())
        counted[name] = _rules_minutes(rows, audits)
        assert counted[name] == 40 + n_validation, name
    assert counted == {
        "whole hour": 45, "first two S minutes": 42, "open end": 42, "before the hour": 40,
    }  # fmt: skip
    # another code's audit does not cover SO2; an empty code covers every code of the device
    assert _rules_minutes(rows, _audits(rows, cases["whole hour"][0], "", code="a21002")) == 40
    assert _rules_minutes(rows, _audits(rows, cases["whole hour"][0], "", code="")) == 45
    assert _rules_minutes(rows, None) == 40
