"""Vehicle remote sensing (HJ 845-2017, GB 3847-2018, GB 18285-2018; plan clauses 20(2) and 33).

Valid passes → per-pollutant judgements against the fuel type's limits → high emitters (two or more
consecutive exceedances of the same pollutant within a 6-month cycle) → routing to the environment
bureau (heavy diesel over 3.5 t) or the traffic police (lighter vehicles and black smoke) → repeat
offenders with their owners; the China IV share of key transport enterprises.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from enforcement.cems import beijing_day
from enforcement.vapor import as_bool
from schemas.enforcement_rules import rsd_limits, setting
from schemas.rules import threshold

# The brief's short names and the device profile's (rsd_profile.csv) name the same columns.
_ALIASES = {"speed_kmh": "speed_km_h", "accel_ms2": "accel_m_s2", "valid_flag": "valid"}
_HEAVY_CLASSES = {"N2", "N3"}


def _limits(kind: str) -> pd.DataFrame:
    frame = pd.DataFrame(list(rsd_limits()))
    frame = frame[frame["kind"] == kind].copy()
    frame["value"] = frame["value"].astype(float)
    return frame


def _normalise(passes: pd.DataFrame, vehicles: pd.DataFrame | None) -> pd.DataFrame:
    frame = passes.rename(columns={k: v for k, v in _ALIASES.items() if k in passes.columns})
    frame = frame.copy()
    for column in ("plate", "fuel_type", "weight_class"):
        if column not in frame.columns:
            frame[column] = pd.Series(pd.NA, index=frame.index, dtype="str")
        frame[column] = frame[column].astype("str").str.strip()
    frame["fuel_type"] = frame["fuel_type"].str.lower()
    if "gross_weight_t" not in frame.columns:
        frame["gross_weight_t"] = np.nan
    frame["gross_weight_t"] = pd.to_numeric(frame["gross_weight_t"], errors="coerce")
    # 0 is the unit's "unknown weight"
    frame.loc[frame["gross_weight_t"] <= 0, "gross_weight_t"] = np.nan
    if vehicles is not None and len(vehicles):
        reg = vehicles[["plate", "fuel_type", "gross_weight_t"]].drop_duplicates("plate")
        reg = reg.rename(columns={"fuel_type": "reg_fuel", "gross_weight_t": "reg_weight"})
        frame = frame.merge(reg, on="plate", how="left")
        unknown = ~frame["fuel_type"].isin(["diesel", "gasoline"])
        frame.loc[unknown, "fuel_type"] = frame.loc[unknown, "reg_fuel"].astype("str").str.lower()
        weight = pd.to_numeric(frame["reg_weight"], errors="coerce")
        frame["gross_weight_t"] = frame["gross_weight_t"].fillna(weight)
        frame = frame.drop(columns=["reg_fuel", "reg_weight"])
    frame["data_time"] = pd.to_datetime(frame["data_time"], utc=True).astype("datetime64[ns, UTC]")
    frame["day"] = beijing_day(frame["data_time"])
    return frame


def _unit_ids(frame: pd.DataFrame, rsd_units: pd.DataFrame) -> pd.DataFrame:
    if "unit_id" in frame.columns and frame["unit_id"].notna().all():
        return frame.merge(rsd_units[["unit_id", "calibrated_until"]], on="unit_id", how="left")
    units = rsd_units[["device_id", "unit_id", "calibrated_until"]]
    return frame.drop(columns=["unit_id"], errors="ignore").merge(units, on="device_id", how="left")


def judge_passes(
    passes: pd.DataFrame, rsd_units: pd.DataFrame, vehicles: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every pass with ``valid_pass`` and the first ``reject_reason`` (empty when valid).

    Valid: the unit's own flag says valid, speed / acceleration / VSP inside the window of
    rsd_limits.csv (bounds inclusive), a readable plate, and a unit calibrated on the pass's Beijing
    date (``rsd_units.calibrated_until``, inclusive). Unknown fuel type or weight is filled from
    ``vehicles`` when given.
    """
    frame = _unit_ids(_normalise(passes, vehicles), rsd_units)
    checks: list[tuple[str, pd.Series]] = []
    if "valid" in frame.columns:
        own = frame["valid"].astype("str").str.strip().str.lower()
        checks.append(("unit_flag", own.isin(setting("rsd.valid_values"))))
    for quantity, bounds in _limits("window").groupby("quantity", sort=False):
        if quantity not in frame.columns:
            checks.append((quantity.split("_")[0], pd.Series(False, index=frame.index)))
            continue
        value = pd.to_numeric(frame[quantity], errors="coerce")
        ok = value.notna()
        for _, bound in bounds.iterrows():
            ok &= value >= bound["value"] if bound["bound"] == "min" else value <= bound["value"]
        checks.append((quantity.split("_")[0], ok))
    pattern = re.compile(setting("rsd.plate_pattern"))
    readable = frame["plate"].map(lambda p: isinstance(p, str) and bool(pattern.match(p)))
    checks.append(("plate", readable.astype(bool)))
    until = pd.to_datetime(frame["calibrated_until"], errors="coerce").dt.strftime("%Y-%m-%d")
    checks.append(("calibration", until.notna() & (frame["day"] <= until.fillna(""))))
    reason = pd.Series("", index=frame.index, dtype="str")
    for name, ok in reversed(checks):
        reason = reason.mask(~ok, name)
    frame["reject_reason"] = reason
    frame["valid_pass"] = reason.eq("")
    return frame


