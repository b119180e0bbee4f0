"""Validate one partition (a stream's Beijing day) and split it into valid rows and quarantine.

``validate_partition`` derives the relation columns (``validation.derive``), runs the stream's
suite through the process-wide GX context, and turns the results into:

- ``valid``: the input rows that pass every critical row-level expectation, with ``valid`` and
  ``invalid_reason`` (``validation.validity``);
- ``quarantine``: one row per quarantined input row: ``reading_id``, ``stream``, ``day``,
  ``expectation`` (the first critical expectation it failed, in suite order), ``reason`` (every
  failed expectation's reason, ``; ``-joined), ``row_json`` (the input row as JSON);
- ``results``: one row per expectation: ``run_id``, ``day``, ``suite``, ``expectation``,
  ``severity``, ``success``, ``element_count``, ``unexpected_count``, ``unexpected_ids`` (JSON list
  of the failing reading ids), plus ``level`` and ``detail``; and a last row for the quarantine
  share, which GX cannot know before the rows are judged;
- ``critical_failed``: a critical table-level expectation failed (columns or types missing, no
  rows when devices were due, too large a share quarantined, an expectation that could not run).

GX returns only ids (``result_format`` COMPLETE with ``unexpected_index_column_names``
``reading_id`` and the row number, values excluded): never whole frames. The row number is needed
because a long-form reading has one row per code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from schemas.validation_rules import ValidationRules, load_rules
from validation.context import ValidationContext, get_context
from validation.derive import ROW, derive
from validation.suites import MIN_ROWS_PARAMETER, Spec, specs
from validation.validity import assign_validity

RESULT_COLUMNS = [
    "run_id",
    "day",
    "suite",
    "expectation",
    "severity",
    "success",
    "element_count",
    "unexpected_count",
    "unexpected_ids",
    "level",
    "detail",
]
QUARANTINE_COLUMNS = ["reading_id", "stream", "day", "expectation", "reason", "row_json"]
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": ["reading_id", ROW],
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 0,
}
_SCHEMA_CHECKS = ("schema_columns", "schema_types")


class CriticalValidationError(RuntimeError):
    """A partition failed a critical table-level expectation; the message names each one."""


@dataclass
class ValidationOutcome:
    stream: str
    day: str
    run_id: str
    suite: str
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    results: pd.DataFrame
    critical_failed: bool
    #: every input row with ``valid``, ``invalid_reason`` and ``quarantined`` (completeness counts
    #: quarantined readings as received but not valid).
    rows: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def failed(self, severity: str = "critical") -> pd.DataFrame:
        """Result rows of failed expectations of one severity."""
        r = self.results
        return r[(~r["success"]) & (r["severity"] == severity)]


def validate_partition(
    stream: str,
    df: pd.DataFrame,
    registry: dict[str, pd.DataFrame],
    *,
    run_id: str,
    day: str,
    context: ValidationContext | None = None,
    docs_dir: Path | None = None,
    rules: ValidationRules | None = None,
) -> ValidationOutcome:
    """Validate ``df`` (one stream, one Beijing day). See the module docstring for the outcome.

    ``registry`` needs ``devices`` (device_id, stream, install_date); ``audits`` is optional
    (validation.validity). ``rules`` defaults to ``schemas/data``.
    """
    rules = rules or load_rules()
    context = context or get_context()
    input_columns = list(df.columns)
    frame = derive(stream, _typed_if_empty(stream, df, rules), registry, rules)
    parameters = {MIN_ROWS_PARAMETER: 1 if _due(stream, registry, day, rules) else 0}
    suite_result = _run_gx(context, stream, rules, frame, parameters, docs_dir)
    context.forget_results()

    suite_specs = specs(stream, rules)
    by_name = {s.name: s for s in suite_specs}
    order = {s.name: i for i, s in enumerate(suite_specs)}
    judged = [_judge(r, by_name, frame) for r in suite_result.results]
    # GX reorders the results; reasons and the results table follow the suite
    judged.sort(key=lambda j: order.get(j["name"], len(order)))
    suite = f"lantian_{stream}_{rules.fingerprint}"
    schema_broken = any(
        j["check"] in _SCHEMA_CHECKS and not j["success"] and j["severity"] == "critical"
        for j in judged
    )

    quarantine_reason = pd.Series("", index=frame.index, dtype="object")
    first_failure = pd.Series("", index=frame.index, dtype="object")
    if not schema_broken:
        for j in judged:
            spec: Spec | None = by_name.get(j["name"])
            if spec is None or spec.level != "row" or spec.severity != "critical":
                continue
            rows = j["rows"]
            if len(rows) == 0:
                continue
            texts = spec.reason(frame.iloc[rows]) if spec.reason else [j["name"]] * len(rows)
            _append_reasons(quarantine_reason, first_failure, rows, texts, j["name"])
    quarantined = (quarantine_reason != "").to_numpy()

    judged.append(_share_result(frame, quarantined, rules))
    results = _results_frame(judged, run_id, day, suite)
    critical_failed = bool(
        (
            (~results["success"])
            & (results["severity"] == "critical")
            & (results["level"] == "table")
        ).any()
    )

    if schema_broken:
        # nothing was judged: no row is valid, none is quarantined, the task fails
        rows = frame[input_columns].assign(valid=False, invalid_reason="schema", quarantined=False)
        valid = rows.iloc[0:0].drop(columns=["quarantined"])
        quarantine = pd.DataFrame(columns=QUARANTINE_COLUMNS)
    else:
        rows = assign_validity(
            frame[input_columns],
            stream,
            rules,
            audits=registry.get("audits"),
            quarantine_reason=quarantine_reason.where(quarantine_reason != "", None),
        )
        rows["quarantined"] = quarantined
        valid = rows[~quarantined].drop(columns=["quarantined"]).reset_index(drop=True)
        quarantine = _quarantine_frame(
            frame[input_columns], quarantined, first_failure, quarantine_reason, stream, day
        )
    return ValidationOutcome(
        stream=stream,
        day=day,
        run_id=run_id,
        suite=suite,
        valid=valid,
        quarantine=quarantine,
        results=results,
        critical_failed=critical_failed,
        rows=rows,
    )


def raise_if_critical(outcome: ValidationOutcome) -> None:
    """Raise :class:`CriticalValidationError` naming each failed critical table-level expectation
    with its counts; rows quarantined by row-level expectations alone do not raise."""
    if not outcome.critical_failed:
        return
    r = outcome.results
    failed = r[(~r["success"]) & (r["severity"] == "critical") & (r["level"] == "table")]
    lines = [
        f"  {row.expectation}: {row.unexpected_count} of {row.element_count}"
        + (f" ({row.detail})" if row.detail else "")
        for row in failed.itertuples()
    ]
    raise CriticalValidationError(
        f"{outcome.stream} {outcome.day} (run {outcome.run_id}): {len(failed)} critical "
        "expectation(s) failed:\n" + "\n".join(lines)
    )


# --- internals ------------------------------------------------------------------------------------


def _typed_if_empty(stream: str, df: pd.DataFrame, rules: ValidationRules) -> pd.DataFrame:
    """An empty frame built from no rows has object columns: give them the contract's types so
    that an empty partition is judged on being empty, not on dtypes."""
    if len(df):
        return df
    out = df.copy()
    casts = {"str": "str", "float": "float64", "bool": "bool", "time": "datetime64[ns, UTC]"}
    for column, kind in rules.columns(stream).items():
        if column in out.columns and kind in casts and str(out[column].dtype) == "object":
            out[column] = out[column].astype(casts[kind])
    return out


def _due(stream: str, registry: dict[str, pd.DataFrame], day: str, rules: ValidationRules) -> bool:
    """Were registered devices of the stream installed by ``day`` and so due to send?"""
    if stream not in rules.param("due.streams"):
        return False
    devices = registry.get("devices")
    if devices is None or devices.empty:
        return False
    family = "vapor" if stream == "vapor_tank" else stream
    mine = devices[devices["stream"].astype("str") == family] if "stream" in devices else devices
    if "install_date" not in mine.columns:
        return not mine.empty
    installed = pd.to_datetime(mine["install_date"], errors="coerce").dt.strftime("%Y-%m-%d")
    return bool((installed <= day).any())


def _run_gx(
    context: ValidationContext,
    stream: str,
    rules: ValidationRules,
    frame: pd.DataFrame,
    parameters: dict[str, Any],
    docs_dir: Path | None,
) -> Any:
    batch = {"dataframe": frame}
    if docs_dir is None:
        definition = context.definition(stream, rules)
        return definition.run(
            batch_parameters=batch, expectation_parameters=parameters, result_format=RESULT_FORMAT
        )
    checkpoint = context.checkpoint(stream, rules, Path(docs_dir), RESULT_FORMAT)
    result = checkpoint.run(batch_parameters=batch, expectation_parameters=parameters)
    return next(iter(result.run_results.values()))


def _failing_rows(result: dict) -> np.ndarray:
    """Row numbers from ``unexpected_index_list`` (either GX shape: one dict of lists, or one
    dict per row)."""
    index_list = result.get("unexpected_index_list") or []
    rows: list[int] = []
    for entry in index_list:
        value = entry.get(ROW) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            rows.extend(int(v) for v in value)
        elif value is not None:
            rows.append(int(value))
    return np.unique(np.asarray(rows, dtype="int64"))


def _judge(r: Any, by_name: dict[str, Spec], frame: pd.DataFrame) -> dict:
    meta = r.expectation_config.meta or {}
    name = meta.get("name", r.expectation_config.type)
    spec = by_name.get(name)
    result = r.result or {}
    info = r.exception_info or {}
    # GX reports an exception either flat or per failed metric
    nested = [v for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    raised = bool(info.get("raised_exception")) or bool(nested)
    if nested and not info.get("exception_message"):
        info = nested[0]
    rows = _failing_rows(result) if spec is not None and spec.level == "row" else np.array([], int)
    ids = frame["reading_id"].iloc[rows].tolist() if len(rows) and "reading_id" in frame else []
    level = meta.get("level", "table")
    detail = ""
    if raised:
        detail = f"could not run: {info.get('exception_message')}"
        level = "table"  # a row check that cannot run leaves the partition unjudged
    elif "details" in result and isinstance(result["details"], dict):
        mismatched = result["details"].get("mismatched") or {}
        wrong = result["details"].get("wrong_kinds") or {}
        if mismatched.get("missing"):
            detail = "missing columns: " + ", ".join(mismatched["missing"])
        elif wrong:
            detail = "wrong types: " + ", ".join(
                f"{c} is {w['observed']}, not {w['expected']}" for c, w in wrong.items()
            )
    elif "observed_value" in result and not r.success:
        detail = f"observed {result['observed_value']}"
    details = result.get("details") if isinstance(result.get("details"), dict) else {}
    missing_count = len((details.get("mismatched") or {}).get("missing", []))
    missing_count += len(details.get("wrong_kinds") or {})
    return {
        "name": name,
        "check": meta.get("check", ""),
        "severity": meta.get("severity", "critical"),
        "level": level,
        "success": bool(r.success) and not raised,
        "element_count": int(result.get("element_count", len(frame))),
        "unexpected_count": int(
            result.get("unexpected_count", missing_count or (0 if r.success else 1))
        ),
        "ids": list(dict.fromkeys(ids)),
        "rows": rows,
        "detail": detail,
    }


def _append_reasons(
    reasons: pd.Series, first: pd.Series, rows: np.ndarray, texts: list[str], name: str
) -> None:
    current = reasons.to_numpy()[rows]
    joined = [t if not c else f"{c}; {t}" for c, t in zip(current, texts, strict=True)]
    reasons.iloc[rows] = joined
    unset = first.iloc[rows].to_numpy() == ""
    first.iloc[rows[unset]] = name


def _share_result(frame: pd.DataFrame, quarantined: np.ndarray, rules: ValidationRules) -> dict:
    check = rules.check("quarantine_share")
    limit = float(rules.param("quarantine.max_share"))
    n, bad = len(frame), int(quarantined.sum())
    share = bad / n if n else 0.0
    judged = n >= int(rules.param("quarantine.share_min_rows"))
    return {
        "name": "quarantine_share",
        "check": "quarantine_share",
        "severity": check.severity,
        "level": check.level,
        "success": share <= limit or not judged,
        "element_count": n,
        "unexpected_count": bad,
        "ids": [],
        "rows": np.array([], int),
        "detail": f"{share:.1%} quarantined (limit {limit:.0%})"
        + ("" if judged else f"; not judged under {rules.param('quarantine.share_min_rows')} rows"),
    }


def _results_frame(judged: list[dict], run_id: str, day: str, suite: str) -> pd.DataFrame:
    rows = [
        {
            "run_id": run_id,
            "day": day,
            "suite": suite,
            "expectation": j["name"],
            "severity": j["severity"],
            "success": j["success"],
            "element_count": j["element_count"],
            "unexpected_count": j["unexpected_count"],
            "unexpected_ids": json.dumps(j["ids"]),
            "level": j["level"],
            "detail": j["detail"],
        }
        for j in judged
    ]
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    out["success"] = out["success"].astype("bool")
    return out


def _quarantine_frame(
    inputs: pd.DataFrame,
    quarantined: np.ndarray,
    first: pd.Series,
    reasons: pd.Series,
    stream: str,
    day: str,
) -> pd.DataFrame:
    if not quarantined.any():
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    bad = inputs[quarantined]
    payload = bad.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
    return pd.DataFrame(
        {
            "reading_id": bad["reading_id"].astype("str").to_numpy() if "reading_id" in bad else "",
            "stream": stream,
            "day": day,
            "expectation": first[quarantined].to_numpy(),
            "reason": reasons[quarantined].to_numpy(),
            "row_json": payload.splitlines(),
        },
        columns=QUARANTINE_COLUMNS,
    )


__all__ = [
    "CriticalValidationError",
    "ValidationOutcome",
    "raise_if_critical",
    "validate_partition",
]
