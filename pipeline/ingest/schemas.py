"""The wire schemas of schemas/, loaded once and compiled to Python code (fastjsonschema)."""
from __future__ import annotations

import json
from functools import cache
from typing import Any, Callable

import fastjsonschema

from pipeline.resources import SCHEMAS

SCHEMA_BASE = "https://mimamori.example/schemas/"


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def _local(uri: str) -> dict[str, Any]:
    if not uri.startswith(SCHEMA_BASE):
        raise ValueError(f"schema reference outside schemas/: {uri}")
    return load_schema(uri[len(SCHEMA_BASE):])


@cache
def compiled_validator(name: str) -> Callable[[Any], Any]:
    """Raises fastjsonschema.JsonSchemaValueException on the first problem.

    Formats are not asserted here: the checks that need them (IP addresses, calendar dates) are done
    by hand where the value is normalized, the way `jsonschema`'s format checker does them.
    """
    return fastjsonschema.compile(load_schema(name), handlers={"https": _local}, use_formats=False)
