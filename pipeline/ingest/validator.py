"""`EventValidator`: the front door. Every value ends as an accepted record or a `Rejection` naming why."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from pipeline.bounds import bounded_detail, kept_original
from pipeline.ingest.normalize import (
    build_event, build_heartbeat, event_from_struct, heartbeat_from_struct, normalized_addresses, struct_addresses,
)
from pipeline.ingest.typed import decode_event, decode_heartbeat
from pipeline.ingest.wire import (
    EVENT_SCHEMA, HEARTBEAT_SCHEMA, MAX_AHEAD, RETENTION, Refusal, check_schema, check_time, parse_object,
    parse_wire_time,
)
from pipeline.models import Event, Heartbeat, Registry, Rejection

EVENTS_TOPIC = "utm.events"
HEARTBEATS_TOPIC = "utm.heartbeats"
_IGNORED = object()


class EventValidator:
    """Checks raw values against the contract and the registry, which the caller keeps up to date in place."""

    def __init__(self, registry: Registry, *, retention: timedelta = RETENTION, max_ahead: timedelta = MAX_AHEAD,
                 typed: bool = True) -> None:
        """`typed=False` leaves out the typed decoder (pipeline.ingest.typed): every record then goes
        the schema path alone, as the tests' reference does."""
        self.registry = registry
        self.typed = typed
        self.retention = retention
        self.max_ahead = max_ahead

    def check_event(self, value: bytes, now: datetime, *, topic: str = EVENTS_TOPIC,
                    partition: int | None = None, offset: int | None = None) -> Event | Rejection:
        outcome = self._guarded(self._event, value, None, now)
        return self._finish(outcome, value, now, topic, partition, offset)  # type: ignore[return-value]

    def check_heartbeat(self, value: bytes, now: datetime, *, topic: str = HEARTBEATS_TOPIC,
                        partition: int | None = None, offset: int | None = None) -> Heartbeat | Rejection | None:
        outcome = self._guarded(self._heartbeat, value, None, now)
        return self._finish(outcome, value, now, topic, partition, offset)

    def check_record(self, value: bytes, now: datetime, *, topic: str | None = None, partition: int | None = None,
                     offset: int | None = None) -> Event | Heartbeat | Rejection | None:
        """For replay files: an object with a `type` key is an event, anything else is checked as a heartbeat."""
        data = parse_object(value)
        if isinstance(data, Refusal):
            return self._finish(data, value, now, topic or EVENTS_TOPIC, partition, offset)
        if "type" in data:
            outcome = self._guarded(self._event, value, data, now)
            return self._finish(outcome, value, now, topic or EVENTS_TOPIC, partition, offset)
        outcome = self._guarded(self._heartbeat, value, data, now)
        return self._finish(outcome, value, now, topic or HEARTBEATS_TOPIC, partition, offset)

    def _guarded(self, check: Any, value: bytes, data: dict[str, Any] | None, now: datetime) -> Any:
        try:
            return check(value, data, now)
        except Exception as exc:  # noqa: BLE001 - no input may stop the pipeline; the reason stays visible
            return Refusal("schema", f"internal error while checking: {type(exc).__name__}: {exc}")

    def _event(self, value: bytes, data: dict[str, Any] | None, now: datetime) -> Event | Refusal:
        if data is None and self.typed:
            fast = self._typed_event(value, now)
            if fast is not None:
                return fast
        data = parse_object(value) if data is None else data
        if isinstance(data, Refusal):
            return data
        checked = _checked_event(data, now, self.retention, self.max_ahead)
        if isinstance(checked, Refusal):
            return checked
        addresses, ts = checked
        tenant_id = self._tenant_of(data["utm_id"])
        if isinstance(tenant_id, Refusal):
            return tenant_id
        return build_event(data, addresses, ts, tenant_id, now)

    def _typed_event(self, value: bytes, now: datetime) -> Event | Refusal | None:
        """The fast path: decoded and schema-checked in one pass (pipeline.ingest.typed), then the
        same time and registry checks. None: the schema path judges it and names the reason."""
        decoded = decode_event(value)
        if decoded is None:
            return None
        raw, data = decoded
        addresses = struct_addresses(raw)
        if addresses is None:
            return None
        ts = parse_wire_time(raw.ts)
        refusal = check_time(ts, now, self.retention, self.max_ahead)
        if refusal:
            return refusal
        tenant_id = self._tenant_of(raw.utm_id)
        if isinstance(tenant_id, Refusal):
            return tenant_id
        return event_from_struct(raw, data, addresses, ts, tenant_id, now)  # type: ignore[arg-type]

    def _typed_heartbeat(self, value: bytes, now: datetime) -> Heartbeat | Refusal | object | None:
        decoded = decode_heartbeat(value)
        if decoded is None:
            return None
        raw = decoded[0]
        ts = parse_wire_time(raw.ts)
        refusal = check_time(ts, now, self.retention, self.max_ahead)
        if refusal:
            return refusal
        tenant_id = self._tenant_of(raw.utm_id)
        if isinstance(tenant_id, Refusal):
            return _IGNORED if tenant_id.reason != "unregistered_utm" else tenant_id
        return heartbeat_from_struct(raw, ts)  # type: ignore[arg-type]

    def _heartbeat(self, value: bytes, data: dict[str, Any] | None, now: datetime) -> Heartbeat | Refusal | object:
        if data is None and self.typed:
            fast = self._typed_heartbeat(value, now)
            if fast is not None:
                return fast
        data = parse_object(value) if data is None else data
        if isinstance(data, Refusal):
            return data
        ts = _checked_heartbeat(data, now, self.retention, self.max_ahead)
        if isinstance(ts, Refusal):
            return ts
        tenant_id = self._tenant_of(data["utm_id"])
        if isinstance(tenant_id, Refusal):
            return _IGNORED if tenant_id.reason != "unregistered_utm" else tenant_id
        return build_heartbeat(data, ts)

    def registry_refusal(self, utm_id: str) -> Refusal | None:
        """Why the registry refuses this UTM's records (unregistered, inactive tenant or UTM), or None."""
        outcome = self._tenant_of(utm_id)
        return outcome if isinstance(outcome, Refusal) else None

    def _tenant_of(self, utm_id: str) -> str | Refusal:
        utm = self.registry.utms.get(utm_id)
        if utm is None:
            return Refusal("unregistered_utm", f"utm_id: {utm_id!r} is not in the registry")
        tenant = self.registry.tenants.get(utm.tenant_id)
        if tenant is None:
            return Refusal("inactive_tenant", f"tenant {utm.tenant_id!r} of UTM {utm_id!r} is not in the registry")
        if not tenant.active:
            return Refusal("inactive_tenant", f"tenant {tenant.tenant_id!r} of UTM {utm_id!r} is inactive")
        if not utm.active:
            return Refusal("inactive_utm", f"UTM {utm_id!r} is inactive")
        return tenant.tenant_id

    def _finish(self, outcome: Any, value: bytes, now: datetime, topic: str, partition: int | None,
                offset: int | None) -> Event | Heartbeat | Rejection | None:
        if outcome is _IGNORED:
            return None
        if isinstance(outcome, Refusal):
            return rejection(outcome, value, now, topic, partition, offset)
        return outcome  # type: ignore[no-any-return]


