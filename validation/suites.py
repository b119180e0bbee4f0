"""The expectation suites, one per stream, kept as code and built from the rule files.

Every expectation is described by a :class:`Spec`: its name (stored in the results table and the
quarantine), the check it belongs to (whose severity and level come from validation.toml
``[checks]``), the GX expectation, and how to word the reason for a failing row. Severity and level
travel in the expectation's ``meta`` so that Data Docs show them too.

- level ``table``: about the partition as a whole (columns, types, rows due). A critical one that
  fails makes the task fail.
- level ``row``: judged row by row; rows failing a critical one are quarantined with a reason and
  the rest go on; a warning is only reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd

from schemas.validation_rules import MEASUREMENT_STREAMS, STREAMS, ValidationRules
from validation.derive import COMMAND_COLUMN, FLAG_COLUMN
from validation.expectations import (
    ExpectALRatioInRangeWhenFuelDispensed,
    ExpectColumnValuesPresentForCommands,
    ExpectColumnValuesWithinRowBounds,
    ExpectO2WithinRangeWhenConcentrationPresent,
    ExpectTableColumnKinds,
)

#: parameter the run fills with 1 when the partition's devices were due to send, else 0.
MIN_ROWS_PARAMETER = "lantian_min_rows"

Reason = Callable[[pd.DataFrame], list[str]]


@dataclass(frozen=True)
class Spec:
    name: str
    check: str
    severity: str
    level: str
    expectation: gxe.Expectation
    reason: Reason | None = None
    #: ``reading``: judges only columns of the reading (derive.READING_COLUMNS and the
    #: reading-level ``v_`` columns); on long-form streams it runs once per reading, not once
    #: per value. ``value``: everything else (and every table-level expectation).
    per: str = "value"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:g}"
    return str(value)


def _constant(text: str) -> Reason:
    return lambda rows: [text] * len(rows)


class _Builder:
    def __init__(self, stream: str, rules: ValidationRules) -> None:
        self.stream = stream
        self.rules = rules
        self.specs: list[Spec] = []

    def add(
        self,
        name: str,
        check: str,
        expectation_cls,
        reason: Reason | None = None,
        *,
        per: str = "value",
        **kw,
    ):
        entry = self.rules.check(check)
        meta = {
            "name": name,
            "check": check,
            "severity": entry.severity,
            "level": entry.level,
            "source": entry.source,
        }
        expectation = expectation_cls(meta=meta, **kw)
        self.specs.append(
            Spec(name, check, entry.severity, entry.level, expectation, reason, per=per)
        )


_SPECS: dict[tuple[str, str], list[Spec]] = {}


def specs(stream: str, rules: ValidationRules) -> list[Spec]:
    """Every expectation of ``stream``'s suite, in the order reasons are reported (built once per
    stream and rules fingerprint)."""
    key = (stream, rules.fingerprint)
    if key not in _SPECS:
        _SPECS[key] = _build_specs(stream, rules)
    return _SPECS[key]


def _build_specs(stream: str, rules: ValidationRules) -> list[Spec]:
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; known: {', '.join(STREAMS)}")
    b = _Builder(stream, rules)
    _table_specs(b)
    _identity_specs(b)
    if stream in MEASUREMENT_STREAMS:
        _measurement_specs(b)
    else:
        _profile_specs(b)
    _time_specs(b)
    return b.specs


def split(stream: str) -> bool:
    """Does ``stream`` validate as two batches: its readings (one row per reading) and its
    values (the long form, one row per reading and code)?"""
    return stream in MEASUREMENT_STREAMS


def parts(stream: str) -> tuple[str, ...]:
    """The batches a partition of ``stream`` is validated as: ``value`` (the rows as given,
    with every table-level expectation) and, for long-form streams, ``reading``."""
    return ("value", "reading") if split(stream) else ("value",)


def suite_name(stream: str, rules: ValidationRules, part: str = "value") -> str:
    base = f"lantian_{stream}_{rules.fingerprint}"
    return base if part == "value" else f"{base}_{part}s"


def build_suite(stream: str, rules: ValidationRules, part: str = "value") -> gx.ExpectationSuite:
    """The GX suite of ``stream``'s ``part`` (see :func:`parts`); a stream that is not split
    has every expectation in its ``value`` suite."""
    suite = gx.ExpectationSuite(
        name=suite_name(stream, rules, part),
        meta={"stream": stream, "rules_fingerprint": rules.fingerprint, "part": part},
    )
    # fresh expectation objects: a suite owns the ones added to it (GX gives them ids)
    for spec in _build_specs(stream, rules):
        if spec_part(stream, spec) == part:
            suite.add_expectation(spec.expectation)
    return suite


def spec_part(stream: str, spec: Spec) -> str:
    """Which batch of ``stream`` judges ``spec``."""
    return spec.per if split(stream) else "value"


# --- table level ---------------------------------------------------------------------------------


def _table_specs(b: _Builder) -> None:
    columns = b.rules.columns(b.stream)
    b.add(
        "schema_columns",
        "schema_columns",
        gxe.ExpectTableColumnsToMatchSet,
        column_set=sorted(columns),
        exact_match=False,
    )
    b.add("schema_types", "schema_types", ExpectTableColumnKinds, column_kinds=columns)
    b.add(
        "rows_due",
        "rows_due",
        gxe.ExpectTableRowCountToBeBetween,
        min_value={"$PARAMETER": MIN_ROWS_PARAMETER},
    )


# --- row level: identity -------------------------------------------------------------------------


def _identity_specs(b: _Builder) -> None:
    stream_value = "vapor" if b.stream == "vapor_tank" else b.stream
    b.add(
        "stream",
        "stream",
        gxe.ExpectColumnValuesToBeInSet,
        lambda rows: [f"stream:{v!r} in the {stream_value} partition" for v in rows["stream"]],
        per="reading",
        column="stream",
        value_set=[stream_value],
    )
    b.add(
        "device_registered",
        "device_registered",
        gxe.ExpectColumnValuesToNotBeNull,
        lambda rows: [f"device:{d} not in the registry" for d in rows["device_id"]],
        per="reading",
        column="v_install_at",
    )
    b.add(
        "duplicate",
        "duplicate",
        gxe.ExpectColumnValuesToBeInSet,
        _constant("duplicate"),
        column="v_dup",
        value_set=[False],
    )


# --- row level: measurements (cems, ambient) ------------------------------------------------------


def _measurement_specs(b: _Builder) -> None:
    rules, stream = b.rules, b.stream
    commands = [str(c) for c in rules.param(f"commands.{stream}")]
    b.add(
        "command_known",
        "command_known",
        gxe.ExpectColumnValuesToBeInSet,
        lambda rows: [f"cn:{c!r} is not a data command" for c in rows["cn"]],
        per="reading",
        column="cn",
        value_set=commands,
    )
    b.add(
        "flag_known",
        "flag_known",
        gxe.ExpectColumnValuesToBeInSet,
        lambda rows: [f"flag:unknown {f!r}" for f in rows["flag"]],
        # the flag as a categorical (derive.py): judged once per distinct flag
        column=FLAG_COLUMN,
        value_set=list(rules.param("flags.allowed")),
    )
    b.add(
        "code_known",
        "code_known",
        gxe.ExpectColumnValuesToBeInSet,
        lambda rows: [f"code:{c} has no range for {stream}" for c in rows["code"]],
        column="v_code_known",
        value_set=[True],
    )
    b.add(
        "unit_known",
        "unit_known",
        gxe.ExpectColumnValuesToBeInSet,
        lambda rows: [
            f"unit:{u!r} not configured for {c}"
            for u, c in zip(rows["unit"], rows["code"], strict=True)
        ],
        column="v_unit_ok",
        value_set=[True],
    )
    for column in ("rtd", "avg", "min", "max"):
        b.add(
            f"range.{column}",
            "range",
            ExpectColumnValuesWithinRowBounds,
            _measurement_range_reason(column),
            column_list=[column, "v_range_min", "v_range_max"],
        )
    commands_of: dict[str, list[str]] = {}
    for cn, columns in rules.required(stream).items():
        for column in columns:
            commands_of.setdefault(column, []).append(str(cn))
    for column, cns in commands_of.items():
        b.add(
            f"required.{column}",
            "required",
            ExpectColumnValuesPresentForCommands,
            _required_reason(column),
            column_A=column,
            # the reading's command on each of its rows, as a categorical (derive.py)
            column_B=COMMAND_COLUMN,
            commands=sorted(cns),
        )
    if any(r.kind == "o2" for r in rules.ranges_for(stream)):
        low = float(rules.param("o2.min_pct"))
        high = float(rules.threshold("cems.o2_fault_pct"))
        b.add(
            "o2_with_concentration",
            "o2_with_concentration",
            ExpectO2WithinRangeWhenConcentrationPresent,
            lambda rows: [
                f"o2:{_fmt(o)} % outside [{_fmt(low)}, {_fmt(high)}) for a concentration"
                for o in rows["v_o2"]
            ],
            column_A="v_o2",
            column_B="v_conc",
            min_value=low,
            max_value=high,
        )
    for check, column in (("clock_jump", "clock_jump"), ("clock_drift", "clock_drift")):
        b.add(
            check,
            check,
            gxe.ExpectColumnValuesToBeInSet,
            _constant(f"clock:{check.removeprefix('clock_')}"),
            per="reading",
            column=column,
            value_set=[False],
        )


def _required_reason(column: str) -> Reason:
    return lambda rows: [f"required:{column} missing for cn {cn}" for cn in rows["cn"]]


def _measurement_range_reason(column: str) -> Reason:
    def reason(rows: pd.DataFrame) -> list[str]:
        return [
            f"range:{code}.{column}={_fmt(v)} outside [{_fmt(lo)}, {_fmt(hi)}] {unit}".rstrip()
            for code, v, lo, hi, unit in zip(
                rows["code"],
                rows[column],
                rows["v_range_min"],
                rows["v_range_max"],
                rows["unit"],
                strict=True,
            )
        ]

    return reason


# --- row level: profile families (vapor, vapor_tank, rsd) ----------------------------------------


def _profile_specs(b: _Builder) -> None:
    rules, stream = b.rules, b.stream
    kinds = rules.columns(stream)

    def judged(column: str) -> str:
        return f"n_{column}" if kinds.get(column) == "int" else column

    for column, values in rules.categories(stream).items():
        b.add(
            f"category.{column}",
            "category",
            gxe.ExpectColumnValuesToBeInSet,
            _category_reason(column, values),
            column=judged(column),
            value_set=[float(v) for v in values] if kinds.get(column) == "int" else list(values),
        )
    for r in rules.ranges_for(stream):
        b.add(
            f"range.{r.code}",
            "range",
            gxe.ExpectColumnValuesToBeBetween,
            _profile_range_reason(r.code, r.min, r.max, r.unit),
            column=judged(r.code),
            min_value=r.min,
            max_value=r.max,
        )
    # profile records have one command: their required columns are listed under "*"
    for columns in rules.required(stream).values():
        for column in columns:
            target = judged(column)
            if kinds.get(column) == "str":
                b.add(
                    f"required.{column}",
                    "required",
                    gxe.ExpectColumnValueLengthsToBeBetween,
                    _constant(f"required:{column} missing"),
                    column=target,
                    min_value=1,
                )
            else:
                b.add(
                    f"required.{column}",
                    "required",
                    gxe.ExpectColumnValuesToNotBeNull,
                    _constant(f"required:{column} missing"),
                    column=target,
                )
    if stream == "vapor":
        low, high = float(rules.param("al.sane_min")), float(rules.param("al.sane_max"))
        fuel_min = float(rules.param("al.fuel_min_l"))
        b.add(
            "al_when_fuel",
            "al_when_fuel",
            ExpectALRatioInRangeWhenFuelDispensed,
            lambda rows: [
                f"al_ratio:{_fmt(a)} outside [{_fmt(low)}, {_fmt(high)}] with {_fmt(f)} L dispensed"
                for a, f in zip(rows["al_ratio"], rows["fuel_volume_l"], strict=True)
            ],
            column_A="al_ratio",
            column_B="fuel_volume_l",
            min_value=low,
            max_value=high,
            fuel_min=fuel_min,
        )


def _category_reason(column: str, values: list) -> Reason:
    allowed = ", ".join(repr(v) for v in values)
    return lambda rows: [f"category:{column}={_fmt(v)} not in [{allowed}]" for v in rows[column]]


def _profile_range_reason(column: str, low: float, high: float, unit: str) -> Reason:
    def reason(rows: pd.DataFrame) -> list[str]:
        return [
            f"range:{column}={_fmt(v)} outside [{_fmt(low)}, {_fmt(high)}] {unit}".rstrip()
            for v in rows[column]
        ]

    return reason


# --- row level: time ---------------------------------------------------------------------------------


def _time_specs(b: _Builder) -> None:
    rules = b.rules
    tolerance = float(rules.param("time.future_tolerance_s"))
    b.add(
        "future",
        "future",
        gxe.ExpectColumnValuesToBeBetween,
        lambda rows: [
            f"future:data time {_fmt(s)} s after receipt (tolerance {_fmt(tolerance)} s)"
            for s in rows["v_ahead_s"]
        ],
        per="reading",
        column="v_ahead_s",
        max_value=tolerance,
    )
    b.add(
        "before_install",
        "before_install",
        gxe.ExpectColumnValuesToBeBetween,
        lambda rows: [
            f"before_install:data time {t} before the device's install ({i})"
            for t, i in zip(rows["data_time"], rows["v_install_at"], strict=True)
        ],
        per="reading",
        column="v_since_install_s",
        min_value=0,
    )
    back = float(rules.param("time.monotonic_tolerance_s"))
    b.add(
        "monotonic",
        "monotonic",
        gxe.ExpectColumnValuesToBeBetween,
        lambda rows: [
            f"time_backwards:{_fmt(s)} s behind the device's previous reading"
            for s in rows["v_step_s"]
        ],
        per="reading",
        column="v_step_s",
        min_value=-back,
    )
