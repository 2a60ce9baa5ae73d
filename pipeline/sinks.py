"""What the pipeline's outputs become in the store: rows per table, inserted in idempotent batches."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

from pipeline.engine import Outputs
from pipeline.models import Mail, Registry, parse_time
from pipeline.store.backends import Store
from pipeline.store.sqlfiles import query_sql
from pipeline.store.rows import alert_row, event_row, mail_row, status_row, tenant_row, utm_row


def output_rows(out: Outputs) -> dict[str, list[dict[str, Any]]]:
    """Rows of one step's outputs, by table. Only significant alert changes and the last version
    of each alert in the step are kept: count-only updates are coalesced."""
    latest: dict[str, Any] = {}
    for change in out.alert_changes:
        latest[change.alert.alert_id] = change.alert
    return {
        "events": [event_row(s.event, None if s.signal < 0 else s.signal, s.alert_id) for s in out.events],
        "alerts": [alert_row(alert) for alert in latest.values()],
        "utm_status": [status_row(change) for change in out.status_changes],
    }


def unstored_events(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The event rows not yet in the store (by utm_id and event_id)."""
    if not rows:
        return rows
    keys = [f"{row['utm_id']}\x1f{row['event_id']}" for row in rows]
    times = [parse_time(row["ts"]) for row in rows]
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
