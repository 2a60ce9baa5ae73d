"""p95 per page of the customer portal for a tenant with 100 UTMs and 90 days of data (issue 23:
under 300 ms on this machine), the embedded store, the portal served by uvicorn in this process and
asked over HTTP one request at a time, as a customer's browser does.

    .venv/bin/python -m benchmarks.bench_portal [--utms 100] [--days 90] [--per-day 20] [--requests 30]

The store: the tenant's UTMs each with `--per-day` threat detections a day (av, ips, url; about a
third graded and in ~2,000 alerts), web/app records, status changes, and 6 other tenants for the
peer average, written through the schema's materialized roll-ups like the worker's inserts.
"""
from __future__ import annotations

import argparse
import http.cookiejar
import re
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import Settings  # noqa: E402
from pipeline.models import Alert, Event, Tenant, Utm, UtmStatusChange  # noqa: E402
from pipeline.rows import alert_row, event_row, status_row, tenant_row, utm_row  # noqa: E402
from pipeline.io.store.backends import Store, open_store  # noqa: E402
from pipeline.io.store.migrate import apply_migrations  # noqa: E402
from portal import accounts as acc  # noqa: E402
from portal.data import report_id  # noqa: E402
from tests.support.portal import running_portal  # noqa: E402

TZ = ZoneInfo("Asia/Tokyo")
TENANT = "t-big"
PEERS = tuple(f"t-peer{i}" for i in range(6))
KINDS = (("av", "malware", "detected"), ("ips", "exploit", "blocked"), ("url", "phishing", "blocked"),
         ("ips", "scan", "blocked"), ("av", "pua", "disarmed"))


