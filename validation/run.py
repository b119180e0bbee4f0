"""Validate one partition (a stream's Beijing day) and split it into valid rows and quarantine.

``validate_partition`` derives the relation columns (``validation.derive``), runs the stream's
suite through the process-wide GX context, and turns the results into:

- ``rows``: every input row with ``valid``, ``invalid_reason`` (``validation.validity``) and
  ``quarantined``;
- ``valid``: the input rows that pass every critical row-level expectation, with ``valid`` and
  ``invalid_reason``: ``rows`` without the quarantined ones, copied from ``rows`` when first read
  (a caller that needs only the verdicts or the counts reads ``rows`` and never pays the copy);
- ``quarantine``: one row per quarantined input row: ``reading_id``, ``stream``, ``day``,
  ``expectation`` (the first critical expectation it failed, in suite order), ``reason`` (every
  failed expectation's reason, ``; ``-joined), ``row_json`` (the input row as JSON);
- ``results``: one row per expectation: ``run_id``, ``day``, ``suite``, ``expectation``,
  ``severity``, ``success``, ``element_count``, ``unexpected_count``, ``unexpected_ids`` (JSON list
  of the failing reading ids), plus ``level`` and ``detail``; and a last row for the quarantine
  share, which GX cannot know before the rows are judged;
- ``critical_failed``: a critical table-level expectation failed (columns or types missing, no
  rows when devices were due, too large a share quarantined, an expectation that could not run).

A long-form partition (cems, ambient: one row per reading and code) goes to GX as two batches
(``validation.derive.derive_parts``): its *readings*, one row per run of rows that share every
reading column (stream, device, command, times, clock flags), judged by the reading-level
expectations (stream, device_registered, command_known, future, before_install, monotonic,
clock_*); and its *values*, every row, judged by the others and the table-level ones. A
reading's verdict is spread over its rows, and its counts are reported in rows, so the results
table reads as if every row had been judged (about 11 times fewer rows for the reading checks).

GX returns only row numbers (``result_format`` COMPLETE with ``unexpected_index_column_names``
``v_row``, values excluded): never whole frames; the run maps them to reading ids.
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
from validation.derive import FLAG_COLUMN, ROW, Derived, derive_parts
from validation.suites import MIN_ROWS_PARAMETER, Spec, parts, specs, suite_name
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
    "unexpected_index_column_names": [ROW],
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
    quarantine: pd.DataFrame
    results: pd.DataFrame
    critical_failed: bool
    #: every input row with ``valid``, ``invalid_reason`` and ``quarantined`` (completeness counts
    #: quarantined readings as received but not valid).
    rows: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    _valid: pd.DataFrame | None = field(repr=False, default=None)

    @property
    def valid(self) -> pd.DataFrame:
        """The rows not quarantined (with ``valid`` and ``invalid_reason``), 0..n-1 index.

        Built from ``rows`` on first read and kept: a copy of a 5 M-row day costs about 2 s of
        CPU and 1 GB, which a caller that only needs the verdicts (``rows``) never pays.
        """
        if self._valid is None:
            rows = self.rows
            if "quarantined" not in rows.columns:
                self._valid = rows
            else:
                quarantined = rows["quarantined"].to_numpy(dtype=bool)
                kept = rows.drop(columns=["quarantined"])
                self._valid = (
                    kept[~quarantined].reset_index(drop=True) if quarantined.any() else kept
                )
        return self._valid

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
    typed = _typed_if_empty(stream, df, rules)
    inputs = typed.reset_index(drop=True)
    derived = derive_parts(stream, typed, registry, rules)
    parameters = {MIN_ROWS_PARAMETER: 1 if _due(stream, registry, day, rules) else 0}

    suite_specs = specs(stream, rules)
    by_name = {s.name: s for s in suite_specs}
    order = {s.name: i for i, s in enumerate(suite_specs)}
    judged = []
    for part in parts(stream):
        batch = derived.values if part == "value" else derived.readings
        suite_result = _run_gx(context, stream, rules, batch, parameters, docs_dir, part)
        judged.extend(_judge(r, by_name, derived, part) for r in suite_result.results)
    context.forget_results()
    # GX reorders the results; reasons and the results table follow the suite
    judged.sort(key=lambda j: order.get(j["name"], len(order)))
    suite = suite_name(stream, rules)
    schema_broken = any(
        j["check"] in _SCHEMA_CHECKS and not j["success"] and j["severity"] == "critical"
        for j in judged
    )

    n = len(inputs)
    # few rows fail: their reasons are kept per row number, not in arrays as long as the day
    reasons: dict[int, str] = {}
    first_failure: dict[int, str] = {}
    if not schema_broken:
        for j in judged:
            spec: Spec | None = by_name.get(j["name"])
            if spec is None or spec.level != "row" or spec.severity != "critical":
                continue
            if len(j["rows"]) == 0:
                continue
            texts = _reasons(spec, j, derived)
            _append_reasons(reasons, first_failure, j["rows"], texts, j["name"])
    failed_rows = np.fromiter(sorted(reasons), dtype="int64", count=len(reasons))
    quarantined = np.zeros(n, dtype=bool)
    quarantined[failed_rows] = True

    judged.append(_share_result(n, quarantined, rules))
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
        rows = inputs.assign(valid=False, invalid_reason="schema", quarantined=False)
        valid = rows.iloc[0:0].drop(columns=["quarantined"])
        quarantine = pd.DataFrame(columns=QUARANTINE_COLUMNS)
    else:
        why = pd.Series(
            [reasons[r] for r in failed_rows.tolist()],
            index=inputs.index[failed_rows],
            dtype="object",
        )
        rows = assign_validity(
            inputs,
            stream,
            rules,
            audits=registry.get("audits"),
            quarantine_reason=why,
            flags=derived.values[FLAG_COLUMN].array if FLAG_COLUMN in derived.values else None,
        )
        rows["quarantined"] = quarantined
        valid = None  # built from ``rows`` when first read (ValidationOutcome.valid)
        quarantine = _quarantine_frame(inputs, failed_rows, first_failure, reasons, stream, day)
    return ValidationOutcome(
        stream=stream,
        day=day,
        run_id=run_id,
        suite=suite,
        quarantine=quarantine,
        results=results,
        critical_failed=critical_failed,
        rows=rows,
        _valid=valid,
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
    part: str = "value",
) -> Any:
    batch = {"dataframe": frame}
    if docs_dir is None:
        definition = context.definition(stream, rules, part)
        return definition.run(
            batch_parameters=batch, expectation_parameters=parameters, result_format=RESULT_FORMAT
        )
    checkpoint = context.checkpoint(stream, rules, Path(docs_dir), RESULT_FORMAT, part)
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


def _judge(r: Any, by_name: dict[str, Spec], derived: Derived, part: str) -> dict:
    """One expectation's result in the units of the input rows.

    An expectation of the readings batch lists failing runs (readings); they are turned into
    the input rows they stand for, and its counts into rows, as if it had judged every row.
    """
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
    frame = derived.values if part == "value" else derived.readings
    n_rows = len(derived.values)
    row_level = spec is not None and spec.level == "row"
    failing = _failing_rows(result) if row_level else np.array([], dtype="int64")
    runs = failing if part == "reading" else np.array([], dtype="int64")
    rows = derived.run_rows(failing) if part == "reading" else failing
    ids = (
        frame["reading_id"].iloc[failing].tolist() if len(failing) and "reading_id" in frame else []
    )
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
    element_count = int(result.get("element_count", n_rows))
    unexpected_count = int(result.get("unexpected_count", missing_count or (0 if r.success else 1)))
    if part == "reading":
        element_count = n_rows
        if row_level and not raised:
            unexpected_count = len(rows)
    return {
        "name": name,
        "check": meta.get("check", ""),
        "severity": meta.get("severity", "critical"),
        "level": level,
        "success": bool(r.success) and not raised,
        "element_count": element_count,
        "unexpected_count": unexpected_count,
        "ids": list(dict.fromkeys(ids)),
        "rows": rows,
        "runs": runs,
        "part": part,
        "detail": detail,
    }


def _reasons(spec: Spec, judged: dict, derived: Derived) -> np.ndarray:
    """The reason of each failing input row (worded once per reading for reading checks)."""
    if judged["part"] == "reading":
        runs = judged["runs"]
        if spec.reason is None:
            return np.full(len(judged["rows"]), judged["name"], dtype=object)
        texts = np.asarray(spec.reason(derived.readings.iloc[runs]), dtype=object)
        return np.repeat(texts, derived.lengths[runs])
    rows = judged["rows"]
    if spec.reason is None:
        return np.full(len(rows), judged["name"], dtype=object)
    return np.asarray(spec.reason(derived.values.iloc[rows]), dtype=object)


def _append_reasons(
    reasons: dict[int, str],
    first: dict[int, str],
    rows: np.ndarray,
    texts: np.ndarray,
    name: str,
) -> None:
    for r, text in zip(rows.tolist(), texts, strict=True):
        if r in reasons:
            reasons[r] = f"{reasons[r]}; {text}"
        else:
            reasons[r] = text
            first[r] = name


def _share_result(n: int, quarantined: np.ndarray, rules: ValidationRules) -> dict:
    check = rules.check("quarantine_share")
    limit = float(rules.param("quarantine.max_share"))
    bad = int(quarantined.sum())
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
        "runs": np.array([], int),
        "part": "value",
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
    failed_rows: np.ndarray,
    first: dict[int, str],
    reasons: dict[int, str],
    stream: str,
    day: str,
) -> pd.DataFrame:
    if not len(failed_rows):
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    bad = inputs.take(failed_rows)
    payload = bad.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
    return pd.DataFrame(
        {
            "reading_id": bad["reading_id"].astype("str").to_numpy() if "reading_id" in bad else "",
            "stream": stream,
            "day": day,
            "expectation": [first[r] for r in failed_rows.tolist()],
            "reason": [reasons[r] for r in failed_rows.tolist()],
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
