"""The registry file `{"tenants": [...], "utms": [...]}`: read, check everything, and name every problem."""
from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from referencing import Registry as SchemaStore
from referencing import Resource

from pipeline.ingest.schemas import SCHEMA_BASE, load_schema
from pipeline.models import Registry, Tenant, Utm, parse_time


class RegistryFileError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@cache
def _file_schema() -> jsonschema.Draft202012Validator:
    store = SchemaStore().with_resources(
        (SCHEMA_BASE + name, Resource.from_contents(load_schema(name)))
        for name in ("tenant.json", "utm.json", "registry-file.json")
    )
    return jsonschema.Draft202012Validator(
        load_schema("registry-file.json"), registry=store,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "file"


def registry_problems(data: Any) -> list[str]:
    """Every problem of a parsed registry file; empty when it may be loaded."""
    by_place: dict[str, str] = {}
    for error in sorted(_file_schema().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        by_place.setdefault(_where(error.absolute_path), error.message)
    problems = [f"{place}: {message}" for place, message in by_place.items()]
    if not isinstance(data, dict):
        return problems
    tenants = [t for t in data.get("tenants") or [] if isinstance(t, dict)]
    utms = [u for u in data.get("utms") or [] if isinstance(u, dict)]
    problems += _time_problems(utms)
    for kind, records, key in (("tenant", tenants, "tenant_id"), ("UTM", utms, "utm_id")):
        counts = Counter(r.get(key) for r in records if isinstance(r.get(key), str))
        problems += [f"{kind} id {ident!r} appears {n} times" for ident, n in counts.items() if n > 1]
    known = {t.get("tenant_id") for t in tenants}
    problems += [
        f"utms[{i}]: tenant {u['tenant_id']!r} of UTM {u.get('utm_id')!r} is not in the file"
        for i, u in enumerate(data.get("utms") or []) if isinstance(u, dict) and isinstance(u.get("tenant_id"), str)
        and u["tenant_id"] not in known
    ]
    return problems


def _time_problems(utms: list[dict[str, Any]]) -> list[str]:
    """The schema's date-time pattern lets a few impossible times through (30 February); date formats are checked."""
    problems = []
    for utm in utms:
        value = utm.get("registered_at")
        if isinstance(value, str):
            try:
                parse_time(value.upper())
            except ValueError:
                problems.append(f"UTM {utm.get('utm_id')!r}: registered_at {value!r} is not a real time")
    return problems


def registry_from_data(data: Any) -> Registry:
    problems = registry_problems(data)
    if problems:
        raise RegistryFileError(problems)
    return Registry(
        tenants={t["tenant_id"]: Tenant.from_record(t) for t in data["tenants"]},
        utms={u["utm_id"]: Utm.from_record({**u, "registered_at": (u.get("registered_at") or "").upper() or None})
              for u in data["utms"]},
    )


def load_registry_file(path: str | Path) -> Registry:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RegistryFileError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RegistryFileError([f"{path}: not JSON: {exc}"]) from None
    return registry_from_data(data)