def pass_judgements(judged: pd.DataFrame) -> pd.DataFrame:
    """One row per valid pass and pollutant its fuel type is judged on: value, limit, ``exceeds``
    (strictly above). A pollutant the unit did not measure on that pass is left out."""
    valid = judged[judged["valid_pass"]]
    limits = _limits("limit")
    rows = []
    for _, limit in limits.iterrows():
        quantity = limit["quantity"]
        if quantity not in valid.columns:
            continue
        mine = valid[valid["fuel_type"] == limit["fuel_type"]]
        value = pd.to_numeric(mine[quantity], errors="coerce")
        part = mine.assign(pollutant=quantity, value=value, limit=limit["value"])
        rows.append(part[value.notna()])
    keep = ["reading_id", "device_id", "unit_id", "data_time", "day", "plate", "fuel_type"]
    keep += ["gross_weight_t", "weight_class", "pollutant", "value", "limit"]
    if not rows:
        return pd.DataFrame(columns=[*keep, "exceeds"])
    out = pd.concat(rows, ignore_index=True)[keep]
    out["exceeds"] = out["value"] > out["limit"]
    return out.sort_values(["plate", "pollutant", "data_time"], kind="stable").reset_index(
        drop=True
    )


def is_heavy(gross_weight_t: pd.Series, weight_class: pd.Series) -> pd.Series:
    """Over 3.5 t (plan clause 20(2)); exactly 3.5 t is light. Unknown weight falls back on the
    class (N2/N3 are over 3.5 t)."""
    heavy_t = threshold("rsd.heavy_vehicle_t")
    by_weight = gross_weight_t > heavy_t
    by_class = weight_class.astype("str").str.upper().isin(_HEAVY_CLASSES)
    return by_weight.where(gross_weight_t.notna(), by_class).astype(bool)


def route(exceeding: pd.DataFrame) -> pd.DataFrame:
    """Who acts on each exceedance (plan clause 20(2)): heavy diesel (> 3.5 t) → environment
    bureau; lighter vehicles and any black smoke → traffic police; a heavy diesel with black smoke
    goes to both."""
    frame = exceeding.copy()
    env, police = setting("rsd.agency_environment"), setting("rsd.agency_traffic_police")
    heavy_diesel = (frame["fuel_type"] == "diesel") & is_heavy(
        frame["gross_weight_t"], frame["weight_class"]
    )
    smoke = frame["pollutant"] == setting("rsd.black_smoke_quantity")
    frame["heavy_diesel"] = heavy_diesel
    frame["black_smoke"] = smoke
    frame["routed_to"] = [
        ([env] if h else []) + ([police] if (s or not h) else [])
        for h, s in zip(heavy_diesel, smoke, strict=True)
    ]
    return frame


def high_emitters(judgements: pd.DataFrame) -> pd.DataFrame:
    """Plates with >= 2 consecutive exceedances of the SAME pollutant within a 6-month cycle.

    Consecutive means on successive judged passes of that plate for that pollutant: a pass within
    the limit in between ends the run, as does a pass more than ``rsd.cycle_months`` after the
    run's first exceedance. Exceedances of different pollutants never combine.
    """
    need = int(setting("rsd.high_emitter_consecutive"))
    months = int(setting("rsd.cycle_months"))
    rows = []
    # only plate-pollutant pairs with enough exceedances can hold a run: skip the rest cheaply
    counts = judgements.groupby(["plate", "pollutant"])["exceeds"].transform("sum")
    candidates = judgements[counts >= need]
    for (plate, pollutant), group in candidates.groupby(["plate", "pollutant"], sort=True):
        run: list[pd.Series] = []
        for _, judged in group.sort_values("data_time", kind="stable").iterrows():
            if not judged["exceeds"]:
                run = []
                continue
            if run and judged["data_time"] > run[0]["data_time"] + pd.DateOffset(months=months):
                run = []
            run.append(judged)
            if len(run) == need:
                rows.append(_emitter_row(plate, pollutant, run))
            elif len(run) > need:
                rows[-1] = _emitter_row(plate, pollutant, run)
    columns = ["plate", "pollutant", "fuel_type", "gross_weight_t", "weight_class", "first_time"]
    columns += ["last_time", "n_consecutive", "reading_ids", "max_value", "limit"]
    if not rows:
        return pd.DataFrame(columns=[*columns, "heavy_diesel", "black_smoke", "routed_to"])
    return route(pd.DataFrame(rows, columns=columns))


