"""Schema, TTL and views on the embedded engine (chdb: in-process, no socket)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest

from pipeline.models import Alert, Event, Tenant, Utm, UtmStatusChange
from pipeline.io.store.backends import Store, StoreError, open_store
from pipeline.io.store.migrate import Migration, MigrationError, apply_migrations, load_migrations
from pipeline.rows import alert_row, event_row, status_row, tenant_row, utm_row
from pipeline.io.store.views import read_view

TZ = "Asia/Tokyo"
NOW = datetime.now(timezone.utc).replace(microsecond=0)  # TTL is judged by the engine's own clock
DAY = (NOW - timedelta(days=3)).astimezone(ZoneInfo(TZ)).date()


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(TZ)).astimezone(timezone.utc)


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


def _open(chdb_dir: Path, database: str) -> Iterator[Store]:
    store = open_store(f"chdb://{chdb_dir}?database={database}")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture()
def empty_store(chdb_dir: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    yield from _open(chdb_dir, request.node.name.replace("[", "_").replace("]", "").replace("-", "_"))


def test_every_migration_applies_on_an_empty_database_and_a_second_run_does_nothing(empty_store: Store) -> None:
    first = apply_migrations(empty_store, TZ, NOW)
    assert [m.version for m in first] == [m.version for m in load_migrations()] and first
    assert apply_migrations(empty_store, TZ, NOW) == []
    recorded = empty_store.query("SELECT version, checksum, tz FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in recorded] == [m.version for m in first]
    assert [r["checksum"] for r in recorded] == [m.checksum for m in first]
    assert {r["tz"] for r in recorded if r["version"] == 2} == {TZ}


def test_a_changed_migration_or_another_zone_is_refused(empty_store: Store) -> None:
    migrations = load_migrations()
    apply_migrations(empty_store, TZ, NOW, migrations)
    changed = [Migration(m.version, m.name, m.path, m.text + "\n-- edited\n") if m.version == 1 else m for m in migrations]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(empty_store, TZ, NOW, changed)
    with pytest.raises(MigrationError, match="MIMAMORI_TZ"):
        apply_migrations(empty_store, "UTC", NOW, migrations)


def test_a_failing_statement_stops_the_run_and_is_named(empty_store: Store, tmp_path: Path) -> None:
    good = tmp_path / "0001_good.sql"
    good.write_text("CREATE TABLE IF NOT EXISTS good (a UInt8) ENGINE = MergeTree ORDER BY a;\n")
    bad = tmp_path / "0002_bad.sql"
    bad.write_text("CREATE TABLE IF NOT EXISTS fine (a UInt8) ENGINE = MergeTree ORDER BY a;\nCREATE TABLE broken (a Nope) ENGINE = Log;\n")
    later = tmp_path / "0003_later.sql"
    later.write_text("CREATE TABLE later (a UInt8) ENGINE = Log;\n")
    migrations = [Migration(int(p.name[:4]), p.stem[5:], p, p.read_text()) for p in (good, bad, later)]
    with pytest.raises(MigrationError, match=r"0002_bad\.sql(.|\n)*CREATE TABLE broken"):
        apply_migrations(empty_store, TZ, NOW, migrations)
    assert [r["version"] for r in empty_store.query("SELECT version FROM schema_migrations")] == [1]
    with pytest.raises(StoreError):
        empty_store.query("SELECT * FROM later")


def test_ttl_is_in_the_tables_and_old_rows_go_after_optimize_final(empty_store: Store) -> None:
    apply_migrations(empty_store, TZ, NOW)
    for table in ("events", "alerts", "detections_daily", "web_usage_daily", "threats_daily"):
        create = empty_store.query(f"SHOW CREATE TABLE {table}")[0]["statement"]
        assert "TTL" in create and "toIntervalDay(90)" in create, table
    assert "toIntervalDay(395)" in empty_store.query("SHOW CREATE TABLE mails")[0]["statement"]
    empty_store.execute("SYSTEM STOP TTL MERGES events")
    old = _event("old", "t1", "u1", NOW - timedelta(days=100), "av", "blocked")
    recent = _event("recent", "t1", "u1", NOW - timedelta(days=80), "av", "blocked")
    empty_store.insert("events", [event_row(old, 1, None), event_row(recent, 1, None)])
    assert empty_store.query("SELECT count() AS n FROM events")[0]["n"] == 2
    empty_store.execute("SYSTEM START TTL MERGES events")
    empty_store.execute("OPTIMIZE TABLE events FINAL")
    assert [r["event_id"] for r in empty_store.query("SELECT event_id FROM events")] == ["recent"]


# ---------------------------------------------------------------- portal_notices (before the module's views store opens)

def test_portal_notices_show_each_tenant_the_latest_version_of_the_notices_concerning_it(empty_store: Store) -> None:
    from pipeline.notices.check import cancellation_of, notice_from_file_data
    from pipeline.io.sinks import registry_rows
    from pipeline.rows import notice_removed_row, notice_row
    from tests.unit.test_notices import NOW as PUBLISHED, planned, registry

    apply_migrations(empty_store, TZ, NOW)
    for table, rows in registry_rows(registry(), NOW).items():
        empty_store.insert(table, rows)
    everyone = notice_from_file_data(planned(40), PUBLISHED)
    firmware = notice_from_file_data(planned(40, notice_id="fw-1", kind="firmware", starts_at=None, ends_at=None,
                                             audience={"models": ["UTM-200"], "firmware": ["7.2.1"]}), PUBLISHED)
    by_model = notice_from_file_data(planned(40, notice_id="m-100", audience={"models": ["UTM-100"]}), PUBLISHED)
    fault = notice_from_file_data(planned(40, notice_id="f-1", kind="fault", level="B", starts_at=None, ends_at=None,
                                          audience={"tenants": ["t2"]}), PUBLISHED)
    empty_store.insert("notices", [notice_row(n, NOW) for n in (everyone, firmware, by_model, fault)])
    later = NOW + timedelta(seconds=1)
    empty_store.insert("notices", [notice_row(cancellation_of(everyone, "mnt-1", later), later),
                                   notice_removed_row("f-1", later)])
    rows = read_view(empty_store, "portal_notices", tz=TZ, every_tenant=True)
    seen = {(r["tenant_id"], r["notice_id"]): r for r in rows}
    # t3 is inactive; t4 is active but its contract ended (30 November) before the notices were
    # published: the mails skip it, so does the portal (issue 23)
    assert set(seen) == {("t1", "mnt-1"), ("t2", "mnt-1"), ("t2", "fw-1"), ("t1", "m-100")}
    from pipeline.notices.audience import concerned_tenants

    mailed = {(t.tenant_id, n.notice_id) for n in (everyone, firmware, by_model)
              for t in concerned_tenants(n.audience, registry(), PUBLISHED.astimezone(ZoneInfo(TZ)).date())}
    assert set(seen) == mailed
    assert seen[("t1", "mnt-1")]["version"] == 2 and seen[("t1", "mnt-1")]["cancelled"] == 1
    assert seen[("t1", "mnt-1")]["title"] == "基盤の更新" and seen[("t2", "mnt-1")]["title"] == "Platform upgrade"
    assert seen[("t2", "fw-1")]["kind"] == "firmware" and seen[("t2", "fw-1")]["cancelled"] == 0
    assert sorted(r["notice_id"] for r in read_view(empty_store, "portal_notices", tz=TZ, tenant="t2")) == ["fw-1", "mnt-1"]


def _event(event_id: str, tenant: str, utm: str, ts: datetime, type_: str, action: str, **extra: object) -> Event:
    return Event(event_id=event_id, utm_id=utm, tenant_id=tenant, ts=ts, type=type_, action=action,
                 direction="outbound", src_ip="192.0.2.10", dst_ip="198.51.100.7", received_at=ts, **extra)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the views on a hand-built fixture

def _tenant(tenant_id: str, *, active: bool = True, start: date | None = None) -> Tenant:
    return Tenant(tenant_id, f"Company {tenant_id}", (f"it@{tenant_id}.example",), service_start=start,
                  industry="retail", region="kanto", active=active)


@pytest.fixture(scope="module")
def views_store(chdb_dir: Path) -> Iterator[Store]:
    for store in _open(chdb_dir, "views"):
        apply_migrations(store, TZ, NOW)
        tenants = [_tenant(f"t{i}") for i in range(1, 7)] + [
            _tenant("t7", active=False), _tenant("t8"), _tenant("t9", start=DAY + timedelta(days=1))]
        store.insert("tenants", [tenant_row(t, NOW) for t in tenants])
        store.insert("tenants", [tenant_row(_tenant("t6"), NOW - timedelta(hours=1)) | {"active": 0}])  # older: loses
        utms = [Utm(f"u{i}", f"t{i}") for i in range(1, 10)]
        store.insert("utms", [utm_row(u, NOW) for u in utms])
        events = []
        for i in range(1, 6):  # 5 tenants: malware grade 3, kept by the analyst view
            events.append(event_row(_event(f"m{i}", f"t{i}", f"u{i}", local(DAY, 10), "av", "detected",
                                           threat_category="malware", url="http://x.example/a"), 3, f"a{i}"))
        for i in range(1, 5):  # 4 tenants: phishing grade 1, below the 5-tenant floor
            events.append(event_row(_event(f"p{i}", f"t{i}", f"u{i}", local(DAY, 11), "url", "blocked",
                                           threat_category="phishing"), 1, f"b{i}"))
        events += [
            # 08:30 JST on DAY is 23:30 UTC the day before: a local day
            event_row(_event("early", "t1", "u1", local(DAY, 0, 30), "av", "blocked", threat_category="malware"), 1, "a1"),
            event_row(_event("late", "t1", "u1", local(DAY, 23, 59), "ips", "blocked", threat_category="scan"), None, None),
            event_row(_event("next", "t1", "u1", local(DAY + timedelta(days=1), 0, 1), "av", "blocked",
                             threat_category="pua"), 1, "c1"),
            event_row(_event("inactive", "t7", "u7", local(DAY, 12), "av", "blocked", threat_category="malware"), 1, "d7"),
            event_row(_event("w1", "t1", "u1", local(DAY, 9), "web", "allowed", web_category="news"), None, None),
            event_row(_event("w2", "t1", "u1", local(DAY, 9, 5), "web", "allowed", web_category="news"), None, None),
            event_row(_event("w3", "t1", "u1", local(DAY, 9, 6), "app", "allowed", app_name="zoom"), None, None),
        ]
        store.insert("events", events[:9])
        store.insert("events", events[9:])  # two parts: the roll-ups must sum across them
        first = Alert("a1", "t1", "u1", "192.0.2.10", None, 1, "r", "caution", local(DAY, 0, 30), local(DAY, 0, 30),
                      1, ("malware",), "scan", "open", None, version=1, updated_at=local(DAY, 0, 30))
        store.insert("alerts", [alert_row(first)])
        store.insert("alerts", [alert_row(Alert(**{**{f: getattr(first, f) for f in first.__slots__},
                                                   "grade": 3, "event_count": 2, "last_seen": local(DAY, 10),
                                                   "version": 2, "updated_at": local(DAY, 10)}))])
        store.insert("utm_status", [
            status_row(UtmStatusChange("u1", "t1", "offline", local(DAY, 1), local(DAY, 0, 50), local(DAY, 1))),
            status_row(UtmStatusChange("u1", "t1", "online", local(DAY, 2), local(DAY, 2), None)),
            status_row(UtmStatusChange("u2", "t2", "online", local(DAY, 1), local(DAY, 1), None)),
            status_row(UtmStatusChange("u2", "t2", "offline", local(DAY, 3), local(DAY, 1), local(DAY, 3))),
        ])
        yield store


def test_portal_detections_daily_counts_threat_events_per_local_day(views_store: Store) -> None:
    rows = read_view(views_store, "portal_detections_daily", tz=TZ, tenant="t1")
    got = {(r["day"], r["type"], r["action"]): r["detections"] for r in rows}
    assert got == {
        (DAY.isoformat(), "av", "detected"): 1, (DAY.isoformat(), "av", "blocked"): 1,
        (DAY.isoformat(), "url", "blocked"): 1, (DAY.isoformat(), "ips", "blocked"): 1,
        ((DAY + timedelta(days=1)).isoformat(), "av", "blocked"): 1,
    }
    only_day = read_view(views_store, "portal_detections_daily", tz=TZ, tenant="t1", from_day=DAY, to_day=DAY)
    assert sum(r["detections"] for r in only_day) == 4


def test_peer_average_counts_active_tenants_without_detections_as_zero(views_store: Store) -> None:
    rows = {(r["day"], r["type"]): r for r in read_view(views_store, "portal_peer_average_daily", tz=TZ)}
    # active on DAY: t1..t6 and t8 (t7 inactive, t9 starts the day after) = 7 tenants
    av = rows[(DAY.isoformat(), "av")]
    assert av["tenants"] == 7
    assert av["avg_detections"] == pytest.approx(6 / 7)  # t1: 2, t2..t5: 1 each; t7's is not counted
    assert rows[(DAY.isoformat(), "url")]["avg_detections"] == pytest.approx(4 / 7)
    assert rows[(DAY.isoformat(), "ips")]["avg_detections"] == pytest.approx(1 / 7)
    next_day = rows[((DAY + timedelta(days=1)).isoformat(), "av")]
    assert next_day["tenants"] == 8 and next_day["avg_detections"] == pytest.approx(1 / 8)


def test_analyst_view_is_anonymous_and_drops_cells_under_five_tenants(views_store: Store) -> None:
    rows = read_view(views_store, "analyst_threats_daily", tz=TZ)
    assert rows == [{"day": DAY.isoformat(), "threat_category": "malware", "grade": 3, "industry": "retail",
                     "region": "kanto", "tenants": 5, "detections": 5}]
    columns = {c["name"] for c in views_store.query("DESCRIBE TABLE analyst_threats_daily")}
    assert not columns & {"tenant_id", "utm_id", "src_ip", "dst_ip", "host_ip", "url", "domain", "file_name"}
    with pytest.raises(ValueError):
        read_view(views_store, "analyst_threats_daily", tz=TZ, tenant="t1")


def test_web_usage_daily(views_store: Store) -> None:
    rows = read_view(views_store, "portal_web_usage_daily", tz=TZ, tenant="t1")
    assert [(r["web_category"], r["app_name"], r["hits"]) for r in rows] == [("news", "", 2), ("", "zoom", 1)]


def test_portal_alerts_show_the_latest_version(views_store: Store) -> None:
    rows = read_view(views_store, "portal_alerts", tz=TZ, tenant="t1")
    assert [(r["alert_id"], r["grade"], r["event_count"]) for r in rows] == [("a1", 3, 2)]


def test_portal_utm_status_latest_change_and_never_seen(views_store: Store) -> None:
    rows = {r["utm_id"]: r for r in read_view(views_store, "portal_utm_status", tz=TZ, every_tenant=True)}
    assert rows["u1"]["status"] == "online" and rows["u1"]["offline_since"] is None
    assert rows["u2"]["status"] == "offline" and rows["u2"]["offline_since"].startswith(local(DAY, 3).strftime("%Y-%m-%d %H"))
    assert rows["u3"]["status"] == "never_seen" and rows["u3"]["last_seen"] is None
    assert len(rows) == 9

