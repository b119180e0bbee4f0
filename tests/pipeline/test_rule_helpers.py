"""The wiring's own helpers on small frames with hand-computed answers (no warehouse)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from schemas.reading import BEIJING

DEVICES = pd.DataFrame(
    {
        "device_id": ["C1", "A1", "A2"],
        "stream": ["cems", "ambient", "ambient"],
        "install_date": ["2017-01-01", "2017-01-01", "2017-12-02"],
    }
)


def test_the_units_verdict_goes_back_to_judge_passes():
    from lantian.rules_daily import unit_verdict_passes

    passes = pd.DataFrame(
        {
            "reading_id": ["ok", "vsp", "clock", "unknown"],
            "unit_valid": [1.0, 0.0, 1.0, np.nan],  # the store keeps the profile's int as float
            "unit_invalid_reason": ["", "vsp", "", None],
            "valid": [True, False, False, True],
            "invalid_reason": ["", "rsd:vsp", "clock:jump", ""],
        }
    )
    out = unit_verdict_passes(passes)
    # the pass the pipeline refused for its clock is left out; the unit's own reject stays,
    # to be named "unit_flag" by judge_passes
    assert list(out["reading_id"]) == ["ok", "vsp", "unknown"]
    assert list(out["valid"]) == ["1", "0", ""]
    assert list(out["invalid_reason"]) == ["", "vsp", ""]


def test_quarantined_rows_are_received_but_not_valid():
    from lantian.rules_daily import quarantined_rows, transmission_rows

    row = {"reading_id": "q1", "device_id": "C1", "cn": "2051", "code": "a21026", "avg": 1.0}
    quarantine = pd.DataFrame(
        {
            "reading_id": ["q1", "bad"],
            "stream": ["cems", "cems"],
            "row_json": [json.dumps(row), "{truncated"],
        }
    )
    held = quarantined_rows(quarantine)
    assert held.to_dict("records") == [
        {k: row[k] for k in ("reading_id", "device_id", "cn", "code")}
    ]
    codes = ("a34013", "a21026", "a21002", "a19001")
    stored = pd.DataFrame(
        [
            {
                "device_id": "C1",
                "reading_id": rid,
                "cn": "2051",
                "code": c,
                "stream": "cems",
                "day": "2017-12-01",
                "valid": not (rid == "r2" and c == "a19001"),
            }
            for rid in ("r1", "r2", "r3")
            for c in codes
        ]  # fmt: skip
    )
    rates = transmission_rows(stored, quarantine, DEVICES, "2017-12-01").set_index("device_id")
    c1 = rates.loc["C1"]
    # 3 stored records (r2's O2 invalid) + 1 quarantined: 4 received of 1440, 2 valid
    assert (c1["due"], c1["received"], c1["valid"]) == (1440, 4, 2)
    assert c1["effective_rate"] == pytest.approx(2 / 1440)
    assert c1["validity_rate"] == pytest.approx(2 / 4)
    # A2 was installed the day after: nothing was due from it
    assert "A1" in rates.index and "A2" not in rates.index
    assert rates.loc["A1", "received"] == 0 and not rates.loc["A1", "complies"]


def test_the_district_averages_stations_then_indexes_24_hours():
    """Two stations at 100 and 200 µg/m³ PM2.5 for a day: the district hour is 150 µg/m³, whose
    24-hour IAQI is exactly 200 (HJ 633 breakpoint); a window with 19 valid hours has no value."""
    from lantian.rules_daily import district_rolling_aqi

    ends = pd.date_range("2017-12-01 01:00", periods=24, freq="h", tz=BEIJING)
    hourly = pd.DataFrame(
        {
            "device_id": ["S1"] * 24 + ["S2"] * 24,
            "hour_end": list(ends) * 2,
            "pm25": [100.0] * 24 + [200.0] * 24,
        }
    )
    for item in ("so2", "no2", "co", "o3_1h", "pm10"):
        hourly[item] = np.nan
    stations = pd.DataFrame(
        {"station_id": ["M1", "M2"], "device_id": ["S1", "S2"], "subdistrict_id": ["J1", "J2"]}
    )
    rolling = district_rolling_aqi(hourly, stations).set_index("hour_end")
    assert np.isnan(rolling.loc[ends[18], "aqi_24h"])  # 19 hours
    assert rolling.loc[ends[19], "aqi_24h"] == 200  # 20 hours of 150
    assert rolling.loc[ends[23], "aqi_24h"] == 200
    assert (rolling["n_stations"] == 2).all()


def test_alert_episode_from_a_hand_series():
    """30 hours above 200, then clean: blue at the first hour, yellow once a second
    non-overlapping 24-hour window is above 200 (hour 25), lifted after 36 clean hours."""
    from lantian.rules_monthly import alert_frames

    hours = pd.date_range("2017-12-01 01:00", periods=30 + 40, freq="h", tz=BEIJING)
    series = pd.Series([250.0] * 30 + [100.0] * 40, index=hours)
    episodes, transitions = alert_frames(series, "2017-12")
    assert list(transitions["to_level"]) == ["blue", "yellow", "none"]
    times = [pd.Timestamp(t).tz_convert(BEIJING) for t in transitions["time"]]
    assert times == [hours[0], hours[24], hours[30 + 35]]
    assert len(episodes) == 1 and episodes.loc[0, "level"] == "yellow"
    assert episodes.loc[0, "hours"] == 65 and not episodes.loc[0, "ongoing"]
    assert "PM >= 10 %" in episodes.loc[0, "action"]
    # the same series seen from November: the episode is December's, not November's
    before, moves = alert_frames(series, "2017-11")
    assert before.empty and moves.empty


def test_months_and_tamper_windows():
    from lantian.rules_monthly import month_days, months_back, previous_month, tamper_windows

    assert months_back("2018-02", 3) == ["2017-12", "2018-01", "2018-02"]
    assert previous_month("2018-01") == "2017-12" and len(month_days("2018-02")) == 28
    windows = tamper_windows("2017-12")
    assert [len(reported) for _, reported in windows] == [7, 7, 7, 7, 3]
    assert windows[0][0][0] == "2017-11-30" and windows[0][1][0] == "2017-12-01"
    assert windows[-1][0] == ["2017-12-28", "2017-12-29", "2017-12-30", "2017-12-31"]
    reported = [d for _, days in windows for d in days]
    assert reported == month_days("2017-12")  # every day reported once


def test_batches_follow_the_contract():
    from lantian.direct_load import device_batches
    from schemas.reading import Reading, batch_id, check_batch_dict

    readings = [
        Reading("D1", "cems", "2051", f"2017120100{i:02d}00", "2017-12-01T00:00:00+08:00",
                "2017-12-01T00:01:00+08:00", {"a21026": {"Avg": "1.0", "Flag": "N"}}, f"raw{i}")
        for i in range(5)
    ]  # fmt: skip
    batches = list(device_batches("D1", "cems", readings, 2))
    assert [len(b["readings"]) for b in batches] == [2, 2, 1]
    for batch in batches:
        check_batch_dict(batch)
        assert batch["batch_id"] == batch_id([r["id"] for r in batch["readings"]])
    with pytest.raises(ValueError, match="at least 1"):
        list(device_batches("D1", "cems", readings, 0))