def _emitter_row(plate: str, pollutant: str, run: list[pd.Series]) -> dict:
    last = run[-1]
    return {
        "plate": plate,
        "pollutant": pollutant,
        "fuel_type": last["fuel_type"],
        "gross_weight_t": last["gross_weight_t"],
        "weight_class": last["weight_class"],
        "first_time": run[0]["data_time"],
        "last_time": last["data_time"],
        "n_consecutive": len(run),
        "reading_ids": [r["reading_id"] for r in run],
        "max_value": max(r["value"] for r in run),
        "limit": last["limit"],
    }


def repeat_offenders(judgements: pd.DataFrame, vehicles: pd.DataFrame) -> pd.DataFrame:
    """Plates with at least ``rsd.repeat_min_exceeding_passes`` exceeding passes (any pollutant),
    with their owner and transport enterprise from vehicles.csv and whether they are high emitters."""
    exceeding = judgements[judgements["exceeds"]]
    per_pass = exceeding.groupby(["plate", "reading_id"], sort=True).agg(
        data_time=("data_time", "first"), pollutants=("pollutant", lambda s: sorted(set(s)))
    )
    per_plate = (
        per_pass.reset_index()
        .groupby("plate", sort=True)
        .agg(
            n_exceeding_passes=("reading_id", "size"),
            first_time=("data_time", "min"),
            last_time=("data_time", "max"),
            pollutants=("pollutants", lambda s: sorted({p for ps in s for p in ps})),
        )
        .reset_index()
    )
    per_plate = per_plate[
        per_plate["n_exceeding_passes"] >= int(setting("rsd.repeat_min_exceeding_passes"))
    ]
    owners = vehicles[["plate", "owner", "transport_enterprise", "key_enterprise"]].drop_duplicates(
        "plate"
    )
    out = per_plate.merge(owners, on="plate", how="left")
    emitters = set(high_emitters(judgements)["plate"])
    out["high_emitter"] = out["plate"].isin(emitters)
    return out.reset_index(drop=True)


def in_heating_season(days: pd.Series) -> pd.Series:
    """Beijing dates (``YYYY-MM-DD``) inside the heating season (both ends inclusive)."""
    month_day = days.astype("str").str.slice(5, 10)
    start, end = setting("transport.heating_season_start"), setting("transport.heating_season_end")
    return (month_day >= start) | (month_day <= end)


def china4_share(vehicles: pd.DataFrame, passes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Share of China IV or better vehicles per key transport enterprise (plan clause 33, >= 80 %).

    ``fleet_share`` counts the enterprise's registered vehicles; with ``passes`` (judged or raw
    remote-sensing passes) ``observed_share`` counts its distinct vehicles seen in the heating season.
    """
    key = vehicles[as_bool(vehicles["key_enterprise"])].copy()
    key["china4"] = (
        key["emission_standard"]
        .astype("str")
        .str.strip()
        .str.upper()
        .isin(setting("transport.china4_standards"))
    )
    out = (
        key.groupby("transport_enterprise", sort=True)
        .agg(n_vehicles=("plate", "nunique"), n_china4_plus=("china4", "sum"))
        .reset_index()
    )
    out["n_china4_plus"] = out["n_china4_plus"].astype("int64")
    out["fleet_share"] = out["n_china4_plus"] / out["n_vehicles"]
    minimum = threshold("transport.china4_share_min")
    out["fleet_complies"] = out["fleet_share"].round(9) >= minimum
    if passes is not None:
        seen = passes.copy()
        if "day" not in seen.columns:
            seen["day"] = beijing_day(seen["data_time"])
        seen_plates = set(seen.loc[in_heating_season(seen["day"]), "plate"])
        observed = key[key["plate"].isin(seen_plates)]
        obs = (
            observed.groupby("transport_enterprise")
            .agg(n_seen=("plate", "nunique"), n_seen_china4_plus=("china4", "sum"))
            .reset_index()
        )
        out = out.merge(obs, on="transport_enterprise", how="left")
        out["n_seen"] = out["n_seen"].fillna(0).astype("int64")
        out["n_seen_china4_plus"] = out["n_seen_china4_plus"].fillna(0).astype("int64")
        with np.errstate(divide="ignore", invalid="ignore"):
            out["observed_share"] = np.where(
                out["n_seen"] > 0, out["n_seen_china4_plus"] / out["n_seen"], np.nan
            )
        out["observed_complies"] = out["observed_share"].round(9) >= minimum
    return out
