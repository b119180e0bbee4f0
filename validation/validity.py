"""Validity of every value: ``valid`` (bool) and ``invalid_reason`` (str) on each row.

Order of precedence (the first that applies is the reason):

1. the row was quarantined: its quarantine reason (``range:…``, ``duplicate``, ``future:…`` …);
2. an HJ 212-2017 flag that does not count (validation.toml ``flags.invalid``: F, M, D, C, B)
   -> ``flag:M`` etc.;
3. a manually set value (``flags.needs_audit``: S) without an audit record covering it
   -> ``flag:S-unaudited`` (with one it is valid);
4. a clock fault the agent reported, when ``validity.clock_jump_invalid`` /
   ``validity.clock_drift_invalid`` say so -> ``clock:jump`` / ``clock:drift``;
5. remote sensing: the unit judged the pass invalid -> ``rsd:<unit's reason>``;
6. ``flags.review`` (T, above the measuring range): valid, but marked ``review:T``.

Later steps use only rows with ``valid`` true. An audit record is a row of the optional ``audits``
frame: ``device_id``, ``code`` (empty = every code of the device), ``start``, ``end`` (inclusive;
empty = open; naive times are Beijing), ``auditor``, ``note``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemas.reading import BEIJING
from schemas.validation_rules import MEASUREMENT_STREAMS, ValidationRules
from validation.derive import map_distinct


def _flag_key(flag: object) -> str:
    return "" if flag is None or flag != flag else str(flag).strip().upper()


def _labels(keys: np.ndarray, template: str) -> np.ndarray:
    """``template.format(key)`` per row, formatted once per distinct key."""
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    return np.array([template.format(u) for u in uniques], dtype=object)[codes]


FLAG_COLUMNS = {"cems": "flag", "ambient": "flag", "vapor_tank": "tank_pressure_flag"}


def _instants(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert("UTC")
    return parsed.dt.tz_localize(BEIJING).dt.tz_convert("UTC")


def audited(rows: pd.DataFrame, audits: pd.DataFrame | None) -> np.ndarray:
    """Per row: is it covered by an audit record (same device, code or all codes, time inside)?"""
    covered = np.zeros(len(rows), dtype=bool)
    if audits is None or audits.empty or rows.empty:
        return covered
    table = pd.DataFrame(
        {
            "device_id": audits["device_id"].astype("str"),
            "a_code": audits["code"].fillna("").astype("str").str.strip()
            if "code" in audits.columns
            else "",
            "a_start": _instants(audits["start"]),
            "a_end": _instants(audits["end"]) if "end" in audits.columns else pd.NaT,
        }
    )
    probe = pd.DataFrame(
        {
            "pos": np.arange(len(rows)),
            "device_id": rows["device_id"].astype("str").to_numpy(),
            "code": rows["code"].astype("str").to_numpy() if "code" in rows.columns else "",
            "t": rows["data_time"].dt.tz_convert("UTC").to_numpy(),
        }
    )
    probe["t"] = pd.to_datetime(probe["t"], utc=True)
    pairs = probe.merge(table, on="device_id", how="inner")
    ok = (
        ((pairs["a_code"] == "") | (pairs["a_code"] == pairs["code"]))
        & (pairs["a_start"].isna() | (pairs["t"] >= pairs["a_start"]))
        & (pairs["a_end"].isna() | (pairs["t"] <= pairs["a_end"]))
    )
    covered[pairs.loc[ok, "pos"].to_numpy()] = True
    return covered


def assign_validity(
    rows: pd.DataFrame,
    stream: str,
    rules: ValidationRules,
    audits: pd.DataFrame | None = None,
    quarantine_reason: pd.Series | None = None,
) -> pd.DataFrame:
    """``rows`` with ``valid`` and ``invalid_reason`` set by the rules above.

    For remote sensing the unit's own ``valid`` / ``invalid_reason`` columns are kept as
    ``unit_valid`` / ``unit_invalid_reason`` before being replaced.
    """
    out = rows.copy()
    n = len(out)
    reason = np.full(n, "", dtype=object)

    def set_where(mask: np.ndarray, text: np.ndarray | str) -> None:
        free = (reason == "") & mask
        if isinstance(text, str):
            reason[free] = text
        else:
            reason[free] = text[free]

    if quarantine_reason is not None:
        q = quarantine_reason.reindex(out.index).fillna("").astype("str").to_numpy(dtype=object)
        set_where(q != "", q)

    flag_column = FLAG_COLUMNS.get(stream)
    if flag_column and flag_column in out.columns:
        flags = map_distinct(out[flag_column], _flag_key)
        invalid = np.isin(flags, list(rules.param("flags.invalid")))
        set_where(invalid, _labels(flags, "flag:{}"))
        needs_audit = np.isin(flags, list(rules.param("flags.needs_audit")))
        if needs_audit.any():
            ok = np.zeros(n, dtype=bool)
            ok[needs_audit] = audited(out[needs_audit], audits)
            set_where(needs_audit & ~ok, _labels(flags, "flag:{}-unaudited"))
    if stream in MEASUREMENT_STREAMS:
        for fault in ("jump", "drift"):
            column = f"clock_{fault}"
            if rules.param(f"validity.clock_{fault}_invalid") and column in out.columns:
                set_where(out[column].fillna(False).astype("bool").to_numpy(), f"clock:{fault}")
    if stream == "rsd" and "valid" in out.columns:
        out = out.rename(columns={"valid": "unit_valid", "invalid_reason": "unit_invalid_reason"})
        unit_ok = pd.to_numeric(out["unit_valid"], errors="coerce").to_numpy()
        why = (
            out["unit_invalid_reason"].fillna("").astype("str").to_numpy()
            if "unit_invalid_reason" in out.columns
            else np.full(n, "", dtype=object)
        )
        set_where(unit_ok == 0, np.array([f"rsd:{w or 'unit_invalid'}" for w in why], dtype=object))
    valid = reason == ""
    if flag_column and flag_column in out.columns:
        review = np.isin(flags, list(rules.param("flags.review")))
        set_where(review, _labels(flags, "review:{}"))
    out["valid"] = valid
    out["invalid_reason"] = pd.array(reason, dtype="str")
    return out
