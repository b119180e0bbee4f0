"""Fuel-quality spot checks (plan clause 22(2): >= 10 % of stations a month) and inspection-agency
checks (clause 20(3): >= 20 % of agencies a month).

Inputs are bureau CSV files read by ``enforcement.bureau_inputs``:
``fuel_samples.csv`` (sample_id, gas_station_id, date, product, sulfur_mg_kg, result),
``inspection_agencies.csv`` (agency_id, name, subdistrict_id) and
``agency_checks.csv`` (check_id, agency_id, date, result, note).
"""

from __future__ import annotations

from fractions import Fraction

import pandas as pd

from schemas.enforcement_rules import setting
from schemas.rules import threshold


def at_least(numerator: int, denominator: int, ratio: float) -> bool:
    """numerator / denominator >= ratio, exactly (3 of 30 is 10 %, not 9.999… %)."""
    if denominator <= 0:
        return False
    return Fraction(int(numerator), int(denominator)) >= Fraction(str(ratio))


def _month(dates: pd.Series) -> pd.Series:
    return pd.to_datetime(dates.astype("str"), errors="coerce").dt.strftime("%Y-%m").astype("str")


def _coverage(
    events: pd.DataFrame, id_column: str, registry_ids: pd.Series, months: list[str], ratio: float
) -> pd.DataFrame:
    known = set(registry_ids.astype("str"))
    frame = events.assign(
        month=_month(events["date"]), **{id_column: events[id_column].astype("str")}
    )
    rows = []
    for month in sorted(months):
        mine = frame[frame["month"] == month]
        covered = sorted(set(mine[id_column]) & known)
        rows.append(
            {
                "month": month,
                "n_registered": len(known),
                "n_covered": len(covered),
                "share": len(covered) / len(known) if known else float("nan"),
                "required_share": ratio,
                "complies": at_least(len(covered), len(known), ratio),
                "covered_ids": covered,
                "unknown_ids": sorted(set(mine[id_column]) - known),
                "n_events": len(mine),
            }
        )
    return pd.DataFrame(rows)


def station_sampling(
    fuel_samples: pd.DataFrame, gas_stations: pd.DataFrame, months: list[str]
) -> pd.DataFrame:
    """Per month: registered stations, stations sampled, share and compliance with >= 10 %.

    A sample of a station missing from the registry does not count (it is listed in
    ``unknown_ids``); several samples of one station count it once.
    """
    out = _coverage(
        fuel_samples,
        "gas_station_id",
        gas_stations["gas_station_id"],
        months,
        threshold("fuel.station_sampling_min"),
    )
    failed = failed_samples(fuel_samples, gas_stations)
    counts = failed.groupby("month").size() if len(failed) else pd.Series(dtype="int64")
    out["n_failed_samples"] = out["month"].map(counts).fillna(0).astype("int64")
    return out.rename(columns={"n_registered": "n_stations", "n_covered": "n_sampled"})


def failed_samples(fuel_samples: pd.DataFrame, gas_stations: pd.DataFrame) -> pd.DataFrame:
    """Failed samples with the station to trace: sulfur above ``fuel.sulfur_max_mg_kg`` (strictly)
    or a failed result label, whatever the sulfur."""
    frame = fuel_samples.copy()
    frame["sulfur_mg_kg"] = pd.to_numeric(frame["sulfur_mg_kg"], errors="coerce")
    frame["month"] = _month(frame["date"])
    limit = threshold("fuel.sulfur_max_mg_kg")
    labels = {label.lower() for label in setting("sampling.failed_results")}
    over = frame["sulfur_mg_kg"] > limit
    failed_label = frame["result"].astype("str").str.strip().str.lower().isin(labels)
    frame = frame[over | failed_label].copy()
    reasons = []
    for _, row in frame.iterrows():
        parts = []
        if row["sulfur_mg_kg"] > limit:
            parts.append(f"sulfur {row['sulfur_mg_kg']:g} mg/kg > {limit:g} mg/kg")
        if str(row["result"]).strip().lower() in labels:
            parts.append(f"result {row['result']}")
        reasons.append("; ".join(parts))
    frame["reason"] = pd.Series(reasons, index=frame.index, dtype="str")
    stations = gas_stations[["gas_station_id", "name", "subdistrict_id"]].rename(
        columns={"name": "station_name"}
    )
    frame["gas_station_id"] = frame["gas_station_id"].astype("str")
    return frame.merge(stations, on="gas_station_id", how="left").reset_index(drop=True)


def agency_sampling(
    agency_checks: pd.DataFrame, inspection_agencies: pd.DataFrame, months: list[str]
) -> pd.DataFrame:
    """Per month: registered inspection agencies, agencies checked, share, compliance with >= 20 %."""
    out = _coverage(
        agency_checks,
        "agency_id",
        inspection_agencies["agency_id"],
        months,
        threshold("inspection.agency_sampling_min"),
    )
    results = agency_checks.assign(month=_month(agency_checks["date"]))
    labels = {label.lower() for label in setting("sampling.failed_results")}
    bad = results[results["result"].astype("str").str.strip().str.lower().isin(labels)]
    per_month = bad.groupby("month")["agency_id"].agg(lambda s: sorted(set(s.astype("str"))))
    out["failed_agency_ids"] = [per_month.get(m, []) for m in out["month"]]
    return out.rename(columns={"n_registered": "n_agencies", "n_covered": "n_checked"})
