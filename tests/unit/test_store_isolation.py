"""Tenant isolation in the database (issue 20; CONTRACT.md, "ClickHouse views").

chdb has no access control: the roles file (grants, row policies) is parsed by the engine's own
parser (`formatQuery`), its grants are checked against what each program reads and writes, and the
row policies' condition is run on chdb as a filter over the real views. What only a server with
RBAC runs (the policies binding a user) is said so in sql/roles/0001_roles.sql and the README."""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.internal import STORE_TABLES
from pipeline.models import Tenant, Utm, UtmStatusChange
from pipeline.rows import status_row, tenant_row, utm_row
from pipeline.io.store.backends import Store, open_store, quote, split_statements
from pipeline.io.store.migrate import MIGRATIONS_DIR, ROLES_DIR, apply_migrations
from pipeline.io.store.sqlfiles import query_sql
from pipeline.io.store.views import TENANT_VIEWS, VIEWS, TenantRequired, read_view

TZ = "Asia/Tokyo"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
DB = "mimamori"
ROLES = [s.replace("{db}", DB) for path in sorted(ROLES_DIR.glob("*.sql"))
         for s in split_statements(path.read_text(encoding="utf-8"))]
# what the worker asks of the store (pipeline/io/sinks.py, pipeline/io/store/migrate.py, pipeline/io/report_gather.py)
WORKER_QUERIES = ("events_stored", "migrations_applied", "report_delivered", "report_tenant", "report_utm_status_before")
REPORT_VIEWS = ("portal_detections_daily", "portal_peer_average_daily", "portal_alerts", "portal_utm_status",
                "portal_utm_status_changes", "portal_threat_categories_daily")


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isolation")


