"""`mimamori migrate`: apply the pending migrations of sql/migrations to the store."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from pipeline.config import Settings
from pipeline.io.store.backends import ChdbStore, StoreError, open_store
from pipeline.io.store.migrate import MigrationError, apply_migrations, apply_roles

HELP = "apply the pending ClickHouse migrations (sql/migrations); a no-op when up to date"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", help="chdb:///PATH or clickhouse://... (overrides MIMAMORI_CLICKHOUSE)")
    parser.add_argument("--roles", action="store_true",
                        help="also create the roles of sql/roles (servers with RBAC, ClickHouse 24.2+)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = args.store or settings.clickhouse
    try:
        store = open_store(url, create=True)
    except StoreError as exc:
        print(f"mimamori migrate: {exc}", file=sys.stderr)
        return 1
    try:
        applied = apply_migrations(store, settings.tz.key, datetime.now(timezone.utc))
        for migration in applied:
            print(f"applied {migration.path.name}")
        if not applied:
            print("up to date")
        if args.roles:
            if isinstance(store, ChdbStore):
                print("mimamori migrate: --roles needs a ClickHouse server with RBAC; chdb has no access control",
                      file=sys.stderr)
                return 1
            print(f"roles: {apply_roles(store, store.database)} statements")
        return 0
    except (MigrationError, StoreError) as exc:
        print(f"mimamori migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
