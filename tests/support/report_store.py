"""A hand-built store for the monthly report: four tenants over last month, every number known.

`ta` (ja): two UTMs, detections on several days, four alerts, two stops of UTM ua1 (6 h and 24 h).
`tb` (en): a quiet month: a few blocked phishing URLs, no alert, its UTM always online.
`tc` (ja): service from the 16th; its UTM first seen on the 16th at 09:00.
`td`: inactive (counts in no peer average, gets no report).
`te`, `tf`, `tg`: quiet peers in the registry mirror only (no report here): a peer average needs 5
tenants in service on a day (ta, tb and these three; tc from the 16th).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pipeline.models import Alert, Event, Tenant, Utm, UtmStatusChange
from pipeline.report.schedule import Month
from pipeline.io.store.backends import Store
from pipeline.io.store.migrate import apply_migrations
from pipeline.rows import alert_row, event_row, status_row, tenant_row, utm_row

TZ = ZoneInfo("Asia/Tokyo")
NOW = datetime.now(timezone.utc).replace(microsecond=0)
MONTH = Month.of(NOW.astimezone(TZ).date()).previous()
LONG_AGO = date(2024, 4, 1)


def day(n: int) -> date:
    return MONTH.first_day + timedelta(days=n - 1)


def local(n: int, hour: int, minute: int = 0) -> datetime:
    """Day `n` of the month at a local time, in UTC."""
    return datetime.combine(day(n), time(hour, minute), TZ).astimezone(timezone.utc)


TENANTS = {
    "ta": Tenant("ta", "株式会社あおば", ("it@aoba.example",), "ja", service_start=LONG_AGO,
                 industry="retail", region="kanto"),
    "tb": Tenant("tb", "Birch Ltd.", ("ops@birch.example", "cto@birch.example"), "en", service_start=LONG_AGO,
                 admin_emails=("admin@birch.example",)),
    "tc": Tenant("tc", "合同会社ちどり", ("admin@chidori.example",), "ja", service_start=day(16)),
    "td": Tenant("td", "Dormant KK", ("x@dormant.example",), "ja", service_start=LONG_AGO, active=False),
}
PEERS = [Tenant(t, f"Peer {t}", (f"it@{t}.example",), "ja", service_start=LONG_AGO) for t in ("te", "tf", "tg")]
UTMS = [Utm("ua1", "ta"), Utm("ua2", "ta"), Utm("ub1", "tb"), Utm("uc1", "tc"), Utm("ud1", "td")]


def _event(event_id: str, utm: str, ts: datetime, type_: str, action: str, category: str | None) -> Event:
    tenant = next(u.tenant_id for u in UTMS if u.utm_id == utm)
    return Event(event_id=event_id, utm_id=utm, tenant_id=tenant, ts=ts, type=type_, action=action,
                 direction="inbound", src_ip="203.0.113.9", dst_ip="192.0.2.10", received_at=ts,
                 threat_category=category)


def _events() -> list[Event]:
    found: list[Event] = []

    def add(utm: str, n: int, hour: int, type_: str, action: str, category: str | None, count: int) -> None:
        for k in range(count):
            found.append(_event(f"{utm}-{n}-{hour}-{type_}-{action}-{k}", utm, local(n, hour, k % 60), type_,
                                action, category))

    add("ua1", 3, 10, "av", "blocked", "malware", 5)
    add("ua1", 3, 11, "ips", "blocked", "scan", 3)
    add("ua2", 3, 12, "url", "blocked", "phishing", 2)
    add("ua1", 10, 9, "av", "detected", "malware", 1)       # the ★★★
    add("ua2", 12, 14, "ips", "blocked", "exploit", 4)
    add("ua1", 20, 23, "url", "blocked", "malware", 2)
    add("ua1", 1, 0, "av", "disarmed", "pua", 1)            # 00:00 local on the 1st: still this month
    add("ub1", 7, 15, "url", "blocked", "phishing", 3)
    add("uc1", 18, 10, "av", "blocked", "ransomware", 2)
    add("ud1", 5, 10, "av", "blocked", "malware", 9)        # inactive tenant
    found.append(_event("ua1-before", "ua1", local(1, 0) - timedelta(minutes=1), "av", "blocked", "malware"))
    return found


def _alert(alert_id: str, tenant: str, utm: str, grade: int, status: str, first: datetime,
           insured: date | None = None, title: str = "マルウェア感染の疑い") -> Alert:
    return Alert(alert_id, tenant, utm, "192.0.2.10", None, grade, "r", title, first, first + timedelta(minutes=5),
                 3, ("malware",), "scan", status, insured, version=1, updated_at=first)


ALERTS = [
    _alert("a-sev", "ta", "ua1", 3, "open", local(10, 9), insured=day(10) + timedelta(days=30)),
    _alert("a-sev2", "ta", "ua2", 3, "open", local(25, 9), insured=None, title="C2通信"),
    _alert("a-low", "ta", "ua1", 1, "closed", local(3, 10)),
    _alert("a-inv", "ta", "ua2", 0, "investigating", local(12, 14)),
    _alert("a-old", "ta", "ua1", 2, "open", local(1, 0) - timedelta(days=3)),   # last month: not in this report
]

STATUS = [
    UtmStatusChange("ua1", "ta", "online", local(1, 0) - timedelta(days=40), None, None),
    UtmStatusChange("ua2", "ta", "online", local(1, 0) - timedelta(days=40), None, None),
    UtmStatusChange("ub1", "tb", "online", local(1, 0) - timedelta(days=40), None, None),
    UtmStatusChange("ua1", "ta", "offline", local(5, 10), local(5, 9, 50), local(5, 10)),
    UtmStatusChange("ua1", "ta", "online", local(5, 16), local(5, 16), None),
    UtmStatusChange("ua1", "ta", "offline", local(20, 0), local(19, 23, 50), local(20, 0)),
    UtmStatusChange("ua1", "ta", "online", local(21, 0), local(21, 0), None),
    UtmStatusChange("uc1", "tc", "online", local(16, 9), local(16, 9), None),
]


def build_report_store(store: Store) -> None:
    apply_migrations(store, str(TZ), NOW)
    store.insert("tenants", [tenant_row(t, NOW) for t in [*TENANTS.values(), *PEERS]])
    store.insert("utms", [utm_row(u, NOW) for u in UTMS])
    events = _events()
    half = len(events) // 2
    store.insert("events", [event_row(e, 1, None) for e in events[:half]])
    store.insert("events", [event_row(e, 1, None) for e in events[half:]])
    store.insert("alerts", [alert_row(a) for a in ALERTS])
    store.insert("utm_status", [status_row(s) for s in STATUS[:4]])
    store.insert("utm_status", [status_row(s) for s in STATUS[4:]])
