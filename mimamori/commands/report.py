"""`mimamori report TENANT_ID --month YYYY-MM`: render one monthly report to files, without sending."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from pipeline.config import Settings
from pipeline.report.schedule import Month
from pipeline.io.store.backends import StoreError, open_store

HELP = "render one tenant's monthly report to files (.eml, HTML, PNGs) without sending it"


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tenant", metavar="TENANT_ID")
    parser.add_argument("--month", type=_month, required=True, help="the month reported, YYYY-MM (in MIMAMORI_TZ)")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory of the files (default: here)")
    parser.add_argument("--store", metavar="URL", help="overrides MIMAMORI_CLICKHOUSE")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.io.report_gather import build_report, read_tenant  # matplotlib: only where a report is drawn
    from pipeline.report.files import write_report

    try:
        store = open_store(args.store or settings.clickhouse)
        try:
            tenant = read_tenant(store, args.tenant)
            if tenant is None:
                print(f"mimamori report: no tenant {args.tenant!r} in the store", file=sys.stderr)
                return 1
            rendered = build_report(store, tenant, args.month, settings.tz, datetime.now(timezone.utc))
        finally:
            store.close()
    except StoreError as exc:
        print(f"mimamori report: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"mimamori report: {exc}", file=sys.stderr)
        return 1
    try:
        eml = write_report(rendered, args.out)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"mimamori report: cannot write to --out {args.out}: {reason}", file=sys.stderr)
        return 1
    print(eml)
    for path in sorted(args.out.glob(f"{eml.stem}*")):
        if path != eml:
            print(path)
    return 0
