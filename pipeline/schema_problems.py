"""Every problem of a document (a registry file, a notice) against its schema in schemas/, named by place.

The runtime's one JSON Schema library is fastjsonschema, which stops at the first problem. To name
them all, the schema is walked along the document: each object and array is checked on its own
(its type, required and unknown properties, sizes), then each property and item it holds, so a
problem in one place does not hide another elsewhere. One problem is named per place.

Formats are checked as the schemas mean them: `date` is a real calendar date, `email` is a plain
`local@domain` (pipeline/addresses.py, the schemas' pattern too), `date-time` is left to the schema's pattern and the caller's parser.
`unevaluatedProperties: false` is read as "no property that the schema and what it refers to
(`$ref`, `allOf`) do not name", which is all the schemas here use it for.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any, Callable

import fastjsonschema

from pipeline.addresses import is_plain_address
from pipeline.ingest.schemas import SCHEMA_BASE, load_schema

_DEEP = {"properties", "items", "$ref", "allOf", "$defs", "$id", "$schema", "unevaluatedProperties",
         "title", "description", "default"}


def _is_date(value: str) -> bool:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


FORMATS: dict[str, Callable[[str], bool]] = {
    "date": _is_date,
    "email": is_plain_address,
    "date-time": lambda value: True,
}


@dataclass
class _Node:
    """A schema node with its `$ref` and `allOf` merged in: the shallow checks, then what lies below."""

    checks: list[tuple[str, str]] = field(default_factory=list)  # (document, shallow schema as JSON)
    properties: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    closed: bool = False  # unevaluatedProperties: false


def _resolve(ref: str, document: str) -> tuple[str, dict[str, Any]]:
    target, _, pointer = ref.removeprefix(SCHEMA_BASE).partition("#")
    document = target or document
    node: Any = load_schema(document)
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return document, node


def _merge(into: _Node, schema: dict[str, Any], document: str) -> None:
    shallow = {key: value for key, value in schema.items() if key not in _DEEP}
    if isinstance(schema.get("properties"), dict):
        shallow["properties"] = {name: True for name in schema["properties"]}  # for additionalProperties
        for name, sub in schema["properties"].items():
            into.properties.setdefault(name, []).append((document, sub))
    if isinstance(schema.get("items"), dict):
        into.items.append((document, schema["items"]))
    if set(shallow) - {"properties"}:
        into.checks.append((document, json.dumps(shallow, sort_keys=True)))
    into.closed = into.closed or schema.get("unevaluatedProperties") is False
    for sub in schema.get("allOf", []):
        _merge(into, sub, document)
    if "$ref" in schema:
        target_document, target = _resolve(schema["$ref"], document)
        _merge(into, target, target_document)


@cache
def _compiled(document: str, shallow: str) -> Callable[[Any], Any]:
    whole = load_schema(document)
    # Beside the document's own $id and $defs, so that `#/$defs/...` and `other.json` refer as in the file.
    schema = {**json.loads(shallow), "$id": whole.get("$id", SCHEMA_BASE + document), "$defs": whole.get("$defs", {})}
    return fastjsonschema.compile(schema, handlers={"https": _local}, formats=FORMATS)


def _local(uri: str) -> dict[str, Any]:
    if not uri.startswith(SCHEMA_BASE):
        raise ValueError(f"schema reference outside schemas/: {uri}")
    return load_schema(uri[len(SCHEMA_BASE):])


def _place(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _deeper(value: Any, parts: list[str]) -> list[str | int]:
    """fastjsonschema's path below `value` ('0' for an index), as keys and indexes."""
    out: list[str | int] = []
    for part in parts:
        if isinstance(value, list) and part.isdigit():
            out.append(int(part))
            value = value[int(part)] if int(part) < len(value) else None
        else:
            out.append(part)
            value = value.get(part) if isinstance(value, dict) else None
    return out


def _message(error: fastjsonschema.JsonSchemaValueException) -> str:
    text = error.message.removeprefix(error.name or "").strip()
    definition = getattr(error, "definition", None)
    if error.rule in ("pattern", "format") and isinstance(definition, dict) and definition.get("format") == "email":
        text = "is not a plain address local@domain (no display name, comment, list, space or control character)"
    value = error.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{json.dumps(value, ensure_ascii=False)} {text}"
    return text


def _walk(document: str, schema: dict[str, Any], value: Any, path: list[str | int], found: dict[str, str]) -> None:
    node = _Node()
    _merge(node, schema, document)
    for where, shallow in node.checks:
        try:
            _compiled(where, shallow)(value)
        except fastjsonschema.JsonSchemaValueException as error:
            place = path + _deeper(value, list(error.path or [])[1:])
            found.setdefault(_place(place), _message(error))
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(node.properties)) if node.closed else []
        if unknown:
            found.setdefault(_place(path), f"must not contain {unknown} properties")
        for name, subs in node.properties.items():
            if name in value:
                for where, sub in subs:
                    _walk(where, sub, value[name], path + [name], found)
    elif isinstance(value, list):
        for where, sub in node.items:
            for index, item in enumerate(value):
                _walk(where, sub, item, path + [index], found)


@cache
def _whole(document: str) -> Callable[[Any], Any]:
    schema = load_schema(document)
    if "unevaluatedProperties" in json.dumps(schema):
        raise ValueError(f"{document}: fastjsonschema does not read unevaluatedProperties; use schema_problems")
    return fastjsonschema.compile(schema, handlers={"https": _local}, formats=FORMATS)


def conforms(data: Any, document: str) -> bool:
    """Whether `data` conforms to `schemas/<document>`, checked whole at once (a few µs): what
    `schema_problems` finds nothing in, for a schema without `unevaluatedProperties`."""
    try:
        _whole(document)(data)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def schema_problems(data: Any, document: str, whole: str = "file") -> list[str]:
    """'place: problem' for every place of `data` that breaks `schemas/<document>`; empty when none."""
    found: dict[str, str] = {}
    _walk(document, load_schema(document), data, [], found)
    return [f"{place or whole}: {message}" for place, message in found.items()]
