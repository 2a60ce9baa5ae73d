"""`mimamori migrate`, `query` and `purge-tenant` run in-process against chdb."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mimamori.cli import main
from pipeline.models import Alert, Event, Mail, Tenant, Utm, UtmStatusChange
from pipeline.io.store.backends import open_store
from pipeline.rows import (
    alert_row, event_row, mail_row, status_row, tenant_row, utm_removed_row, utm_row,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)


def _event(event_id: str, tenant: str, utm: str, type_: str = "av") -> Event:
    return Event(event_id=event_id, utm_id=utm, tenant_id=tenant, ts=NOW, type=type_, action="detected",
                 direction="outbound", src_ip="192.0.2.1", dst_ip="198.51.100.2", received_at=NOW,
                 threat_category="malware", web_category="news" if type_ == "web" else None)


def _fill(url: str) -> None:
    store = open_store(url)
    try:
        for tenant, utm in (("t1", "u1"), ("t2", "u2")):
            store.insert("tenants", [tenant_row(Tenant(tenant, "Co", ("a@x.example",)), NOW)])
            store.insert("utms", [utm_row(Utm(utm, tenant), NOW)])
            store.insert("events", [event_row(_event(f"{tenant}-e{i}", tenant, utm), 3, f"{tenant}-a") for i in range(3)]
                         + [event_row(_event(f"{tenant}-w", tenant, utm, "web"), None, None)])
            store.insert("alerts", [alert_row(Alert(f"{tenant}-a", tenant, utm, "192.0.2.1", None, 3, "r", "title",
                                                    NOW, NOW, 3, ("malware",), "scan", "open", None))])
            store.insert("utm_status", [status_row(UtmStatusChange(utm, tenant, "online", NOW, NOW, None))])
            store.insert("mails", [mail_row(Mail(f"<{tenant}@m>", "alert", tenant, ("a@x.example",), "★★★", 3,
                                                 (f"{tenant}-a",), None, NOW, "raw"), NOW)])
        store.insert("utms", [utm_removed_row("u1", NOW + timedelta(seconds=1))])
    finally:
        store.close()


def _rows_of(url: str, tenant: str) -> dict[str, int]:
    store = open_store(url)
    try:
        tables = [r["table"] for r in store.query(
            "SELECT table FROM system.columns WHERE database = currentDatabase() AND name = 'tenant_id' "
            "AND table IN (SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree')")]
        return {t: store.query(f"SELECT count() AS n FROM {t} WHERE tenant_id = %(t)s", {"t": tenant})[0]["n"]
                for t in tables}
    finally:
        store.close()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("chdb-cmd")
    return f"chdb://{path}"


def test_migrate_then_query_formats(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--store", url]) == 0
    assert "applied 0001_tables.sql" in capsys.readouterr().out
    assert main(["migrate", "--store", url]) == 0
    assert capsys.readouterr().out == "up to date\n"
    _fill(url)
    assert main(["query", "portal_detections_daily", "--tenant", "t1", "--format", "json", "--store", url]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["tenant_id"], r["type"], r["action"], r["detections"]) for r in rows] == [("t1", "av", "detected", 3)]
    assert main(["query", "portal_web_usage_daily", "--format", "csv", "--store", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tenant_id,day,web_category,app_name,hits" and len(lines) == 3
    assert main(["query", "portal_utm_status", "--store", url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["tenant_id", "utm_id", "status", "last_seen", "offline_since"]
    assert [line.split()[:3] for line in table[1:]] == [["t2", "u2", "online"]]  # u1 was removed from the registry


def test_query_refuses_an_unknown_view_and_a_tenant_on_an_analyst_view(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "events", "--store", url]) == 2
    assert main(["query", "analyst_threats_daily", "--tenant", "t1", "--store", url]) == 2
    assert main(["query", "portal_alerts", "--from", "yesterday", "--store", url]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(e.startswith("mimamori query") for e in errors)


def test_query_refuses_an_empty_tenant_and_never_lists_every_tenant_for_it(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for empty in ("", " "):
        assert main(["query", "portal_alerts", "--tenant", empty, "--store", url]) == 2
        err = capsys.readouterr()
        assert "--tenant is empty" in err.err and err.out == ""


def test_csv_cells_a_spreadsheet_would_run_are_neutralised() -> None:
    import csv
    import io

    from mimamori.printing import write_rows

    out = io.StringIO()
    write_rows([{"title": '=HYPERLINK("http://evil.example","x")', "plus": "+1+1", "minus": "-2+3", "at": "@SUM(A1)",
                 "tab": "\t=1", "cr": "\r=1", "count": -3, "ratio": -0.5, "plain": "ok"}], "csv", out)
    row = next(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert row == {"title": '\'=HYPERLINK("http://evil.example","x")', "plus": "'+1+1", "minus": "'-2+3",
                   "at": "'@SUM(A1)", "tab": "'\t=1", "cr": "'\r=1", "count": "-3", "ratio": "-0.5", "plain": "ok"}


def test_purge_tenant_leaves_no_row_of_it_and_keeps_the_others(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = _rows_of(url, "t1")
    assert before["events"] == 4 and before["detections_daily"] == 1 and before["mails"] == 1
    assert main(["purge-tenant", "t1", "--no-kafka", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "events: 4 rows deleted" in out and "tenants: 1 rows deleted" in out
    assert set(_rows_of(url, "t1").values()) == {0}
    assert _rows_of(url, "t2") == {**before, "utms": 1}
    store = open_store(url)
    try:
        assert store.query("SELECT count() AS n FROM utms WHERE utm_id = 'u1'")[0]["n"] == 0
    finally:
        store.close()


def test_a_chdb_path_that_does_not_exist_is_refused_unless_migrate_creates_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = f"chdb://{tmp_path / 'mistyped'}"
    for command in (["query", "portal_alerts"], ["report", "t1", "--month", "2026-01"], ["purge-tenant", "t1", "--no-kafka"]):
        assert main([*command, "--store", missing]) == 1
        err = capsys.readouterr().err
        assert "does not exist" in err and "mimamori migrate" in err and "Traceback" not in err
        assert not (tmp_path / "mistyped").exists()
    assert main(["migrate", "--store", missing]) == 0
    assert (tmp_path / "mistyped").is_dir()
    capsys.readouterr()
    assert main(["query", "portal_alerts", "--store", missing]) == 0