@pytest.fixture()
def store(chdb_dir: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A fresh, migrated database for each test."""
    store = open_store(f"chdb://{chdb_dir}?database={request.node.name[:60]}")
    try:
        apply_migrations(store, TZ, NOW)
        yield store
    finally:
        store.close()


def grants(role: str) -> dict[str, set[str]]:
    """object -> privileges granted to `role` (a column list counts as the privilege on the object)."""
    found: dict[str, set[str]] = {}
    for statement in ROLES:
        match = re.fullmatch(rf"GRANT (.+?) ON {DB}\.(\w+|\*) TO (.+)", " ".join(statement.split()))
        if match and role in [r.strip() for r in match.group(3).split(",")]:
            privileges = {re.sub(r"\(.*\)", "", p).strip() for p in re.split(r",\s*(?![^(]*\))", match.group(1))}
            found.setdefault(match.group(2), set()).update(privileges)
    return found


def policies() -> dict[tuple[str, str], tuple[str, str]]:
    """(policy, view) -> (condition, roles)."""
    found = {}
    for statement in ROLES:
        match = re.fullmatch(rf"CREATE ROW POLICY OR REPLACE (\w+) ON {DB}\.(\w+) FOR SELECT USING (.+) TO (.+)",
                             " ".join(statement.split()))
        if match:
            found[(match.group(1), match.group(2))] = (match.group(3), match.group(4))
    return found


def tables_read_by(sql: str) -> set[str]:
    return set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", sql)) - {"SELECT"}


def test_every_statement_of_the_roles_file_parses(store: Store) -> None:
    assert len(ROLES) > 20
    for statement in ROLES:
        assert store.query(f"SELECT formatQuery({quote(statement)}) AS q")[0]["q"], statement


def test_the_portal_reads_the_portal_views_only_and_analysts_the_analyst_view_only() -> None:
    portal = grants("portal_reader")
    accounts = portal.pop("portal_accounts")  # the portal's own table: its accounts, not a tenant's rows
    assert accounts == {"SELECT", "INSERT"}
    assert set(portal) == {v for v in VIEWS if v.startswith("portal_")} | {"portal_tenants"} and "portal_notices" in portal
    assert all(p == {"SELECT"} for p in portal.values())
    assert grants("analyst_reader") == {"analyst_threats_daily": {"SELECT"}}
    assert "*" not in grants("mimamori_writer")


def test_every_tenant_view_has_a_row_policy_binding_the_portal_to_one_tenant() -> None:
    found = policies()
    for view in [*TENANT_VIEWS, "portal_tenants"]:  # portal_tenants: its own record, for the report page
        condition, roles = found[("mimamori_tenant", view)]
        assert roles == "portal_reader" and "getSettingOrDefault('SQL_mimamori_tenant', '')" in condition
        assert found[("mimamori_operators", view)][1] == "mimamori_writer, mimamori_migrator"
    assert {view for _, view in found} == set(TENANT_VIEWS) | {"portal_tenants"}


def test_the_writer_may_write_every_table_the_worker_fills_and_read_what_it_reads() -> None:
    writer = grants("mimamori_writer")
    migrations = "\n".join(p.read_text() for p in sorted(MIGRATIONS_DIR.glob("*.sql")))
    filled = set(STORE_TABLES) | set(re.findall(r"CREATE MATERIALIZED VIEW IF NOT EXISTS \w+ TO (\w+)", migrations))
    assert {t for t, p in writer.items() if "INSERT" in p} == filled
    read = set(REPORT_VIEWS).union(*(tables_read_by(query_sql(q)) for q in WORKER_QUERIES))
    assert read <= {t for t, p in writer.items() if "SELECT" in p}, read
    assert "CREATE TABLE" in writer["schema_migrations"]  # migrations_table.sql runs at every start


def test_the_row_policy_condition_gives_one_tenant_or_nothing(store: Store) -> None:
    store.insert("tenants", [tenant_row(Tenant(t, t, (f"a@{t}.example",)), NOW) for t in ("t1", "t2")])
    store.insert("utms", [utm_row(Utm(u, t), NOW) for u, t in (("u1", "t1"), ("u2", "t2"))])
    condition = policies()[("mimamori_tenant", "portal_utm_status")][0]
    for bound, expected in (("t1", ["t1"]), ("t2", ["t2"]), ("", [])):
        where = condition.replace("getSettingOrDefault('SQL_mimamori_tenant', '')", quote(bound))
        rows = store.query(f"SELECT DISTINCT tenant_id FROM portal_utm_status WHERE {where} ORDER BY tenant_id")
        assert [r["tenant_id"] for r in rows] == expected


# --- the shared queries -------------------------------------------------------------------------

def test_a_tenant_view_never_reads_as_every_tenant_by_accident(store: Store) -> None:
    for view in sorted(TENANT_VIEWS):
        for empty in ("", "  "):
            with pytest.raises(TenantRequired, match="tenant"):
                read_view(store, view, tz=TZ, tenant=empty)
        with pytest.raises(TenantRequired):
            read_view(store, view, tz=TZ)
        # the query itself gives nothing for an empty tenant unless every tenant is asked for
        assert store.query(query_sql(f"view_{view}"), {"tenant": "", "every_tenant": 0, "from": date(1970, 1, 1),
                                                       "to": date(2149, 6, 6), "tz": TZ}) == []


def test_every_tenant_view_query_filters_by_tenant() -> None:
    for view in TENANT_VIEWS:
        assert "(%(every_tenant)s = 1 OR tenant_id = %(tenant)s)" in query_sql(f"view_{view}"), view
        assert "%(tenant)s = ''" not in query_sql(f"view_{view}")


# --- portal_utm_status: by tenant and UTM, the real last sign of life --------------------------------

def test_portal_utm_status_joins_by_tenant_and_utm_and_shows_the_last_sign_of_life(store: Store) -> None:
    day = NOW - timedelta(days=31)
    store.insert("tenants", [tenant_row(Tenant(t, t, (f"a@{t}.example",)), NOW) for t in ("t1", "t2")])
    store.insert("utms", [utm_row(Utm("u1", "t1"), NOW), utm_row(Utm("moved", "t1"), NOW - timedelta(days=2))])
    store.insert("utms", [utm_row(Utm("moved", "t2"), NOW)])  # moved from t1 to t2 yesterday
    store.insert("utm_status", [
        status_row(UtmStatusChange("u1", "t1", "online", day, day, None)),
        status_row(UtmStatusChange("moved", "t1", "offline", NOW - timedelta(days=3), NOW - timedelta(days=3, minutes=11),
                                   NOW - timedelta(days=3))),
    ])
    lived = NOW - timedelta(seconds=40)
    store.insert("utm_last_seen", [
        {"tenant_id": "t1", "utm_id": "u1", "last_seen": (NOW - timedelta(days=1)).isoformat()},
        {"tenant_id": "t1", "utm_id": "u1", "last_seen": lived.isoformat()},
        {"tenant_id": "t2", "utm_id": "moved", "last_seen": lived.isoformat()},
    ])
    rows = {r["utm_id"]: r for r in read_view(store, "portal_utm_status", tz=TZ, every_tenant=True)}
    assert rows["u1"]["status"] == "online"
    assert rows["u1"]["last_seen"].startswith(lived.strftime("%Y-%m-%d %H:%M:%S"))  # not the day it came online
    moved = rows["moved"]  # online under t2; t1's outage is not shown
    assert (moved["tenant_id"], moved["status"], moved["offline_since"]) == ("t2", "online", None)
    assert moved["last_seen"].startswith(lived.strftime("%Y-%m-%d %H:%M:%S"))


# --- k: no peer average and no analyst row below 5 tenants -------------------------------------------

def test_no_peer_average_and_no_analyst_row_for_a_day_with_fewer_than_5_tenants(store: Store) -> None:
    from zoneinfo import ZoneInfo

    from pipeline.models import Event
    from pipeline.rows import event_row

    zone = ZoneInfo(TZ)
    day_a = (NOW - timedelta(days=5)).astimezone(zone).date()
    day_b = day_a + timedelta(days=1)
    tenants = [Tenant(f"t{i}", f"T{i}", (f"a@t{i}.example",), service_start=date(2024, 1, 1), industry="retail",
                      region="kanto") for i in range(1, 5)]
    tenants.append(Tenant("t5", "T5", ("a@t5.example",), service_start=day_b, industry="retail", region="kanto"))
    store.insert("tenants", [tenant_row(t, NOW) for t in tenants])

    def caught(tenant: str, day: date) -> dict:
        ts = datetime.combine(day, datetime.min.time(), zone).replace(hour=10).astimezone(timezone.utc)
        return event_row(Event(event_id=f"{tenant}-{day}", utm_id=f"u-{tenant}", tenant_id=tenant, ts=ts, type="av",
                               action="detected", direction="inbound", src_ip="203.0.113.9", dst_ip="192.0.2.10",
                               received_at=ts, threat_category="malware"), 3, f"a-{tenant}-{day}")

    store.insert("events", [caught(t.tenant_id, day_a) for t in tenants[:4]] +
                 [caught(t.tenant_id, day_b) for t in tenants])
    peers = read_view(store, "portal_peer_average_daily", tz=TZ)
    # day A: 4 tenants in service (t5 starts on day B): with 2 tenants, average x 2 - own count
    # was the other's count; below 5 no row at all
    assert {(r["day"], r["type"], r["tenants"]) for r in peers} == {
        (day_b.isoformat(), t, 5) for t in ("av", "ips", "url")}
    analyst = read_view(store, "analyst_threats_daily", tz=TZ)
    assert [(r["day"], r["tenants"], r["detections"]) for r in analyst] == [(day_b.isoformat(), 5, 5)]


def test_each_heartbeat_check_stores_the_last_sign_of_life_of_the_utms_that_showed_one(store: Store) -> None:
    import orjson

    from pipeline.config import Settings
    from pipeline.engine import Detector, InputRecord
    from pipeline.models import Registry
    from pipeline.rules import load_policy

    t0 = NOW - timedelta(hours=2)
    tenant = Tenant("t1", "T1", ("a@t1.example",), service_start=date(2024, 1, 1))
    registry = Registry(tenants={"t1": tenant}, utms={"u1": Utm("u1", "t1"), "u2": Utm("u2", "t1")})
    detector = Detector(Settings(), registry, load_policy(), started_at=t0)
    store.insert("tenants", [tenant_row(tenant, NOW)])
    store.insert("utms", [utm_row(u, NOW) for u in registry.utms.values()])

    def beat(utm: str, at: datetime) -> None:
        record = InputRecord("heartbeat", orjson.dumps({"v": 1, "utm_id": utm, "ts": at.isoformat()}), "hb", 0, 0)
        step = detector.step([record], at)
        store.insert("utm_status", step.rows["utm_status"])

    def check(at: datetime) -> list[tuple[str, str]]:
        rows = detector.tick(at).rows
        store.insert("utm_last_seen", rows["utm_last_seen"])
        return [(r["utm_id"], r["last_seen"]) for r in rows["utm_last_seen"]]

    beat("u1", t0)
    assert check(t0 + timedelta(minutes=1)) == [("u1", t0.isoformat().replace("+00:00", "Z"))]
    for minute in range(1, 30):  # u1 beats every minute for half an hour
        beat("u1", t0 + timedelta(minutes=minute, seconds=30))
        check(t0 + timedelta(minutes=minute + 1))
    assert check(t0 + timedelta(minutes=31)) == []  # no sign of life since the last check: nothing to write
    rows = {r["utm_id"]: r for r in read_view(store, "portal_utm_status", tz=TZ, tenant="t1")}
    assert rows["u1"]["status"] == "online"
    assert rows["u1"]["last_seen"].startswith((t0 + timedelta(minutes=29, seconds=30)).strftime("%Y-%m-%d %H:%M:%S"))
    assert rows["u2"]["status"] == "never_seen" and rows["u2"]["last_seen"] is None


def test_the_migrator_may_do_what_the_migrations_and_purge_do_and_no_more() -> None:
    migrator = grants("mimamori_migrator")
    assert migrator == {"*": {"CREATE TABLE", "CREATE VIEW", "DROP VIEW", "ALTER TABLE", "SELECT", "INSERT"}}
    statements = "\n".join(p.read_text() for p in sorted(MIGRATIONS_DIR.glob("*.sql")))
    statements += "\n" + "\n".join(query_sql(q) for q in ("purge_delete", "purge_utm_tombstones", "migrations_table"))
    verbs = set(re.findall(r"^\s*(CREATE (?:OR REPLACE )?(?:MATERIALIZED )?(?:VIEW|TABLE)|ALTER TABLE|INSERT INTO|DROP \w+"
                           r"|TRUNCATE|RENAME|OPTIMIZE)", statements, re.M))
    assert verbs <= {"CREATE TABLE", "CREATE VIEW", "CREATE OR REPLACE VIEW", "CREATE MATERIALIZED VIEW",
                     "ALTER TABLE", "INSERT INTO"}, verbs


def test_the_report_reads_the_tenant_through_portal_tenants_one_tenant_only(store: Store) -> None:
    from pipeline.io.report_gather import read_tenant

    store.insert("tenants", [tenant_row(Tenant(t, f"Name {t}", (f"a@{t}.example",)), NOW) for t in ("t1", "t2")])
    assert read_tenant(store, "t1") == Tenant("t1", "Name t1", ("a@t1.example",))
    assert tables_read_by(query_sql("report_tenant")) == {"portal_tenants"}
    condition = policies()[("mimamori_tenant", "portal_tenants")][0]
    for bound, expected in (("t2", ["t2"]), ("", [])):
        where = condition.replace("getSettingOrDefault('SQL_mimamori_tenant', '')", quote(bound))
        assert [r["tenant_id"] for r in store.query(f"SELECT tenant_id FROM portal_tenants WHERE {where}")] == expected
