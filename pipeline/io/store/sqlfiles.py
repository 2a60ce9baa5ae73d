"""The SQL of the project lives in sql/; Python only loads it."""
from __future__ import annotations

from functools import lru_cache
from pipeline.resources import SQL

SQL_DIR = SQL


@lru_cache(maxsize=None)
def query_sql(name: str) -> str:
    """The text of sql/queries/NAME.sql."""
    return (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8").strip().rstrip(";")
