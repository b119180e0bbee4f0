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


def _flag_key(flag: object) -> str:
    return "" if flag is None or flag != flag else str(flag).strip().upper()


def _objects(values: pd.Series) -> np.ndarray | pd.Series:
    """Strings as a plain object array (pandas factorises those twice as fast as a str column)."""
    if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
        return values.to_numpy(dtype=object)
    return values


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
    flags: pd.Categorical | None = None,
) -> pd.DataFrame:
    """``rows`` with ``valid`` and ``invalid_reason`` set by the rules above.

    For remote sensing the unit's own ``valid`` / ``invalid_reason`` columns are kept as
    ``unit_valid`` / ``unit_invalid_reason`` before being replaced. ``quarantine_reason`` is
    indexed like ``rows`` and may hold only the quarantined rows. ``flags``: the flag column
    already factorised (same rows, e.g. ``derive``'s ``v_flag``), to save a second pass.
    """
    # shallow: pandas copy-on-write keeps ``rows`` unchanged when columns are set on ``out``
    out = rows.copy(deep=False)
    n = len(out)
    reason = np.full(n, "", dtype=object)
    has_reason = np.zeros(n, dtype=bool)

    def set_where(mask: np.ndarray, text: np.ndarray | str) -> None:
        free = ~has_reason & mask
        if not free.any():
            return
        reason[free] = text if isinstance(text, str) else text[free]
        has_reason[free] = True

    if quarantine_reason is not None:
        # may cover only the quarantined rows (a day has millions of rows, a handful of reasons)
        q = quarantine_reason[quarantine_reason.notna()]
        positions = out.index.get_indexer(q.index)
        texts = np.array([str(t) for t in q.to_numpy(dtype=object)], dtype=object)
        keep = (positions >= 0) & (texts != "") if len(texts) else np.array([], dtype=bool)
        given = np.zeros(n, dtype=bool)
        given[positions[keep]] = True
        text = np.full(n, "", dtype=object)
        text[positions[keep]] = texts[keep]
        set_where(given, text)

    flag_column = FLAG_COLUMNS.get(stream)
    judged_flags = False
    if flag_column and flag_column in out.columns:
        # one factorisation: every flag test and label is decided per distinct flag
        if flags is not None and len(flags) == n:
            codes, uniques = np.asarray(flags.codes), list(flags.categories)
        else:
            codes, uniques = pd.factorize(_objects(out[flag_column]))
        # code -1 (a missing flag) picks the last key: ""
        keys = [_flag_key(u) for u in uniques] + [""]
        judged_flags = True

        def per_flag(allowed: list[str]) -> np.ndarray:
            return np.array([k in allowed for k in keys], dtype=bool)[codes]

        def labels(template: str) -> np.ndarray:
            return np.array([template.format(k) for k in keys], dtype=object)[codes]

        invalid = per_flag([str(f) for f in rules.param("flags.invalid")])
        if invalid.any():
            set_where(invalid, labels("flag:{}"))
        needs_audit = per_flag([str(f) for f in rules.param("flags.needs_audit")])
        if needs_audit.any():
            ok = np.zeros(n, dtype=bool)
            ok[needs_audit] = audited(out[needs_audit], audits)
            set_where(needs_audit & ~ok, labels("flag:{}-unaudited"))
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
    valid = ~has_reason
    if judged_flags:
        review = per_flag([str(f) for f in rules.param("flags.review")])
        if review.any():
            set_where(review, labels("review:{}"))
    out["valid"] = valid
    out["invalid_reason"] = pd.array(reason, dtype="str")
    return out
