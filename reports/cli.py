"""``lantian report``: write the monthly bureau report from the warehouse.

lantian report --month 2017-12 --out DIR [--warehouse URL] [--as-of 2018-01-05]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from reports.fonts import FontNotFoundError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lantian report", description="Write the monthly bureau report from the warehouse."
    )
    parser.add_argument("--month", required=True, help="the month to report, e.g. 2017-12")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: var/out)")
    parser.add_argument(
        "--warehouse", default=None, help="warehouse URL (default: LANTIAN_WAREHOUSE_URL)"
    )
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=None,
        help="judge publication deadlines on this day (default: the month's last day)",
    )
    return parser.parse_args(argv)


def _missing_sqlite_file(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    from lantian import settings

    url = args.warehouse or settings.warehouse_url()
    out_dir = args.out or settings.out_dir()
    missing = _missing_sqlite_file(url)
    if missing is not None:
        print(
            f"lantian report: no warehouse at {missing}; run the pipeline first "
            "(lantian demo) or pass --warehouse URL",
            file=sys.stderr,
        )
        return 2

    from enforcement.warehouse import Warehouse
    from reports.data import load_report_data
    from reports.monthly import build_report

    started = time.monotonic()
    print(f"reading {args.month} from {url}", file=sys.stderr)
    try:
        data = load_report_data(Warehouse(url), args.month)
    except ValueError as exc:
        print(f"lantian report: {exc}", file=sys.stderr)
        return 2

    def progress(step: int, total: int, label: str) -> None:
        print(f"[{step:>2}/{total}] {label}", file=sys.stderr, flush=True)

    try:
        paths = build_report(args.month, data, out_dir, as_of=args.as_of, progress=progress)
    except FontNotFoundError as exc:
        print(f"lantian report: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"lantian report: {exc}", file=sys.stderr)
        return 2
    print(f"xlsx:   {paths.xlsx}")
    print(f"pdf:    {paths.pdf}")
    print(f"html:   {paths.html}")
    print(f"charts: {len(paths.charts)} in {paths.xlsx.parent / 'charts'}")
    print()
    print(paths.summary)
    print(f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
