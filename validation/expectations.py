"""Custom Great Expectations for what the built-ins cannot say (pandas engine).

Each is a map metric (decides row by row, so failing rows come back by id for quarantine) plus an
expectation class. Importing this module registers them with GX; ``validation.suites`` does.

- :class:`ExpectO2WithinRangeWhenConcentrationPresent`: a pollutant concentration can only be
  corrected to the reference O2 (C × (21 − O2ref)/(21 − O2)) when the reading's O2 is a
  believable value: at least ``min_value`` and strictly below ``max_value`` (the fault cut-off near
  21 %, thresholds.toml ``cems.o2_fault_pct``). Rows that are not concentrations, or whose reading
  sent no O2, are not judged here.
- :class:`ExpectALRatioInRangeWhenFuelDispensed`: the air-to-liquid ratio means something only
  when fuel was dispensed; then it must be present and inside a sane range (a sensor check, not the
  1.0-1.2 acceptance band, which is enforcement's).
- :class:`ExpectColumnValuesWithinRowBounds`: a value inside bounds carried by the row itself
  (the physical range of the row's code and unit, joined from validation_ranges.csv), so that one
  expectation covers every code of a long-form frame in one vectorised pass.
- :class:`ExpectColumnValuesPresentForCommands`: a value column holds a value on every row
  whose command (column_B) is one of ``commands`` (minute and hourly data need ``avg``,
  real-time data ``rtd``). The built-in not-null expectation with a ``row_condition`` says the
  same but makes pandas copy the whole partition per condition.
- :class:`ExpectTableColumnKinds`: every contract column present has its kind (``str`` = the
  pandas 3 string dtype, ``float``, ``time`` = tz-aware datetime, ``bool``, ``int`` = a number or
  digits as text). One table-level expectation instead of one per column: the built-in type
  expectations cannot say "tz-aware" and miss pandas 3 strings in type lists, and each
  expectation costs GX bookkeeping per run.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    BatchExpectation,
    ColumnPairMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnPairMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_pair_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)

_PAIR_DOMAIN_KEYS = (
    "batch_id",
    "table",
    "column_A",
    "column_B",
    "row_condition",
    "condition_parser",
    "ignore_row_if",
)


def o2_ok_when_concentration(
    o2: pd.Series, is_concentration: pd.Series, min_value: float, max_value: float
) -> pd.Series:
    """True where the row passes: not a concentration, no O2 sent, or min <= O2 < max."""
    o2 = pd.to_numeric(o2, errors="coerce").astype("float64")
    concentration = is_concentration.astype("bool")
    believable = (o2 >= min_value) & (o2 < max_value)
    return ~concentration | o2.isna() | believable


def al_ok_when_fuel(
    al_ratio: pd.Series, fuel_volume: pd.Series, min_value: float, max_value: float, fuel_min: float
) -> pd.Series:
    """True where the row passes: no fuel dispensed, or A/L present and min <= A/L <= max."""
    al = pd.to_numeric(al_ratio, errors="coerce").astype("float64")
    fuel = pd.to_numeric(fuel_volume, errors="coerce").astype("float64")
    dispensed = fuel > fuel_min
    return ~dispensed | ((al >= min_value) & (al <= max_value))


def present_for_commands(values: pd.Series, commands: pd.Series, wanted: list[str]) -> pd.Series:
    """True where the row passes: its command is not in ``wanted``, or the value is present."""
    wanted = [str(c) for c in wanted]
    if isinstance(commands.dtype, pd.CategoricalDtype):
        # decided once per distinct command; a missing command (code -1) is not listed
        listed = np.append(commands.cat.categories.astype("str").isin(wanted), False)
        hit = listed[commands.cat.codes.to_numpy()]
        return pd.Series(~hit, index=values.index) | values.notna()
    return ~commands.astype("str").isin(wanted) | values.notna()


def dtype_has_kind(dtype: Any, kind: str) -> bool:
    """Does a pandas dtype carry a contract kind (str, float, time, bool, int)?"""
    types = pd.api.types
    if kind == "str":
        return isinstance(dtype, pd.StringDtype)
    if kind == "float":
        return types.is_float_dtype(dtype)
    if kind == "time":
        return isinstance(dtype, pd.DatetimeTZDtype)
    if kind == "bool":
        return types.is_bool_dtype(dtype)
    if kind == "int":  # the loader writes profile integers as text; a number is fine too
        return isinstance(dtype, pd.StringDtype) or (
            types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype)
        )
    raise ValueError(f"unknown column kind {kind!r}")


def within_row_bounds(values: pd.Series, low: pd.Series, high: pd.Series) -> pd.Series:
    """True where low <= value <= high; a missing value or missing bound is not judged."""
    value = values.astype("float64").to_numpy()
    lo = low.astype("float64").to_numpy()
    hi = high.astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        inside = (value >= lo) & (value <= hi)
    unjudged = np.isnan(value) | np.isnan(lo) | np.isnan(hi)
    return pd.Series(inside | unjudged, index=values.index)


class ColumnPairO2WithinRangeWhenConcentration(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.lantian_o2_within_range_when_concentration"
    condition_domain_keys = _PAIR_DOMAIN_KEYS
    condition_value_keys = ("min_value", "max_value")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, **kwargs):
        return o2_ok_when_concentration(
            column_A, column_B, float(kwargs["min_value"]), float(kwargs["max_value"])
        )


class ExpectO2WithinRangeWhenConcentrationPresent(ColumnPairMapExpectation):
    """Expect the reading's O2 (column_A) inside [min_value, max_value) on concentration rows
    (column_B true)."""

    min_value: float = 0.0
    max_value: float = 21.0
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "neither"
    )

    map_metric: ClassVar[str] = ColumnPairO2WithinRangeWhenConcentration.condition_metric_name
    success_keys: ClassVar[tuple[str, ...]] = (
        "column_A",
        "column_B",
        "min_value",
        "max_value",
        "ignore_row_if",
        "mostly",
    )
    args_keys: ClassVar[tuple[str, ...]] = ("column_A", "column_B", "min_value", "max_value")


class ColumnPairALRatioInRangeWhenFuel(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.lantian_al_ratio_in_range_when_fuel"
    condition_domain_keys = _PAIR_DOMAIN_KEYS
    condition_value_keys = ("min_value", "max_value", "fuel_min")

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, **kwargs):
        return al_ok_when_fuel(
            column_A,
            column_B,
            float(kwargs["min_value"]),
            float(kwargs["max_value"]),
            float(kwargs["fuel_min"]),
        )


class ExpectALRatioInRangeWhenFuelDispensed(ColumnPairMapExpectation):
    """Expect the A/L ratio (column_A) present and inside [min_value, max_value] whenever the
    dispensed volume (column_B) exceeds fuel_min."""

    min_value: float = 0.0
    max_value: float = 3.0
    fuel_min: float = 0.0
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "neither"
    )

    map_metric: ClassVar[str] = ColumnPairALRatioInRangeWhenFuel.condition_metric_name
    success_keys: ClassVar[tuple[str, ...]] = (
        "column_A",
        "column_B",
        "min_value",
        "max_value",
        "fuel_min",
        "ignore_row_if",
        "mostly",
    )
    args_keys: ClassVar[tuple[str, ...]] = ("column_A", "column_B", "min_value", "max_value")


class ColumnPairPresentForCommands(ColumnPairMapMetricProvider):
    condition_metric_name = "column_pair_values.lantian_present_for_commands"
    condition_domain_keys = _PAIR_DOMAIN_KEYS
    condition_value_keys = ("commands",)

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A, column_B, **kwargs):
        return present_for_commands(column_A, column_B, list(kwargs["commands"]))


class ExpectColumnValuesPresentForCommands(ColumnPairMapExpectation):
    """Expect column_A to hold a value on every row whose command (column_B) is in commands."""

    commands: list[str]
    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "neither"
    )

    map_metric: ClassVar[str] = ColumnPairPresentForCommands.condition_metric_name
    success_keys: ClassVar[tuple[str, ...]] = (
        "column_A",
        "column_B",
        "commands",
        "ignore_row_if",
        "mostly",
    )
    args_keys: ClassVar[tuple[str, ...]] = ("column_A", "column_B", "commands")


class MulticolumnWithinRowBounds(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.lantian_within_row_bounds"
    condition_domain_keys = (
        "batch_id",
        "table",
        "column_list",
        "row_condition",
        "condition_parser",
        "ignore_row_if",
    )
    condition_value_keys = ()

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list, **kwargs):
        value, low, high = column_list.columns
        return within_row_bounds(column_list[value], column_list[low], column_list[high])


class ExpectColumnValuesWithinRowBounds(MulticolumnMapExpectation):
    """Expect column_list[0] between column_list[1] and column_list[2] (inclusive) on every row
    where all three are present."""

    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = (
        "any_value_is_missing"
    )

    map_metric: ClassVar[str] = MulticolumnWithinRowBounds.condition_metric_name
    success_keys: ClassVar[tuple[str, ...]] = ("column_list", "ignore_row_if", "mostly")
    args_keys: ClassVar[tuple[str, ...]] = ("column_list",)


class ExpectTableColumnKinds(BatchExpectation):
    """Expect each column named in column_kinds (when present) to have that kind."""

    column_kinds: dict[str, str]

    metric_dependencies: ClassVar[tuple[str, ...]] = ("table.column_types",)
    success_keys: ClassVar[tuple[str, ...]] = ("column_kinds",)
    args_keys: ClassVar[tuple[str, ...]] = ("column_kinds",)

    def _validate(self, metrics: dict, runtime_configuration=None, execution_engine=None):
        kinds = self._get_success_kwargs()["column_kinds"]
        observed = {c["name"]: c["type"] for c in metrics["table.column_types"]}
        wrong = {
            name: {"expected": kind, "observed": str(observed[name])}
            for name, kind in kinds.items()
            if name in observed and not dtype_has_kind(observed[name], kind)
        }
        return {
            "success": not wrong,
            "result": {
                "observed_value": {name: str(t) for name, t in observed.items()},
                "details": {"wrong_kinds": wrong},
            },
        }
