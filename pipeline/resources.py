"""Where the project's non-Python parts live: schemas, SQL, templates, the default rules."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
SQL = ROOT / "sql"
TEMPLATES = ROOT / "templates"
DEFAULT_RULES = Path(__file__).resolve().parent / "rules" / "default.toml"
