"""Apply the numbered files of sql/migrations in order, once each, recorded in `schema_migrations`."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.io.store.backends import Store, StoreError, quote, split_statements
from pipeline.io.store.sqlfiles import SQL_DIR, query_sql

MIGRATIONS_DIR = SQL_DIR / "migrations"
ROLES_DIR = SQL_DIR / "roles"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """A migration cannot be applied; the message names the file and, if any, the failing statement."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def statements(self, tz: str) -> list[str]:
        """The file's statements with `{tz}` (the only substitution) replaced by the quoted zone."""
        return [s.replace("{tz}", quote(tz)) for s in split_statements(self.text)]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version in {directory}")
    return found


def applied_migrations(store: Store) -> dict[int, dict]:
    store.execute(query_sql("migrations_table"))
    return {int(row["version"]): row for row in store.query(query_sql("migrations_applied"))}


def pending_migrations(store: Store, tz: str, migrations: list[Migration] | None = None) -> list[Migration]:
    """The migrations not applied yet; raises MigrationError on a changed file or another time zone."""
    migrations = load_migrations() if migrations is None else migrations
    applied = applied_migrations(store)
    pending = []
    for migration in migrations:
        done = applied.get(migration.version)
        if done is None:
            pending.append(migration)
            continue
        if done["checksum"] != migration.checksum:
            raise MigrationError(
                f"{migration.path.name}: changed after it was applied (checksum {done['checksum'][:12]}..., "
                f"file {migration.checksum[:12]}...); released migrations are frozen, add a new one")
        if "{tz}" in migration.text and done["tz"] != tz:
            raise MigrationError(
                f"{migration.path.name}: applied with MIMAMORI_TZ={done['tz']}, now {tz}; "
                "days already rolled up would mix zones")
    return pending


def apply_migrations(store: Store, tz: str, now: datetime, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration in order and return them; stop at the first failing statement."""
    done = []
    for migration in pending_migrations(store, tz, migrations):
        for statement in migration.statements(tz):
            try:
                store.execute(statement)
            except StoreError as exc:
                raise MigrationError(f"{migration.path.name}: {exc}\nstatement:\n{statement}") from exc
        store.insert("schema_migrations", [{
            "version": migration.version, "name": migration.name, "checksum": migration.checksum,
            "tz": tz if "{tz}" in migration.text else "", "applied_at": now.isoformat(),
        }])
        done.append(migration)
    return done


def apply_roles(store: Store, database: str) -> int:
    """Apply sql/roles/*.sql (`{db}` is the database name); servers with RBAC only."""
    count = 0
    for path in sorted(ROLES_DIR.glob("*.sql")):
        for statement in split_statements(path.read_text(encoding="utf-8")):
            statement = statement.replace("{db}", database)
            try:
                store.execute(statement)
            except StoreError as exc:
                raise MigrationError(f"{path.name}: {exc}\nstatement:\n{statement}") from exc
            count += 1
    return count
