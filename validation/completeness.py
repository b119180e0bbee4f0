"""Completeness: records due, received and valid; transmission, validity and effective rates.

Definitions (DOMAIN.md section 5, plan clauses 1 and 18):

- due: records a device had to send on a Beijing day: ``completeness.records_per_day_<cn>``
  (minute data 1440) on every day from its install date on, none before;
- received: distinct reading ids of that command on the day (a duplicate counts once; never
  more than due, so a clock that repeats minutes cannot lift a rate above 1);
- valid: received records whose rows are all valid (``valid`` from validation; optionally only the
  rows of ``codes``);
- transmission rate = received / due; validity rate = valid / received;
  effective transmission rate = their product = valid / due (computed that way so that exactly
  90 % stays 0.9, not a float just under it).

A stack complies when its effective rate reaches ``stack.effective_transmission_min``; a
micro-station when its upload (transmission) rate reaches ``ambient.upload_rate_min`` (plan
clause 1 judges upload). Months add the daily counts (never average rates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemas.validation_rules import ValidationRules, load_rules

RATE_COLUMNS = ["due", "received", "valid", "transmission_rate", "validity_rate", "effective_rate"]
#: which rate the campaign's 90 % rule judges, per stream, and the threshold that sets it.
RULES = {
    "cems": ("effective_rate", "stack.effective_transmission_min"),
    "ambient": ("transmission_rate", "ambient.upload_rate_min"),
}


def _install_days(devices: pd.DataFrame) -> pd.Series:
    dates = pd.to_datetime(devices["install_date"], errors="coerce")
    return pd.Series(
        dates.dt.strftime("%Y-%m-%d").to_numpy(), index=devices["device_id"].astype("str")
    )


def with_rates(
    frame: pd.DataFrame, stream: str, rules: ValidationRules | None = None
) -> pd.DataFrame:
    """Add the three rates and ``complies`` to counts ``due``, ``received``, ``valid``."""
    rules = rules or load_rules()
    out = frame.copy()
    due = out["due"].astype("float64").to_numpy()
    received = np.minimum(out["received"].astype("float64").to_numpy(), due)
    valid = np.minimum(out["valid"].astype("float64").to_numpy(), received)
    out["received"] = received.astype("int64")
    out["valid"] = valid.astype("int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out["transmission_rate"] = np.where(due > 0, received / due, np.nan)
        out["validity_rate"] = np.where(received > 0, valid / received, np.nan)
        out["effective_rate"] = np.where(due > 0, valid / due, np.nan)
    metric, threshold_name = RULES.get(stream, RULES["cems"])
    limit = rules.threshold(threshold_name)
    out["rule_rate"] = metric
    out["threshold"] = limit
    out["complies"] = out[metric].to_numpy() >= limit
    return out


def daily_completeness(
    rows: pd.DataFrame,
    devices: pd.DataFrame,
    days: list[str],
    *,
    stream: str,
    cn: str = "2051",
    codes: list[str] | None = None,
    rules: ValidationRules | None = None,
) -> pd.DataFrame:
    """One row per device of ``stream`` and Beijing day: counts, rates, ``complies``.

    ``rows``: validated rows of any number of days (``ValidationOutcome.rows``: quarantined rows
    included, they are received but not valid) with ``device_id``, ``reading_id``, ``cn``,
    ``day`` and ``valid`` (and ``code`` when ``codes`` is given). ``devices``: the registry
    (``device_id``, ``stream``, ``install_date``).
    """
    rules = rules or load_rules()
    per_day = int(rules.param(f"completeness.records_per_day_{cn}"))
    mine = devices[devices["stream"].astype("str") == stream]
    install = _install_days(mine)
    grid = pd.MultiIndex.from_product(
        [sorted(install.index), sorted(set(days))], names=["device_id", "day"]
    ).to_frame(index=False)
    grid["due"] = np.where(grid["day"] >= grid["device_id"].map(install).fillna("9999"), per_day, 0)
    grid = grid[grid["due"] > 0]  # nothing was due before the install date

    picked = rows[(rows["cn"].astype("str") == cn) & rows["day"].isin(list(days))]
    if codes is not None:
        picked = picked[picked["code"].isin(codes)]
    per_reading = picked.groupby(["device_id", "day", "reading_id"], sort=False)["valid"].all()
    counts = (
        per_reading.groupby(level=["device_id", "day"])
        .agg(received="size", valid="sum")
        .reset_index()
    )
    out = grid.merge(counts, on=["device_id", "day"], how="left")
    out[["received", "valid"]] = out[["received", "valid"]].fillna(0).astype("int64")
    out.insert(0, "stream", stream)
    return with_rates(out, stream, rules)


def monthly_completeness(daily: pd.DataFrame, rules: ValidationRules | None = None) -> pd.DataFrame:
    """Per device and month (``YYYY-MM``): the daily counts added up, rates from the sums."""
    frame = daily.assign(month=daily["day"].str.slice(0, 7))
    out = (
        frame.groupby(["stream", "device_id", "month"], sort=True)[["due", "received", "valid"]]
        .sum()
        .reset_index()
    )
    parts = [with_rates(g, s, rules) for s, g in out.groupby("stream", sort=False)]
    return pd.concat(parts, ignore_index=True) if parts else out


def _ranked(frame: pd.DataFrame, rate: str) -> pd.DataFrame:
    out = frame.sort_values([rate, frame.columns[0]], ascending=[False, True], kind="stable")
    out = out.reset_index(drop=True)
    out.insert(0, "rank", out[rate].rank(method="min", ascending=False).astype("int64"))
    return out


def station_upload_ranking(
    completeness: pd.DataFrame, stations: pd.DataFrame, rules: ValidationRules | None = None
) -> pd.DataFrame:
    """Micro-stations ranked by upload rate over the period of ``completeness`` (daily or
    monthly rows of the ambient stream), best first; ``complies`` against ``ambient.upload_rate_min``."""
    sums = completeness.groupby("device_id")[["due", "received", "valid"]].sum().reset_index()
    info = stations[["station_id", "device_id", "subdistrict_id", "name"]].astype("str")
    merged = info.merge(sums, on="device_id", how="left").fillna(
        {"due": 0, "received": 0, "valid": 0}
    )
    return _ranked(with_rates(merged, "ambient", rules), "transmission_rate")


def subdistrict_upload_ranking(
    completeness: pd.DataFrame, stations: pd.DataFrame, rules: ValidationRules | None = None
) -> pd.DataFrame:
    """Subdistricts ranked by the upload rate of their micro-stations (counts pooled), with how
    many stations each has and how many miss the rule."""
    per_station = station_upload_ranking(completeness, stations, rules)
    pooled = (
        per_station.groupby("subdistrict_id")
        .agg(
            due=("due", "sum"),
            received=("received", "sum"),
            valid=("valid", "sum"),
            n_stations=("station_id", "size"),
            n_stations_failing=("complies", lambda c: int((~c).sum())),
        )
        .reset_index()
    )
    return _ranked(with_rates(pooled, "ambient", rules), "transmission_rate")


def supervision_list(
    stack_completeness: pd.DataFrame,
    stacks: pd.DataFrame,
    enterprises: pd.DataFrame,
    rules: ValidationRules | None = None,
) -> pd.DataFrame:
    """Subdistricts whose stacks' effective transmission rate (counts pooled over their stacks
    and the period) is under ``stack.effective_transmission_min`` (plan clause 18: listed for
    supervision, 挂牌督办), worst first; ``n_stacks_failing`` counts stacks under it alone."""
    rules = rules or load_rules()
    link = (
        stacks[["stack_id", "enterprise_id", "device_id"]]
        .astype("str")
        .merge(enterprises[["enterprise_id", "subdistrict_id"]].astype("str"), on="enterprise_id")
    )
    sums = stack_completeness.groupby("device_id")[["due", "received", "valid"]].sum()
    per_stack = with_rates(
        link.merge(sums.reset_index(), on="device_id", how="left").fillna(
            {"due": 0, "received": 0, "valid": 0}
        ),
        "cems",
        rules,
    )
    pooled = (
        per_stack.groupby("subdistrict_id")
        .agg(
            due=("due", "sum"),
            received=("received", "sum"),
            valid=("valid", "sum"),
            n_stacks=("stack_id", "size"),
            n_stacks_failing=("complies", lambda c: int((~c).sum())),
        )
        .reset_index()
    )
    rated = with_rates(pooled, "cems", rules)
    listed = rated[~rated["complies"]].sort_values("effective_rate", kind="stable")
    return listed.reset_index(drop=True)
