"""What the portal reads: the portal_* views through sql/queries/portal_page_*.sql, always bound
to one tenant. There is no way to build a `TenantData` without a tenant, and every query names it."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.models import THREAT_TYPES
from pipeline.io.store.backends import Store, quote
from pipeline.io.store.sqlfiles import query_sql
from pipeline.io.store.views import typed_rows

RETENTION_DAYS = 90
PAGE_SIZE = 50
ACTIONS = ("blocked", "disarmed", "detected", "allowed")
BLOCKING = ("blocked", "disarmed")



@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def period_of(from_text: str | None, to_text: str | None, today: date, default_days: int = 30) -> Period:
    """The period asked for, inside the 90 days kept; a bad or missing day takes the default."""
    oldest = today - timedelta(days=RETENTION_DAYS - 1)

    def parse(text: str | None, fallback: date) -> date:
        try:
            return date.fromisoformat(text) if text else fallback
        except ValueError:
            return fallback

    last = min(max(parse(to_text, today), oldest), today)
    first = min(max(parse(from_text, last - timedelta(days=default_days - 1)), oldest), last)
    return Period(first, last)


def report_id(tenant_id: str, month: str) -> str:
    """The id in a report's URL: from tenant and month, so another tenant's report id is unknown here."""
    return hashlib.blake2b(f"report|{tenant_id}|{month}".encode(), digest_size=10).hexdigest()


TENANT_SETTING = "SQL_mimamori_tenant"
"""The setting the row policies of sql/roles/0001_roles.sql bind a portal_reader to one tenant by."""


class BoundStore:
    """A store whose every query carries `SETTINGS SQL_mimamori_tenant = <tenant>`: on a server
    with the roles file applied, the database itself gives the portal user that tenant's rows only
    (the portal serves every customer, so it names the tenant per query rather than per user)."""

    def __init__(self, store: Store, tenant_id: str) -> None:
        self.store = store
        self.url = store.url
        self.suffix = f" SETTINGS {TENANT_SETTING} = {quote(tenant_id)}"

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.store.query(sql.rstrip().rstrip(";") + self.suffix, params)


def binds_tenant(store: Store) -> bool:
    """Whether the store is a server that knows the roles' custom setting (24.10 or later: the
    version the roles file needs); the embedded engine and old servers have no row policies."""
    version = getattr(store, "version", None)
    try:
        return callable(version) and tuple(version()) >= (24, 10)
    except Exception:  # noqa: BLE001 - a server that cannot say its version binds nothing more
        return False


class TenantData:
    def __init__(self, store: Store, tenant_id: str, tz: ZoneInfo, *, bind: bool = False) -> None:
        if not tenant_id:
            raise ValueError("the portal reads one tenant's rows: a tenant id is required")
        self.store: Any = BoundStore(store, tenant_id) if bind else store
        self.tenant_id = tenant_id
        self.tz = tz

    def _q(self, name: str, **params: Any) -> list[dict[str, Any]]:
        return typed_rows(self.store.query(query_sql(name), {"tenant": self.tenant_id, "tz": self.tz.key, **params}))

    def _span(self, period: Period) -> dict[str, Any]:
        return {"from": period.first, "to": period.last}

    # -- summary ---------------------------------------------------------------------------------

    def detection_totals(self, period: Period) -> dict[str, dict[str, int]]:
        totals = {t: {a: 0 for a in ACTIONS} for t in THREAT_TYPES}
        for row in self._q("portal_page_detection_totals", **self._span(period)):
            if row["type"] in totals:
                totals[row["type"]][row["action"]] = totals[row["type"]].get(row["action"], 0) + int(row["detections"])
        return totals

    def alert_counts(self, period: Period) -> dict[int, dict[str, int]]:
        counts: dict[int, dict[str, int]] = {g: defaultdict(int) for g in (3, 2, 1, 0)}
        for row in self._q("portal_page_alert_counts", **self._span(period)):
            counts.setdefault(int(row["grade"]), defaultdict(int))[row["status"]] += int(row["alerts"])
        return counts

    def alerts(self, period: Period, min_grade: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("portal_page_alerts", min_grade=min_grade, limit=limit, **self._span(period))

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        rows = self._q("portal_page_alert", alert=alert_id)
        return rows[0] if rows else None

    # -- detections ------------------------------------------------------------------------------

    def detections(self, period: Period, now: datetime, *, type_: str = "", action: str = "", utm: str = "",
                   alert: str = "", page: int = 1, size: int = PAGE_SIZE, since: datetime | None = None,
                   until: datetime | None = None) -> tuple[list[dict[str, Any]], int]:
        """One page of detections, newest first, and how many there are. `since`/`until` narrow the
        time (an alert's evidence: its UTM between its first and last event, read by primary key)."""
        oldest = now - timedelta(days=RETENTION_DAYS)
        params = {"since": max(since, oldest) if since else oldest, "until": until or now + timedelta(days=1),
                  "type": type_, "action": action, "utm": utm, "alert": alert, **self._span(period)}
        offset = max(0, page - 1) * size
        if alert:
            total = int(self._q("portal_page_detections_count", **params)[0]["n"])
            return self._q("portal_page_detections", limit=size, offset=offset, **params), total
        # The daily counts say how many there are and which days hold the page, so only those days
        # of events are read and sorted (the events are ordered by tenant, UTM and time, not time).
        days = [(row["day"], int(row["n"])) for row in self._q("portal_page_detection_days", **params)]
        total = sum(n for _, n in days)
        skipped, taken, window_days = 0, 0, []  # rows of days newer than the page; days holding it
        for day, n in days:  # newest first
            if not window_days and skipped + n <= offset:
                skipped += n
                continue
            window_days.append(day)
            taken += n
            if skipped + taken >= offset + size:
                break
        if not window_days:
            return [], total
        begin = datetime.combine(window_days[-1], time.min, self.tz).astimezone(timezone.utc)
        end = datetime.combine(window_days[0] + timedelta(days=1), time.min, self.tz).astimezone(timezone.utc)
        window = {**params, "from": window_days[-1], "to": window_days[0], "since": max(params["since"], begin),
                  "until": min(params["until"], end)}  # bounds on ts: the parts of other days are skipped
        return self._q("portal_page_detections", limit=size, offset=offset - skipped, **window), total

    # -- UTMs ------------------------------------------------------------------------------------

    def utms(self) -> list[dict[str, Any]]:
        return self._q("portal_page_utms")

    def utm_changes(self, utm_id: str) -> list[dict[str, Any]]:
        return self._q("portal_page_utm_changes", utm=utm_id)

    def per_utm(self, period: Period, utm: str = "") -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = defaultdict(lambda: {t: 0 for t in THREAT_TYPES})
        for row in self._q("portal_page_detections_per_utm", utm=utm, **self._span(period)):
            if row["type"] in THREAT_TYPES:
                found[row["utm_id"]][row["type"]] += int(row["detections"])
        return found

    # -- comparison ------------------------------------------------------------------------------

    def per_day(self, period: Period) -> dict[date, dict[str, int]]:
        days = {d: {t: 0 for t in THREAT_TYPES} for d in period.days}
        for row in self._q("portal_page_detections_per_day", **self._span(period)):
            if row["day"] in days and row["type"] in THREAT_TYPES:
                days[row["day"]][row["type"]] += int(row["detections"])
        return days

    def peers_per_day(self, period: Period) -> dict[date, dict[str, float]]:
        """Only the days the view gives an average for (none for a day with fewer than 5 tenants)."""
        days: dict[date, dict[str, float]] = {}
        for row in typed_rows(self.store.query(query_sql("portal_page_peer_per_day"), self._span(period))):
            if row["type"] in THREAT_TYPES:
                days.setdefault(row["day"], {t: 0.0 for t in THREAT_TYPES})[row["type"]] = float(row["avg_detections"])
        return days

    # -- records, notices ------------------------------------------------------------------------

    def usage(self, period: Period) -> list[dict[str, Any]]:
        return self._q("portal_page_usage", **self._span(period))

    def notices(self) -> list[dict[str, Any]]:
        return self._q("portal_page_notices")
