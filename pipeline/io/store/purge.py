"""Remove every row of one tenant from every table (contract end: the customer's data is destroyed)."""
from __future__ import annotations

from pipeline.io.store.backends import Store
from pipeline.io.store.sqlfiles import query_sql

TENANT_TABLES = (
    "events", "alerts", "utm_status", "utm_last_seen", "mails", "detections_daily", "web_usage_daily", "threats_daily",
    "utm_status_changes", "threat_categories_daily", "portal_accounts", "utms", "tenants",
)


def tenant_utm_ids(store: Store, tenant_id: str) -> list[str]:
    """Every UTM the store has seen for the tenant (registry, status changes, events)."""
    return [row["utm_id"] for row in store.query(query_sql("purge_utm_ids"), {"tenant": tenant_id})]


def purge_tenant(store: Store, tenant_id: str, utm_ids: list[str] | None = None) -> dict[str, int]:
    """Delete the tenant's rows table by table (synchronous mutations); return rows deleted per table.

    `utms` also loses the removal rows of the tenant's UTMs, which carry no tenant id.
    """
    if not tenant_id:
        raise ValueError("empty tenant id")
    utm_ids = tenant_utm_ids(store, tenant_id) if utm_ids is None else utm_ids
    deleted: dict[str, int] = {}
    params = {"tenant": tenant_id}
    for table in TENANT_TABLES:
        deleted[table] = int(store.query(query_sql("purge_count").format(table=table), params)[0]["n"])
        if deleted[table]:
            store.execute(query_sql("purge_delete").format(table=table), params)
    if utm_ids:
        store.execute(query_sql("purge_utm_tombstones"), {"utm_ids": tuple(utm_ids)})
    return deleted
