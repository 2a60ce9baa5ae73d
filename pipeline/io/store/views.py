"""The contract's views and how `mimamori query` reads them (sql/queries/view_<name>.sql)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from pipeline.io.store.backends import Store
from pipeline.io.store.sqlfiles import query_sql

VIEWS = (
    "portal_detections_daily", "portal_alerts", "portal_utm_status",
    "portal_peer_average_daily", "portal_web_usage_daily", "analyst_threats_daily", "portal_notices",
    "portal_utm_status_changes", "portal_threat_categories_daily", "portal_detections",
)
TENANT_VIEWS = frozenset(v for v in VIEWS if v not in ("portal_peer_average_daily", "analyst_threats_daily"))
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2149, 6, 6)


class TenantRequired(ValueError):
    """A tenant view was asked for without a tenant (or with an empty one): never every tenant."""


def read_view(store: Store, view: str, *, tz: str, tenant: str | None = None, every_tenant: bool = False,
              from_day: date | None = None, to_day: date | None = None) -> list[dict[str, Any]]:
    """Rows of one view, days from..to inclusive (days in `tz`). A tenant view gives one tenant's
    rows; every tenant's only when the caller says so with `every_tenant` (operators' tools, never
    the portal). An empty tenant id is refused: it must never read as "no filter"."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; one of {', '.join(VIEWS)}")
    if view not in TENANT_VIEWS:
        if tenant is not None:
            raise ValueError(f"{view} has no tenant column")
    elif tenant is not None and not tenant.strip():
        raise TenantRequired(f"{view}: empty or blank tenant id {tenant!r}; give a tenant id")
    elif tenant is None and not every_tenant:
        raise TenantRequired(f"{view} is read one tenant at a time: give a tenant id")
    params = {"tenant": tenant or "", "every_tenant": int(tenant is None and every_tenant),
              "from": from_day or FIRST_DAY, "to": to_day or LAST_DAY, "tz": tz}
    return store.query(query_sql(f"view_{view}"), params)


TIME_COLUMNS = ("first_seen", "last_seen", "at", "offline_since", "ts", "starts_at", "ends_at", "published_at")
DAY_COLUMNS = ("day", "insurance_eligible_until", "service_start", "contract_end")


def typed_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Times (UTC-aware) and days as Python values, in place: the embedded engine gives text, a
    server typed values (naive in UTC)."""
    for row in rows:
        for name in TIME_COLUMNS:
            value = row.get(name)
            if isinstance(value, str):
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                row[name] = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
            elif isinstance(value, datetime) and value.tzinfo is None:
                row[name] = value.replace(tzinfo=timezone.utc)
        for name in DAY_COLUMNS:
            if isinstance(row.get(name), str):
                row[name] = date.fromisoformat(row[name])
    return rows
