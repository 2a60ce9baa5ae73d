"""One tenant's month, read from the portal views only (sql/queries/view_*.sql and report_*.sql)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.models import Tenant
from pipeline.report.render import RenderedReport, render_report
from pipeline.report.month import MonthData
from pipeline.report.schedule import Month, local_instant, service_days
from pipeline.report.summary import summarize
from pipeline.io.store.backends import Store
from pipeline.io.store.sqlfiles import query_sql
from pipeline.io.store.views import read_view, typed_rows





def gather_month(store: Store, tenant: Tenant, month: Month, tz: ZoneInfo, as_of: datetime) -> MonthData:
    today = as_of.astimezone(tz).date()
    days = tuple(d for d in service_days(tenant, month) if d <= today)   # a month to date ends today
    first, last = (days[0], days[-1]) if days else (month.first_day, month.last_day)
    start = local_instant(first, None, tz)
    end = min(local_instant(last + timedelta(days=1), None, tz), max(as_of, start))
    zone = str(tz)

    def view(name: str, **extra: Any) -> list[dict[str, Any]]:
        return typed_rows(read_view(store, name, tz=zone, from_day=first, to_day=last, **extra))

    tid = tenant.tenant_id
    before = store.query(query_sql("report_utm_status_before"), {"tenant": tid, "before": start})
    return MonthData(
        tenant=tenant, month=month, tz=tz, days=days, start=start, end=end, as_of=as_of,
        detections=view("portal_detections_daily", tenant=tid) if days else [],
        peers=view("portal_peer_average_daily") if days else [],
        alerts=[a for a in view("portal_alerts", tenant=tid)
                if first <= a["first_seen"].astimezone(tz).date() <= last] if days else [],
        utms=typed_rows(read_view(store, "portal_utm_status", tz=zone, tenant=tid)),
        status_before={row["utm_id"]: row["status"] for row in before},
        status_changes=[c for c in view("portal_utm_status_changes", tenant=tid) if start <= c["at"] < end],
        categories=view("portal_threat_categories_daily", tenant=tid) if days else [],
    )


def read_tenant(store: Store, tenant_id: str) -> Tenant | None:
    """The tenant as the store's registry mirror has it (for rendering outside a worker)."""
    rows = store.query(query_sql("report_tenant"), {"tenant": tenant_id})
    if not rows:
        return None
    row = typed_rows(rows)[0]
    return Tenant(
        tenant_id=row["tenant_id"], name=row["name"], notify_emails=tuple(row["notify_emails"]),
        admin_emails=tuple(row["admin_emails"] or ()), locale=row["locale"] or "ja", service_start=row["service_start"], contract_end=row["contract_end"],
        industry=row["industry"], region=row["region"], size_band=row["size_band"], active=bool(row["active"]),
    )


def build_report(store: Store, tenant: Tenant, month: Month, tz: ZoneInfo, now: datetime,
                 sender: str = "mimamori@localhost") -> RenderedReport:
    """Gather, summarize and render one tenant's month."""
    return render_report(summarize(gather_month(store, tenant, month, tz, now)), now, tz, sender)


def delivered_reports(store: Store, message_ids: dict[str, str], since: datetime) -> set[str]:
    """The tenants (of `message_ids`: tenant -> Message-ID) whose report the sender already
    recorded as delivered (the `mails` table), sent at or after `since`."""
    if not message_ids:
        return set()
    rows = store.query(query_sql("report_delivered"), {"since": since, "message_ids": sorted(message_ids.values())})
    return {row["tenant_id"] for row in rows} & set(message_ids)
