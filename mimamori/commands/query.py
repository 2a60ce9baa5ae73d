"""`mimamori query VIEW`: read one of the contract's views as a table, JSON lines or CSV."""
from __future__ import annotations

import argparse
import csv
import sys
from datetime import date, datetime
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.models import iso
from pipeline.io.store.backends import StoreError, open_store
from pipeline.io.store.views import TENANT_VIEWS, VIEWS, read_view

HELP = "print a ClickHouse view of the contract (portal_* or analyst_*)"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day YYYY-MM-DD, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("view", metavar="VIEW", choices=VIEWS, help=f"one of: {', '.join(VIEWS)}")
    parser.add_argument("--tenant", metavar="T",
                        help="only this tenant's rows (portal views; without it, an operator's listing of every tenant)")
    parser.add_argument("--from", dest="from_day", metavar="D", type=_day, help="first day, YYYY-MM-DD (in MIMAMORI_TZ)")
    parser.add_argument("--to", dest="to_day", metavar="D", type=_day, help="last day, YYYY-MM-DD, inclusive")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.add_argument("--store", metavar="URL", help="overrides MIMAMORI_CLICKHOUSE")
    parser.set_defaults(_parser=parser)


def plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return iso(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting with a formula character gets a leading
    apostrophe (numbers are left as they are; `-3` is a number, not a formula)."""
    text = _cell(value)
    if not isinstance(value, (int, float)) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def write_rows(rows: list[dict[str, Any]], fmt: str, out: Any) -> None:
    if fmt == "json":
        for row in rows:
            out.write(orjson.dumps(row).decode() + "\n")
        return
    if not rows:
        if fmt == "table":
            out.write("(no rows)\n")
        return
    names = list(rows[0])
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; a CR or LF inside a cell is then quoted
        writer.writerow([csv_cell(n) for n in names])
        writer.writerows([csv_cell(row[n]) for n in names] for row in rows)
        return
    cells = [[_cell(row[n]) for n in names] for row in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    out.write("  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip() + "\n")
    for line in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.tenant is not None and args.view not in TENANT_VIEWS:
        args._parser.error(f"{args.view} has no tenant column; drop --tenant")
    if args.tenant is not None and not args.tenant.strip():
        args._parser.error("--tenant is empty; give a tenant id (omit --tenant to list every tenant)")
    try:
        store = open_store(args.store or settings.clickhouse)
        try:
            rows = read_view(store, args.view, tz=settings.tz.key, tenant=args.tenant,
                             every_tenant=args.tenant is None, from_day=args.from_day, to_day=args.to_day)
        finally:
            store.close()
    except StoreError as exc:
        print(f"mimamori query: {exc}", file=sys.stderr)
        return 1
    write_rows([{k: plain(v) for k, v in row.items()} for row in rows], args.format, sys.stdout)
    return 0