def _checked_event(data: dict[str, Any], now: datetime, retention: timedelta,
                   max_ahead: timedelta) -> tuple[dict[str, str | None], datetime] | Refusal:
    refusal = check_schema(data, EVENT_SCHEMA)
    if refusal:
        return refusal
    addresses = normalized_addresses(data)
    if isinstance(addresses, Refusal):
        return addresses
    ts = parse_wire_time(data["ts"])
    refusal = check_time(ts, now, retention, max_ahead)
    return refusal or (addresses, ts)  # type: ignore[return-value]


def _checked_heartbeat(data: dict[str, Any], now: datetime, retention: timedelta,
                       max_ahead: timedelta) -> datetime | Refusal:
    refusal = check_schema(data, HEARTBEAT_SCHEMA)
    if refusal:
        return refusal
    ts = parse_wire_time(data["ts"])
    return check_time(ts, now, retention, max_ahead) or ts  # type: ignore[return-value]


def wire_refusal(value: bytes, now: datetime, *, heartbeat: bool | None = False, retention: timedelta = RETENTION,
                 max_ahead: timedelta = MAX_AHEAD) -> Refusal | None:
    """The registry-free checks (size, JSON, schema, time), as a producer runs them before sending.

    `heartbeat=None` decides per value, as replay does: an object with a `type` key is an event.
    """
    outcome = wire_checked(value, now, heartbeat=heartbeat, retention=retention, max_ahead=max_ahead)
    return outcome if isinstance(outcome, Refusal) else None


def wire_checked(value: bytes, now: datetime, *, heartbeat: bool | None = False, retention: timedelta = RETENTION,
                 max_ahead: timedelta = MAX_AHEAD) -> dict[str, Any] | Refusal:
    """`wire_refusal`, giving the parsed record when it passes (the HTTPS gateway reads its `utm_id`)."""
    try:
        data = parse_object(value)
        if isinstance(data, Refusal):
            return data
        as_heartbeat = ("type" not in data) if heartbeat is None else heartbeat
        check = _checked_heartbeat if as_heartbeat else _checked_event
        outcome = check(data, now, retention, max_ahead)
    except Exception as exc:  # noqa: BLE001 - same guard as EventValidator
        return Refusal("schema", f"internal error while checking: {type(exc).__name__}: {exc}")
    return outcome if isinstance(outcome, Refusal) else data


def rejection(refusal: Refusal, value: bytes, now: datetime, topic: str, partition: int | None = None,
              offset: int | None = None) -> Rejection:
    return rejected(refusal.reason, refusal.detail, value, now, topic, partition, offset)


def rejected(reason: str, detail: str, value: bytes, now: datetime, topic: str, partition: int | None = None,
             offset: int | None = None) -> Rejection:
    """Every rejection record is built here: whatever the input, it stays far below the rejection
    topic's message limit (at most 64 KiB of the original, with its size and SHA-256)."""
    return Rejection(reason=reason, detail=bounded_detail(detail), topic=topic, partition=partition, offset=offset,
                     received_at=now, **kept_original(value))


def original_value(value: bytes) -> tuple[str | None, str | None]:
    """(`value`, `value_base64`) of a rejection: the text when it is valid UTF-8, else base64."""
    try:
        return value.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(value).decode("ascii")
