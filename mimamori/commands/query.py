"""`mimamori query VIEW`: read one of the contract's views as a table, JSON lines or CSV."""
from __future__ import annotations

import argparse
import sys
from datetime import date

from mimamori.printing import plain, write_rows
from pipeline.config import Settings
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
