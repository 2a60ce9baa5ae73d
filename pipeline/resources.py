"""Where the project's non-Python parts live: schemas, SQL, templates, the default rules.

In a checkout (and an editable install) they sit beside the package; a regular install puts them
under `sys.prefix/share/mimamori` (see pyproject.toml).
"""
from __future__ import annotations

import sys
from pathlib import Path


def _data_root() -> Path:
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "sql" / "migrations").is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "mimamori"


ROOT = _data_root()
SCHEMAS = ROOT / "schemas"
SQL = ROOT / "sql"
TEMPLATES = ROOT / "templates"
DEFAULT_RULES = Path(__file__).resolve().parent / "rules" / "default.toml"
