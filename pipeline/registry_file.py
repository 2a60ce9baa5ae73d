"""The registry file `{"tenants": [...], "utms": [...]}`: read, check everything, and name every problem."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from pipeline.models import Registry, Tenant, Utm, parse_time
from pipeline.schema_problems import schema_problems


class RegistryFileError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def registry_problems(data: Any) -> list[str]:
    """Every problem of a parsed registry file; empty when it may be loaded."""
    problems = schema_problems(data, "registry-file.json")
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
