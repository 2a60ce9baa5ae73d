"""The registry-free checks of one wire record, in the contract's order: size, JSON, schema, time.

Each check returns the parsed value or a `Refusal`; none raises on any input.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import orjson
from fastjsonschema import JsonSchemaValueException

from pipeline.bounds import nesting_problem
from pipeline.config import format_duration
from pipeline.ingest.schemas import compiled_validator

MAX_RECORD_BYTES = 64 * 1024
RETENTION = timedelta(days=90)
MAX_AHEAD = timedelta(days=1)
EVENT_SCHEMA = "event.v1.json"
HEARTBEAT_SCHEMA = "heartbeat.v1.json"

_NOT_HEX = re.compile(r"[^0-9a-f]")


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    detail: str


def parse_object(value: bytes) -> dict[str, Any] | Refusal:
    if len(value) > MAX_RECORD_BYTES:
        return Refusal("too_large", f"record is {len(value)} bytes, the limit is {MAX_RECORD_BYTES}")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Refusal("invalid_json", str(exc))
    if not isinstance(data, dict):
        return Refusal("invalid_json", f"expected a JSON object, got {type(data).__name__}")
    problem = nesting_problem(data, value)
    if problem:  # the first schema check: nothing could write such a record again (pipeline.bounds)
        return Refusal("schema", problem)
    return data


def check_schema(data: dict[str, Any], schema: str) -> Refusal | None:
    try:
        compiled_validator(schema)(data)
    except JsonSchemaValueException as exc:
        return Refusal("schema", _schema_detail(data, schema, exc))
    return None


def _schema_detail(data: dict[str, Any], schema: str, exc: JsonSchemaValueException) -> str:
    if exc.rule == "required" and exc.name == "data":
        missing = [name for name in exc.rule_definition if name not in data]
        return f"missing field: {', '.join(missing)}"
    field = exc.name.removeprefix("data.") if exc.name != "data" else "record"
    message = exc.message.removeprefix(exc.name).strip()
    if field == "ts" and exc.rule == "pattern":
        message = "must be an RFC 3339 time with offset, such as 2026-11-20T09:00:00+09:00"
    return f"{field}: {message}"


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_V4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
"""An IPv4 address written as its own compressed form (no leading zeros): most addresses are."""


def canonical_ip(text: str) -> str | None:
    """The compressed form, or None when not an IPv4/IPv6 address (zone ids are refused, as in JSON Schema).

    Destinations vary a lot, so most addresses miss any cache, and `ipaddress` took ~5 us for an
    IPv4 address, 20-40 us for an IPv6 one. An IPv4 address already in compressed form is its own
    answer (one regular expression in C); an IPv6 address in hex groups only goes through the C
    library's inet_pton/inet_ntop, whose text is the same (RFC 5952) unless it writes dotted
    quads, which `ipaddress` does not: those, and whatever inet_pton refuses, go to `ipaddress`.
    tests/unit/test_canonical_ip.py holds both paths to `ipaddress`."""
    if _CANONICAL_V4.fullmatch(text):
        return text
    if ":" in text and "." not in text and "%" not in text:
        try:
            compressed = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
        except (OSError, ValueError):
            pass
        else:
            if "." not in compressed:
                return compressed
    return _parsed_ip(text)


@lru_cache(maxsize=65536)
def _parsed_ip(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if getattr(address, "scope_id", None):
        return None
    return address.compressed


@lru_cache(maxsize=65536)
def canonical_mac(text: str) -> str | None:
    """`aa:bb:cc:dd:ee:ff` from the colon, hyphen or dotted forms the schema admits."""
    digits = _NOT_HEX.sub("", text.lower())
    if len(digits) != 12:
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def parse_wire_time(text: str) -> datetime | None:
    """Aware UTC time of a schema-valid `ts`; None when it names no real instant (e.g. 30 February)."""
    try:
        value = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    return value.astimezone(timezone.utc)


def check_time(ts: datetime | None, now: datetime, retention: timedelta = RETENTION,
               max_ahead: timedelta = MAX_AHEAD) -> Refusal | None:
    if ts is None:
        return Refusal("bad_timestamp", "ts: not a real calendar time")
    if ts > now + max_ahead:
        return Refusal("bad_timestamp", f"ts: {_iso(ts)} is more than {format_duration(max_ahead)} ahead of the clock "
                                        f"({_iso(now)})")
    if ts < now - retention:
        return Refusal("bad_timestamp", f"ts: {_iso(ts)} is older than the retention ({format_duration(retention)})")
    return None


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
