"""The SQL of the project lives in sql/; Python only loads it."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


@lru_cache(maxsize=None)
def query_sql(name: str) -> str:
    """The text of sql/queries/NAME.sql."""
    return (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8").strip().rstrip(";")
