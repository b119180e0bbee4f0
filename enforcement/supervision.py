"""Subdistricts listed for supervision (挂牌督办, plan clause 18).

A subdistrict is listed for a month when several enterprises in it exceeded in that month
(``supervision.min_exceeding_enterprises``, default 2) or when its stacks' effective transmission
rate is under 90 % (``stack.effective_transmission_min``; per stack or aggregated, see
``supervision.transmission_basis``).
"""

from __future__ import annotations

import pandas as pd

from schemas.enforcement_rules import setting
from schemas.rules import threshold


def _stack_places(stacks: pd.DataFrame, enterprises: pd.DataFrame) -> pd.DataFrame:
    places = stacks[["stack_id", "enterprise_id", "device_id"]].merge(
        enterprises[["enterprise_id", "subdistrict_id"]], on="enterprise_id", how="left"
    )
    return places.astype("str")


def supervision_list(
    exceedances: pd.DataFrame,
    transmission_monthly: pd.DataFrame,
    stacks: pd.DataFrame,
    enterprises: pd.DataFrame,
    months: list[str],
) -> pd.DataFrame:
    """One row per subdistrict (with monitored stacks or exceedances) and month, ``listed`` with
    ``reasons``; ``transmission_monthly`` is ``enforcement.cems.transmission_monthly`` output."""
    places = _stack_places(stacks, enterprises)
    ex = exceedances[["stack_id", "day"]].astype("str").merge(places, on="stack_id", how="left")
    ex["month"] = ex["day"].str.slice(0, 7)
    rates = transmission_monthly.copy()
    rates["device_id"] = rates["device_id"].astype("str")
    rates = rates.merge(places, on="device_id", how="inner")
    minimum = threshold("stack.effective_transmission_min")
    need = int(setting("supervision.min_exceeding_enterprises"))
    basis = setting("supervision.transmission_basis")
    rows = []
    subdistricts = sorted(set(places["subdistrict_id"]) | set(ex["subdistrict_id"].dropna()))
    for subdistrict in subdistricts:
        for month in sorted(months):
            mine_ex = ex[(ex["subdistrict_id"] == subdistrict) & (ex["month"] == month)]
            exceeding = sorted(set(mine_ex["enterprise_id"]))
            mine_rates = rates[(rates["subdistrict_id"] == subdistrict) & (rates["month"] == month)]
            under = sorted(set(mine_rates.loc[mine_rates["rate"].round(9) < minimum, "stack_id"]))
            due = mine_rates["due"].sum()
            aggregate = (
                float(mine_rates["valid"].clip(upper=mine_rates["due"]).sum() / due)
                if due
                else None
            )
            if basis == "aggregate":
                transmission_bad = aggregate is not None and round(aggregate, 9) < minimum
            else:
                transmission_bad = bool(under)
            reasons = []
            if len(exceeding) >= need:
                reasons.append(
                    f"{len(exceeding)} enterprises exceeded in {month}: {', '.join(exceeding)}"
                )
            if transmission_bad:
                reasons.append(
                    f"effective transmission under {minimum:.0%}: "
                    + (", ".join(under) if under else f"aggregate {aggregate:.1%}")
                )
            rows.append(
                {
                    "subdistrict_id": subdistrict,
                    "month": month,
                    "n_exceeding_enterprises": len(exceeding),
                    "exceeding_enterprises": exceeding,
                    "stacks_under_transmission": under,
                    "aggregate_transmission": aggregate,
                    "listed_for_exceedances": len(exceeding) >= need,
                    "listed_for_transmission": transmission_bad,
                    "listed": bool(reasons),
                    "reasons": "; ".join(reasons),
                }
            )
    return pd.DataFrame(rows)
