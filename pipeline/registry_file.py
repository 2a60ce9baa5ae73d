"""The registry file `{"tenants": [...], "utms": [...]}`: read, check everything, and name every problem.

One record (a tenant or a UTM) is checked the same way whether it comes in a file (`registry load`)
or from the registry topics (the worker): its schema (`schemas/tenant.json`, `schemas/utm.json`, to
which the file's schema refers) and a real time for `registered_at`."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

import orjson

from pipeline.models import Registry, Tenant, Utm, parse_time
from pipeline.schema_problems import conforms, schema_problems

Kind = Literal["tenant", "utm"]
ID_FIELD: dict[Kind, str] = {"tenant": "tenant_id", "utm": "utm_id"}


class RegistryFileError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RegistryRecordError(RegistryFileError):
    """One record of a registry topic that may not be taken: its problems, by place."""


def registry_problems(data: Any) -> list[str]:
    """Every problem of a parsed registry file; empty when it may be loaded."""
    problems = schema_problems(data, "registry-file.json")
    if not isinstance(data, dict):
        return problems
    tenants = [t for t in data.get("tenants") or [] if isinstance(t, dict)]
    utms = [u for u in data.get("utms") or [] if isinstance(u, dict)]
    problems += [problem for utm in utms for problem in _time_problems(utm)]
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


def _time_problems(utm: dict[str, Any]) -> list[str]:
    """The schema's date-time pattern lets a few impossible times through (30 February); date formats are checked."""
    value = utm.get("registered_at")
    if isinstance(value, str):
        try:
            parse_time(value.upper())
        except ValueError:
            return [f"UTM {utm.get('utm_id')!r}: registered_at {value!r} is not a real time"]
    return []


def record_problems(kind: Kind, data: Any) -> list[str]:
    """Every problem of one tenant or UTM record, as `registry load` finds them in a file; empty when
    it may be taken."""
    document = f"{kind}.json"
    problems = [] if conforms(data, document) else schema_problems(data, document, whole="record")
    if kind == "utm" and isinstance(data, dict):
        problems += _time_problems(data)
    return problems


def _utm(data: dict[str, Any]) -> Utm:
    return Utm.from_record({**data, "registered_at": (data.get("registered_at") or "").upper() or None})


def registry_record(kind: Kind, key: bytes | None, value: bytes) -> Tenant | Utm:
    """The tenant or UTM a record of a registry topic carries (its key is the record's id), or
    RegistryRecordError naming every problem: not JSON, the schema, an impossible time, a key that is
    not the record's id."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RegistryRecordError([f"record: not JSON: {exc}"]) from None
    problems = record_problems(kind, data)
    name = key.decode(errors="replace") if key is not None else None
    if isinstance(data, dict) and isinstance(data.get(ID_FIELD[kind]), str) and data[ID_FIELD[kind]] != name:
        problems.append(f"record: key {name!r} is not its {ID_FIELD[kind]} {data[ID_FIELD[kind]]!r}")
    if problems:
        raise RegistryRecordError(problems)
    return Tenant.from_record(data) if kind == "tenant" else _utm(data)


def registry_from_data(data: Any) -> Registry:
    problems = registry_problems(data)
    if problems:
        raise RegistryFileError(problems)
    return Registry(
        tenants={t["tenant_id"]: Tenant.from_record(t) for t in data["tenants"]},
        utms={u["utm_id"]: _utm(u) for u in data["utms"]},
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