def fill(store: Store, utms: int, days: int, per_day: int, now: datetime) -> int:
    start = now - timedelta(days=days - 1)
    tenants = [Tenant(tenant_id=t, name=f"株式会社{t}", notify_emails=(f"it@{t}.example.jp",),
                      service_start=(start - timedelta(days=30)).date()) for t in (TENANT, *PEERS)]
    store.insert("tenants", [tenant_row(t, now) for t in tenants])
    fleet = [(f"utm-{TENANT}-{i:03d}", TENANT) for i in range(utms)] + [(f"utm-{p}", p) for p in PEERS]
    store.insert("utms", [utm_row(Utm(utm_id=u, tenant_id=t, registered_at=start - timedelta(days=30)), now)
                          for u, t in fleet])
    changes = []
    for n, (utm, tenant) in enumerate(fleet):
        changes.append(UtmStatusChange(utm, tenant, "online", start, start, None))
        if n % 10 == 3:
            down = now - timedelta(hours=n % 48 + 1)
            changes.append(UtmStatusChange(utm, tenant, "offline", down, down - timedelta(minutes=10), down))
    store.insert("utm_status", [status_row(c) for c in changes])
    count, alerts, batch = 0, [], []
    for d in range(days):
        day_start = start + timedelta(days=d)
        for u, (utm, tenant) in enumerate(fleet):
            for k in range(per_day if tenant == TENANT else per_day * 3):
                type_, category, action = KINDS[(u + k) % len(KINDS)]
                ts = day_start + timedelta(seconds=(k * 3571 + u * 97) % 86000)
                if ts > now:
                    continue
                host = f"192.168.{u % 250}.{k % 200 + 1}"
                alert_id = f"al-{utm}-{d}-{k % 3}" if k % 3 == 0 else None
                event = Event(event_id=f"{utm}-{d}-{k}", utm_id=utm, tenant_id=tenant, ts=ts, type=type_,
                              action=action, direction="outbound", src_ip=host, dst_ip="198.51.100.7", received_at=ts,
                              threat_category=category, signature_id=str(k % 50), signature=f"Signature {k % 50}",
                              url=f"http://site{k}.example/p" if type_ == "url" else None,
                              file_name=f"file{k}.exe" if type_ == "av" else None)
                batch.append(event_row(event, 1 if alert_id else None, alert_id))
                if alert_id and tenant == TENANT:
                    alerts.append(Alert(alert_id=alert_id, tenant_id=tenant, utm_id=utm, host_ip=host, host_mac=None,
                                        grade=(3, 2, 1, 0)[(u + d) % 4], rule="r", title="マルウェア感染の可能性",
                                        first_seen=ts, last_seen=ts, event_count=1, categories=(category,),
                                        recommended_action="フルスキャンを実施してください", status="open",
                                        insurance_eligible_until=ts.astimezone(TZ).date() + timedelta(days=30)))
                count += 1
            for k in range(per_day // 2 if tenant == TENANT else 0):
                ts = day_start + timedelta(seconds=(k * 7919 + u * 31) % 86000)
                if ts <= now:
                    batch.append(event_row(Event(
                        event_id=f"{utm}-{d}-w{k}", utm_id=utm, tenant_id=tenant, ts=ts, type="web", action="allowed",
                        direction="outbound", src_ip="192.168.0.5", dst_ip="198.51.100.8", received_at=ts,
                        web_category=("business", "news", "social-network", "video")[k % 4],
                        app_name=("Microsoft 365", "Chatwork", "LINE", "YouTube")[k % 4]), None, None))
        if len(batch) > 50_000:
            store.insert("events", batch)
            batch = []
    store.insert("events", batch)
    unique = {a.alert_id: a for a in alerts}
    store.insert("alerts", [alert_row(a) for a in unique.values()])
    return count


def login(base: str, user: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(base + "/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    opener.open(base + "/login", urllib.parse.urlencode({"csrf": csrf, "user": user, "password": password}).encode())
    return opener


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utms", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-day", type=int, default=20, help="threat detections per UTM and day")
    parser.add_argument("--requests", type=int, default=30, help="requests per page")
    parser.add_argument("--keep", metavar="DIR", help="keep the store in DIR, and reuse it when it is there")
    args = parser.parse_args()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "store"
        reuse = path.exists()
        store = open_store(f"chdb://{path}", create=not reuse)
        try:
            apply_migrations(store, "Asia/Tokyo", now)  # a kept store gets the migrations added since
            if not reuse:
                began = time.perf_counter()
                events = fill(store, args.utms, args.days, args.per_day, now)
                store.execute("OPTIMIZE TABLE alerts FINAL")
                print(f"store: {events:,} threat detections of {args.utms} UTMs over {args.days} days "
                      f"(+ 6 peer tenants) in {time.perf_counter() - began:.0f}s")
            account, _ = acc.new_account(TENANT, "it@t-big.example.jp", now)
            account = acc.set_totp(acc.set_credentials(account, "bench-user", "bench-password-1", now), "", now)
            acc.AccountBook(store).save(account)
            with running_portal(store, Settings()) as (_, base):
                opener = login(base, "bench-user", "bench-password-1")
                alert = re.search(r'/alerts/([^"]+)"', opener.open(base + "/").read().decode())
                today = now.astimezone(TZ).date()
                month = today.strftime("%Y-%m")
                full = f"from={today - timedelta(days=89)}&to={today}"
                pages = {
                    "summary (30 days)": "/", "summary (90 days)": f"/?{full}",
                    "alert detail": f"/alerts/{alert.group(1) if alert else 'none'}",
                    "detections (7 days, page 1)": "/detections",
                    "detections (90 days, page 20)": f"/detections?{full}&page=20",
                    "utm status": "/utms", "one utm": f"/utms/utm-{TENANT}-003",
                    "peer comparison (90 days)": f"/compare?{full}", "own utms (90 days)": f"/compare/utms?{full}",
                    "usage (90 days)": f"/usage?{full}", "notices": "/notices",
                    "monthly report (to date)": f"/reports/{report_id(TENANT, month)}",
                }
                print(f"{'page':<32}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
                worst = 0.0
                for name, path in pages.items():
                    times = []
                    for i in range(args.requests + 2):
                        started = time.perf_counter()
                        try:
                            with opener.open(base + path) as response:
                                response.read()
                        except urllib.error.HTTPError as exc:
                            raise SystemExit(f"{name}: {path} answered {exc.code}") from None
                        if i >= 2:  # the first two warm the caches
                            times.append((time.perf_counter() - started) * 1000)
                    times.sort()
                    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
                    worst = max(worst, p95)
                    print(f"{name:<32}{statistics.median(times):>9.1f}{p95:>9.1f}{times[-1]:>9.1f}")
                print(f"worst p95: {worst:.1f} ms (target < 300 ms)")
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
