"""Models -> rows of the store's tables (JSON-ready dicts with `ROW_JSON`, times in RFC 3339 UTC)."""
from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

import msgspec
import orjson

from pipeline.bounds import json_bytes, json_text
from pipeline.models import Alert, Event, Mail, Tenant, Utm, UtmStatusChange, iso
from pipeline.notices.model import ServiceNotice

NO_SIGNAL = -1


ROW_JSON = orjson.OPT_UTC_Z
"""How rows become JSON (the store-rows topic, the embedded store's insert, batch tokens): a
datetime in UTC is written as `models.iso` writes it, by orjson in C."""


def row_json(row: dict[str, Any]) -> bytes:
    """A row's JSON text (`ROW_JSON`) in bytes of its own size (`json_bytes`)."""
    return json_bytes(row, ROW_JSON)

_EVENT_FIELDS = tuple(f.name for f in fields(Event) if f.name != "extra")
_event_values = attrgetter(*_EVENT_FIELDS)

EventRow = msgspec.defstruct("EventRow", [(name, Any) for name in (*_EVENT_FIELDS, "extra", "signal", "alert_id")],
                             gc=False, module=__name__)
"""The events table's row as a struct, field for field what `event_row` gives: encoded by msgspec in
one C call from the typed event's values (datetimes in UTC as RFC 3339, exactly as `ROW_JSON`)."""
_ROW_ENCODER = msgspec.json.Encoder()


def event_row(event: Event, signal: int | None, alert_id: str | None) -> dict[str, Any]:
    """`signal` None for an event that gives none (records, `none` rows of the policy).

    The row holds the event's typed values: `ts` and `received_at` stay datetimes in UTC, which
    the store's clients take as they are and JSON (`ROW_JSON`) writes as RFC 3339 in C; no ISO
    string is built per field in Python."""
    row = dict(zip(_EVENT_FIELDS, _event_values(event)))
    if event.ts.tzinfo is not timezone.utc:
        row["ts"] = event.ts.astimezone(timezone.utc)
    if event.received_at.tzinfo is not timezone.utc:
        row["received_at"] = event.received_at.astimezone(timezone.utc)
    row["extra"] = json_text(event.extra, orjson.OPT_SORT_KEYS) if event.extra else "{}"  # never raises
    row["signal"] = NO_SIGNAL if signal is None else signal
    row["alert_id"] = alert_id or ""
    return row


def event_row_json(event: Event, signal: int, alert_id: str | None) -> bytes:
    """`event_row` as JSON text (what `orjson.dumps(event_row(...), option=ROW_JSON)` gives, byte for
    byte), without the dict: the event's values go into an `EventRow` and msgspec writes it.
    `signal` -1 (NO_SIGNAL) for an event that gives none. 1-2 us a row where the dict and orjson
    took 5-10 in the worker."""
    ts, received_at = event.ts, event.received_at
    if ts.tzinfo is not timezone.utc or received_at.tzinfo is not timezone.utc:
        return orjson.dumps(event_row(event, None if signal < 0 else signal, alert_id), option=ROW_JSON)
    extra = json_text(event.extra, orjson.OPT_SORT_KEYS) if event.extra else "{}"
    try:
        return _ROW_ENCODER.encode(EventRow(*_event_values(event), extra, signal, alert_id or ""))
    except (TypeError, ValueError, msgspec.EncodeError):  # what orjson refuses too (a lone surrogate): its own error
        return orjson.dumps(event_row(event, None if signal < 0 else signal, alert_id), option=ROW_JSON)


def alert_row(alert: Alert) -> dict[str, Any]:
    row = alert.to_record()
    row["updated_at"] = row["updated_at"] or row["last_seen"]
    row["evidence"] = json_text(alert.evidence, orjson.OPT_SORT_KEYS)
    return row


def status_row(change: UtmStatusChange) -> dict[str, Any]:
    return change.to_record()


def mail_row(mail: Mail, delivered_at: datetime) -> dict[str, Any]:
    row = mail.to_record()
    del row["raw"]
    row["delivered_at"] = iso(delivered_at)
    return row


def _registry_row(record: Tenant | Utm, updated_at: datetime) -> dict[str, Any]:
    row = record.to_record()
    row["active"] = int(record.active)
    row["updated_at"] = iso(updated_at)
    row["deleted"] = 0
    return row


def tenant_row(tenant: Tenant, updated_at: datetime) -> dict[str, Any]:
    return _registry_row(tenant, updated_at)


def tenant_removed_row(tenant_id: str, updated_at: datetime) -> dict[str, Any]:
    """A null record on `registry.tenants`: the latest row says the tenant is gone."""
    return {"tenant_id": tenant_id, "name": "", "notify_emails": [], "locale": "ja", "active": 0,
            "updated_at": iso(updated_at), "deleted": 1}


def utm_row(utm: Utm, updated_at: datetime) -> dict[str, Any]:
    return _registry_row(utm, updated_at)


def notice_row(notice: ServiceNotice, updated_at: datetime) -> dict[str, Any]:
    audience = notice.audience
    return {
        "notice_id": notice.notice_id, "version": notice.version, "kind": notice.kind, "level": notice.level,
        "starts_at": iso(notice.starts_at), "ends_at": iso(notice.ends_at), "audience_all": int(audience.all),
        "audience_tenants": list(audience.tenants), "audience_models": list(audience.models),
        "audience_firmware": list(audience.firmware), "title": notice.title["ja"],
        "title_en": notice.title.get("en", ""), "mailed": int(notice.mailed), "cancelled": int(notice.cancelled),
        "short_notice": int(notice.short_notice), "published_at": iso(notice.published_at),
        "updated_at": iso(updated_at), "deleted": 0,
    }


def notice_removed_row(notice_id: str, updated_at: datetime) -> dict[str, Any]:
    """A null record on `service.notices`: the notice is gone from the portal."""
    return {"notice_id": notice_id, "version": 0, "kind": "", "title": "", "updated_at": iso(updated_at), "deleted": 1}


def utm_removed_row(utm_id: str, updated_at: datetime) -> dict[str, Any]:
    return {"utm_id": utm_id, "tenant_id": "", "active": 0, "updated_at": iso(updated_at), "deleted": 1}
