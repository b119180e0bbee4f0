"""Quantified accountability (量化问责, the plan's implementing measures, arts. 6-10 and annex).

Input: inspection findings (``inspection_findings.csv``: finding_id, subdistrict_id, date, kind,
count, assigned_deadline, rectified_date, note). Per subdistrict and month:
(a) assigned issues not rectified on time — an ``assigned_issue`` counts in the month of its
deadline when it was not rectified by the deadline (no rectified_date, or a later one);
(b) newly found issues — every other kind, scored per accountability.toml, in the month found.
Escalation: the level whose (a) or (b) cut-off is exceeded; the highest level is the one reported.
"""

from __future__ import annotations

import pandas as pd

from schemas.enforcement_rules import accountability_rules, rule_group


def finding_kinds() -> dict[str, dict]:
    """Kinds of finding: score, category (a/b), article, effective_from."""
    return {
        name: {"score": float(rule.value), **rule.extra}
        for name, rule in rule_group(accountability_rules(), "kinds").items()
    }


def escalation_levels() -> list[dict]:
    """Levels sorted low to high: a_over, b_over, level, role, article."""
    levels = [
        {"name": name, **rule.value, **rule.extra}
        for name, rule in rule_group(accountability_rules(), "escalation").items()
    ]
    return sorted(levels, key=lambda level: level["level"])


def _dates(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values.astype("str").str.strip(), errors="coerce", format="mixed")
    return parsed.dt.strftime("%Y-%m-%d").astype("str")


def scored_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """Each finding with its category, score, the month it counts in and whether it counts.

    ``counts`` is False (with ``why_not``) for an assigned issue rectified on time, a finding dated
    before its kind's effective date, or an unknown kind.
    """
    kinds = finding_kinds()
    frame = findings.copy()
    frame["date"] = _dates(frame["date"])
    frame["assigned_deadline"] = _dates(frame["assigned_deadline"])
    frame["rectified_date"] = _dates(frame["rectified_date"])
    frame["count"] = pd.to_numeric(frame["count"], errors="coerce").fillna(1.0)
    rows = []
    for _, row in frame.iterrows():
        kind = kinds.get(str(row["kind"]).strip())
        out = row.to_dict()
        if kind is None:
            out.update(category=None, score=0.0, month=None, counts=False, why_not="unknown kind")
            rows.append(out)
            continue
        out.update(category=kind["category"], article=kind["article"])
        if kind["category"] == "a":
            out.update(_assigned(row, kind))
        elif pd.isna(row["date"]):
            out.update(month=None, score=0.0, counts=False, why_not="no date")
        else:
            counts = row["date"] >= kind["effective_from"]
            out.update(
                month=row["date"][:7],
                score=kind["score"] * row["count"],
                counts=bool(counts),
                why_not="" if counts else f"before {kind['effective_from']}",
            )
        rows.append(out)
    return pd.DataFrame(rows)


def _assigned(row: pd.Series, kind: dict) -> dict:
    deadline, rectified = row["assigned_deadline"], row["rectified_date"]
    if pd.isna(deadline):
        return {"month": None, "score": 0.0, "counts": False, "why_not": "no assigned deadline"}
    on_time = pd.notna(rectified) and rectified <= deadline
    in_force = deadline >= kind["effective_from"]
    why = (
        "rectified on time" if on_time else ("" if in_force else f"before {kind['effective_from']}")
    )
    return {
        "month": deadline[:7],
        "score": kind["score"] * row["count"],
        "counts": bool(not on_time and in_force),
        "why_not": why,
    }


def accountability(
    findings: pd.DataFrame, months: list[str], subdistricts: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per subdistrict and month: (a) count, (b) score, the escalation levels reached and the
    highest one (role and article), with the findings behind them."""
    scored = scored_findings(findings)
    counted = scored[scored["counts"] & scored["month"].isin(months)]
    ids = set(counted["subdistrict_id"].astype("str"))
    if subdistricts is not None:
        ids |= set(subdistricts["subdistrict_id"].astype("str"))
    levels = escalation_levels()
    rows = []
    for subdistrict in sorted(ids):
        for month in sorted(months):
            mine = counted[
                (counted["subdistrict_id"].astype("str") == subdistrict)
                & (counted["month"] == month)
            ]
            a = float(mine.loc[mine["category"] == "a", "score"].sum())
            b = float(mine.loc[mine["category"] == "b", "score"].sum())
            reached = [lv for lv in levels if a > lv["a_over"] or b > lv["b_over"]]
            top = reached[-1] if reached else None
            rows.append(
                {
                    "subdistrict_id": subdistrict,
                    "month": month,
                    "a_unrectified": a,
                    "b_new_score": b,
                    "levels": [lv["name"] for lv in reached],
                    "level": top["name"] if top else "",
                    "accountable": top["role"] if top else "",
                    "article": top["article"] if top else "",
                    "finding_ids": sorted(mine["finding_id"].astype("str")),
                }
            )
    return pd.DataFrame(rows)
