"""What the pipeline's outputs become in the store: rows per table, inserted in idempotent batches."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from pipeline.engine import Outputs
from pipeline.models import Mail, Registry
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


def registry_rows(registry: Registry, now: datetime) -> dict[str, list[dict[str, Any]]]:
    return {
        "tenants": [tenant_row(t, now) for t in registry.tenants.values()],
        "utms": [utm_row(u, now) for u in registry.utms.values()],
    }


def mail_rows(mails: Iterable[Mail], delivered_at: datetime) -> dict[str, list[dict[str, Any]]]:
    return {"mails": [mail_row(m, delivered_at) for m in mails]}
