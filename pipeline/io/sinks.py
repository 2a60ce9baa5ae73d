"""What the pipeline's outputs become in the store: rows per table, inserted in idempotent batches."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from pipeline.models import Mail, Registry, parse_time
from pipeline.io.store.backends import Store
from pipeline.io.store.sqlfiles import query_sql
from pipeline.rows import mail_row, tenant_row, utm_row


def unstored_events(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The event rows not yet in the store (by utm_id and event_id)."""
    if not rows:
        return rows
    keys = [f"{row['utm_id']}\x1f{row['event_id']}" for row in rows]
    times = [ts if isinstance(ts := row["ts"], datetime) else parse_time(ts) for row in rows]  # typed or from JSON
    found = store.query(query_sql("events_stored"), {
        "from": min(times) - timedelta(seconds=1), "to": max(times) + timedelta(seconds=1),
        "utms": sorted({row["utm_id"] for row in rows}),
    })
    stored = {item["stored"] for item in found}
    return [row for row, key in zip(rows, keys) if key not in stored]


def registry_rows(registry: Registry, now: datetime) -> dict[str, list[dict[str, Any]]]:
    return {
        "tenants": [tenant_row(t, now) for t in registry.tenants.values()],
        "utms": [utm_row(u, now) for u in registry.utms.values()],
    }


def mail_rows(mails: Iterable[Mail], delivered_at: datetime) -> dict[str, list[dict[str, Any]]]:
    return {"mails": [mail_row(m, delivered_at) for m in mails]}
