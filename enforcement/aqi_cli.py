"""`lantian aqi FILE.csv --kind hourly|daily [--out OUT.csv] [--edition 2012]`.

Reads the pollutant columns (``so2, no2, co, o3_1h, o3_8h, pm10, pm25`` and optionally ``so2_24h``;
header case and surrounding spaces ignored; µg/m³, CO mg/m³) and writes the same rows, every other
column unchanged, with ``aqi, category, primary_pollutants, exceeding_pollutants`` appended (the
pollutant lists ';'-joined). Empty cells, ``NA``, ``NaN`` and ``null`` are missing values. Anything
else that is not a non-negative number stops the run with exit status 2 and names line and column.
"""

from __future__ import annotations

import argparse
import math
import sys

import pandas as pd

from enforcement.aqi import AQI_ITEMS, ROUNDING_MODES, compute_aqi
from schemas.ambient import DEFAULT_EDITION, aqi_editions

INPUT_COLUMNS = (*AQI_ITEMS, "so2_24h")
OUTPUT_COLUMNS = ("aqi", "category", "primary_pollutants", "exceeding_pollutants")
MISSING_TEXT = frozenset({"", "na", "nan", "null"})


class InputError(ValueError):
    """The CSV cannot be indexed; the message names the file, line and column."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lantian aqi", description="Compute AQI (HJ 633) for a CSV of concentrations."
    )
    parser.add_argument("file", help="CSV with columns among " + ", ".join(INPUT_COLUMNS))
    parser.add_argument("--kind", choices=("hourly", "daily"), required=True)
    parser.add_argument("--out", help="output CSV (default: standard output)")
    parser.add_argument("--edition", default=DEFAULT_EDITION, help="HJ 633 edition (default 2012)")
    parser.add_argument(
        "--rounding", choices=ROUNDING_MODES, help="IAQI rounding (default: the edition's)"
    )
    return parser


def _cell(text: object, path: str, line: int, column: str) -> float:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return math.nan  # a truncated row: the field is absent
    stripped = str(text).strip()
    if stripped.lower() in MISSING_TEXT:
        return math.nan
    try:
        value = float(stripped)
    except ValueError:
        raise InputError(
            f"{path}: line {line}, column {column!r}: {stripped!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise InputError(f"{path}: line {line}, column {column!r}: {stripped!r} is not finite")
    if value < 0:
        raise InputError(
            f"{path}: line {line}, column {column!r}: negative concentration {stripped}"
        )
    return value


def read_concentrations(path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The file as text (to write back unchanged) and its pollutant columns as floats."""
    try:
        text = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})".replace("\n", " ")) from None
    by_name = {str(c).strip().lower(): c for c in text.columns}
    present = [item for item in INPUT_COLUMNS if item in by_name]
    if not any(item in AQI_ITEMS for item in present):
        raise InputError(
            f"{path}: no pollutant column; expected some of {', '.join(AQI_ITEMS)} "
            f"(found {', '.join(map(str, text.columns)) or 'none'})"
        )
    numbers = pd.DataFrame(index=text.index)
    for item in present:
        original = by_name[item]
        # line 1 is the header, so data row i is on line i + 2
        numbers[item] = [
            _cell(v, path, i + 2, str(original)) for i, v in enumerate(text[original].tolist())
        ]
    return text, numbers


def annotate(text: pd.DataFrame, numbers: pd.DataFrame, kind: str, edition: str, rounding=None):
    """The input rows with the four AQI columns appended (replacing any of the same name)."""
    result = compute_aqi(numbers, kind=kind, edition=edition, rounding=rounding)
    out = text.drop(columns=[c for c in text.columns if str(c).strip().lower() in OUTPUT_COLUMNS])
    out["aqi"] = result["aqi"].astype("string").fillna("")
    out["category"] = result["category"].astype("object").where(result["category"].notna(), "")
    out["primary_pollutants"] = [";".join(p) for p in result["primary_pollutants"]]
    out["exceeding_pollutants"] = [";".join(p) for p in result["exceeding_pollutants"]]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.edition not in aqi_editions():
        print(
            f"lantian aqi: unknown edition {args.edition!r} (known: {', '.join(aqi_editions())})",
            file=sys.stderr,
        )
        return 2
    try:
        text, numbers = read_concentrations(args.file)
        out = annotate(text, numbers, args.kind, args.edition, args.rounding)
    except InputError as exc:
        print(f"lantian aqi: {exc}", file=sys.stderr)
        return 2
    if args.out:
        out.to_csv(args.out, index=False, encoding="utf-8")
        print(f"lantian aqi: {len(out)} rows -> {args.out}", file=sys.stderr)
    else:
        out.to_csv(sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
