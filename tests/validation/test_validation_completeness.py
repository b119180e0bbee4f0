"""Completeness numbers, computed by hand from the definitions (DOMAIN.md section 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.validation.frames import devices
from validation.completeness import (
    daily_completeness,
    monthly_completeness,
    station_upload_ranking,
    subdistrict_upload_ranking,
    supervision_list,
    with_rates,
)


def _rows(device_id: str, day: str, n_valid: int, n_invalid: int, codes=("a21026", "a19001")):
    """Minute readings of one device-day: ``n_valid`` all-valid, then ``n_invalid`` whose second
    code is invalid (a flagged O2, say)."""
    rows = []
    for i in range(n_valid + n_invalid):
        for k, code in enumerate(codes):
            rows.append(
                {
                    "device_id": device_id,
                    "reading_id": f"{device_id}-{day}-{i}",
                    "cn": "2051",
                    "day": day,
                    "code": code,
                    "valid": not (i >= n_valid and k == 1),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def cems_daily(rules):
    rows = pd.concat(
        [
            _rows("CEMS001", "2017-11-15", 1200, 100),
            _rows("CEMS001", "2017-11-16", 1296, 0),
            _rows("CEMS003", "2017-11-16", 1500, 0),  # a clock repeating minutes: more than due
            _rows("CEMS001", "2017-11-15", 5, 0).assign(cn="2011"),  # real-time: not counted
        ],
        ignore_index=True,
    )
    rows = pd.concat([rows, rows.iloc[:10]], ignore_index=True)  # a re-landed copy
    registry = devices(
        [
            ("CEMS001", "cems", "2017-10-01"),
            ("CEMS002", "cems", "2017-11-16"),  # installed on the second day, sent nothing
            ("CEMS003", "cems", "2017-10-01"),
            ("AMB001", "ambient", "2017-10-01"),
        ]
    )
    return daily_completeness(
        rows, registry, ["2017-11-15", "2017-11-16"], stream="cems", rules=rules
    ).set_index(["device_id", "day"])


def test_daily_rates_by_hand(cems_daily):
    day = cems_daily.loc[("CEMS001", "2017-11-15")]
    assert (day["due"], day["received"], day["valid"]) == (1440, 1300, 1200)
    assert day["transmission_rate"] == pytest.approx(1300 / 1440)
    assert day["validity_rate"] == pytest.approx(1200 / 1300)
    assert day["effective_rate"] == pytest.approx(1200 / 1440)  # 0.8333: under 90 %
    assert not day["complies"] and day["rule_rate"] == "effective_rate"


def test_exactly_ninety_percent_complies(cems_daily):
    day = cems_daily.loc[("CEMS001", "2017-11-16")]
    assert (day["received"], day["valid"]) == (1296, 1296)
    assert day["effective_rate"] == 0.9 and day["complies"]


def test_due_from_install_date_and_silence_is_zero(cems_daily):
    assert ("CEMS002", "2017-11-15") not in cems_daily.index
    day = cems_daily.loc[("CEMS002", "2017-11-16")]
    assert (day["due"], day["received"], day["valid"]) == (1440, 0, 0)
    assert day["transmission_rate"] == 0.0 and day["effective_rate"] == 0.0
    assert np.isnan(day["validity_rate"])
    assert "AMB001" not in cems_daily.index.get_level_values("device_id")


def test_received_is_capped_at_due(cems_daily):
    day = cems_daily.loc[("CEMS003", "2017-11-16")]
    assert (day["received"], day["valid"], day["transmission_rate"]) == (1440, 1440, 1.0)


def test_monthly_adds_counts_not_rates(cems_daily, rules):
    month = monthly_completeness(cems_daily.reset_index(), rules).set_index("device_id")
    one = month.loc["CEMS001"]
    assert (one["due"], one["received"], one["valid"]) == (2880, 2596, 2496)
    assert one["effective_rate"] == pytest.approx(2496 / 2880)
    assert one["transmission_rate"] == pytest.approx(2596 / 2880)
    assert one["month"] == "2017-11"
    assert month.loc["CEMS002", "due"] == 1440


def test_only_chosen_codes_decide_a_record(rules):
    rows = _rows("CEMS001", "2017-11-15", 10, 5)
    registry = devices([("CEMS001", "cems", "2017-10-01")])
    all_codes = daily_completeness(rows, registry, ["2017-11-15"], stream="cems", rules=rules)
    so2_only = daily_completeness(
        rows, registry, ["2017-11-15"], stream="cems", codes=["a21026"], rules=rules
    )
    assert all_codes["valid"].item() == 10 and so2_only["valid"].item() == 15


STATIONS = pd.DataFrame(
    {
        "station_id": ["M001", "M002", "M003"],
        "device_id": ["AMB001", "AMB002", "AMB003"],
        "subdistrict_id": ["S01", "S01", "S02"],
        "name": ["经八路微站1号", "经八路微站2号", "花园路微站1号"],
        "lat": [34.776, 34.777, 34.786],
        "lon": [113.684, 113.685, 113.676],
    }
)


@pytest.fixture(scope="module")
def ambient_daily(rules):
    counts = pd.DataFrame(
        {
            "stream": "ambient",
            "device_id": ["AMB001", "AMB002", "AMB003"],
            "day": "2017-11-15",
            "due": 1440,
            "received": [1440, 1200, 1330],
            "valid": [1400, 1200, 1000],
        }
    )
    return with_rates(counts, "ambient", rules)


def test_station_ranking_by_upload_rate(ambient_daily, rules):
    ranking = station_upload_ranking(ambient_daily, STATIONS, rules)
    assert ranking["station_id"].tolist() == ["M001", "M003", "M002"]
    assert ranking["rank"].tolist() == [1, 2, 3]
    assert ranking["transmission_rate"].tolist() == pytest.approx([1.0, 1330 / 1440, 1200 / 1440])
    # plan clause 1 judges upload, not validity: M003 complies although 1000/1330 are valid
    assert ranking["complies"].tolist() == [True, True, False]


def test_subdistrict_ranking_pools_counts(ambient_daily, rules):
    ranking = subdistrict_upload_ranking(ambient_daily, STATIONS, rules).set_index("subdistrict_id")
    assert ranking.loc["S01", "transmission_rate"] == pytest.approx(2640 / 2880)
    assert ranking.loc["S02", "transmission_rate"] == pytest.approx(1330 / 1440)
    assert ranking.loc["S02", "rank"] == 1 and ranking.loc["S01", "rank"] == 2
    assert (ranking.loc["S01", "n_stations"], ranking.loc["S01", "n_stations_failing"]) == (2, 1)


def test_supervision_list_of_subdistricts(rules):
    stack_days = with_rates(
        pd.DataFrame(
            {
                "stream": "cems",
                "device_id": ["CEMS001", "CEMS002", "CEMS003", "CEMS002", "CEMS003"],
                "day": ["2017-11-15", "2017-11-15", "2017-11-15", "2017-11-16", "2017-11-16"],
                "due": 1440,
                "received": [1300, 1440, 1300, 1440, 1300],
                "valid": [1200, 1440, 1224, 1440, 1224],
            }
        ),
        "cems",
        rules,
    )
    stacks = pd.DataFrame(
        {
            "stack_id": ["ST1", "ST2", "ST3"],
            "enterprise_id": ["E1", "E2", "E3"],
            "device_id": ["CEMS001", "CEMS002", "CEMS003"],
        }
    )
    enterprises = pd.DataFrame(
        {"enterprise_id": ["E1", "E2", "E3"], "subdistrict_id": ["S01", "S02", "S02"]}
    )
    listed = supervision_list(stack_days, stacks, enterprises, rules)
    # S01: 1200/1440 = 0.833 < 0.9 listed; S02: (2880 + 2448)/5760 = 0.925 not listed although
    # its stack ST3 alone is at 0.85
    assert listed["subdistrict_id"].tolist() == ["S01"]
    assert listed["effective_rate"].item() == pytest.approx(1200 / 1440)
    assert listed["n_stacks_failing"].item() == 1
