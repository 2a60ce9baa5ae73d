"""`mimamori replay` over small hand-made inputs, against the contract's notice sentences (issue 16)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from pipeline.config import Settings
from pipeline.models import Registry, Tenant, Utm
from pipeline.io.replay import Replay
from pipeline.rules import load_policy

TOKYO = ZoneInfo("Asia/Tokyo")
POLICY = load_policy()


def jst(hh: int, mm: int, ss: int = 0, day: int = 1, month: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hh, mm, ss, tzinfo=TOKYO)


def stamp(moment: datetime) -> str:
    return moment.isoformat()


def registry(utms: int = 1, **tenant: Any) -> Registry:
    """One tenant per UTM: t00 owns u00, t01 owns u01, ..."""
    tenants = {f"t{i:02d}": Tenant(f"t{i:02d}", f"T{i}", (f"a{i}@example.jp",), service_start=date(2026, 1, 10),
                                   **tenant) for i in range(utms)}
    return Registry(tenants=tenants, utms={f"u{i:02d}": Utm(f"u{i:02d}", f"t{i:02d}") for i in range(utms)})


def beat(utm_id: str, at: datetime) -> bytes:
    return orjson.dumps({"v": 1, "utm_id": utm_id, "ts": stamp(at)})


def event(utm_id: str, event_id: str, at: datetime, **fields: Any) -> bytes:
    record = {"v": 1, "event_id": event_id, "utm_id": utm_id, "ts": stamp(at), "type": "av", "action": "blocked",
              "direction": "inbound", "src_ip": "203.0.113.5", "dst_ip": "192.168.1.10",
              "threat_category": "malware", "signature_id": "sig-1"}
    record.update(fields)
    return orjson.dumps(record)


def replay(lines: list[bytes], reg: Registry, until: datetime | None = None, **settings: Any) -> list[dict]:
    records: list[dict] = []
    Replay(Settings(**settings), reg, POLICY, records.append).run(lines, until)
    return records


def of(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["record"] == kind]


def mails(records: list[dict]) -> list[tuple[str, str, str]]:
    return [(m["kind"], m["utm_id"] or m["tenant_id"], m["sent_at"]) for m in of(records, "mail")]


def utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# --- signs of life: duplicates, ignored heartbeats, rejections --------------------------------------

def test_a_dropped_duplicate_keeps_its_utm_online_and_moves_the_clock() -> None:
    lines = [beat("u00", jst(9, 0)), event("u00", "e1", jst(9, 5))] + [
        event("u00", "e1", jst(9, 5 + 4 * n)) for n in range(1, 5)]  # the same event resent every 4 minutes
    records = replay(lines, registry(), until=jst(9, 40))
    assert [(s["status"], s["at"]) for s in of(records, "utm_status")] == [
        ("online", utc(jst(9, 0))), ("offline", utc(jst(9, 32)))]  # the first check more than 10 min after 09:21
    assert mails(records) == [("alert", "t00", utc(jst(9, 5, 30))), ("utm-down", "u00", utc(jst(9, 32)))]
    assert len(of(records, "alert")) == 1


def test_an_ignored_heartbeat_is_no_sign_of_life_and_does_not_move_the_clock() -> None:
    reg = registry(2)
    reg.utms["u01"] = Utm("u01", "t01", active=False)
    lines = [beat("u00", jst(9, 0)), beat("u01", jst(9, 30))]
    records = replay(lines, reg)
    assert of(records, "utm_status") == [{"record": "utm_status", "utm_id": "u00", "tenant_id": "t00",
                                          "status": "online", "at": utc(jst(9, 0))}]
    assert of(records, "rejection") == []  # ignored, without a rejection; and the clock stayed at 09:00


def test_a_rejected_first_record_changes_nothing_not_even_when_the_run_starts() -> None:
    lines = [beat("nobody", jst(10, 0)), beat("u00", jst(8, 30))[:-1], beat("u00", jst(8, 50))]
    records = replay(lines, registry(), until=jst(9, 5))
    assert [(r["reason"], r["line"]) for r in of(records, "rejection")] == [("unregistered_utm", 1), ("invalid_json", 2)]
    # the run starts at 08:50 (not 10:00, which would hold every stop back until 10:10), with checks at
    # 08:50 + whole minutes: down at the 09:01 check
    assert mails(records) == [("utm-down", "u00", utc(jst(9, 1)))]


# --- lines: numbers, terminators, blank lines, the size limit, mails before records ------------------

def test_rejection_lines_count_every_line_and_blank_lines_are_skipped() -> None:
    lines = [beat("u00", jst(9, 0)) + b"\r\n", b"\n", b"   \t\r\n", b"{oops\r\n", b"\r\n", beat("nobody", jst(9, 1)),
             b"\n", b'{"v": 1}']
    records = replay(lines, registry())
    assert [(r["reason"], r["line"]) for r in of(records, "rejection")] == [
        ("invalid_json", 4), ("unregistered_utm", 6), ("schema", 8)]


def padded(utm_id: str, at: datetime, size: int) -> bytes:
    """A heartbeat of exactly `size` bytes (an unknown field is kept, not refused)."""
    bare = beat(utm_id, at)
    record = bare[:-1] + b', "pad": "' + b"x" * (size - len(bare) - 11) + b'"}'
    assert len(record) == size
    return record


def test_the_size_limit_counts_the_record_without_its_terminator() -> None:
    limit = 64 * 1024
    lines = [padded("u00", jst(9, 0), limit) + b"\r\n", padded("u00", jst(9, 1), limit + 1) + b"\n",
             padded("u00", jst(9, 2), limit) + b"\r\r\n"]  # the first \r is part of the record
    records = replay(lines, registry())
    assert [(r["reason"], r["line"]) for r in of(records, "rejection")] == [("too_large", 2), ("too_large", 3)]
    assert len(of(records, "utm_status")) == 1


def test_mails_due_at_or_before_a_records_time_go_before_it() -> None:
    first = event("u00", "e1", jst(9, 0))
    second = event("u00", "e2", jst(9, 0, 30), src_ip="203.0.113.6", dst_ip="192.168.1.11")  # another host
    records = replay([first, second], registry())
    assert [r["record"] for r in records] == ["alert", "utm_status", "mail", "alert", "mail"]
    assert [(m["sent_at"], len(m["alert_ids"])) for m in of(records, "mail")] == [
        (utc(jst(9, 0, 30)), 1), (utc(jst(9, 5, 30)), 1)]  # the second waits for the group interval


# --- contract_end: inclusive, by the event's day ------------------------------------------------------

def test_contract_end_is_judged_by_the_events_day_for_alerts_and_by_the_mails_day_for_utm_mails() -> None:
    end = date(2026, 12, 31)
    caught = {"action": "detected"}  # av malware that reached the host: grade 3
    lines = [
        beat("u00", jst(23, 50, day=31)),
        event("u00", "e1", jst(23, 59, 50, day=31)),  # grade 1, due 00:00:20 on 1 January
        beat("u00", datetime(2027, 1, 1, 0, 0, 10, tzinfo=TOKYO)),
        event("u00", "e2", jst(23, 58, day=31), dst_ip="192.168.1.20", **caught),  # dated the 31st, arrives on the 1st
        event("u00", "e3", datetime(2027, 1, 1, 0, 5, tzinfo=TOKYO), dst_ip="192.168.1.30", **caught),
    ]
    records = replay(lines, registry(contract_end=end), until=datetime(2027, 1, 2, 10, 0, tzinfo=TOKYO))
    alerts = {r["first_seen"]: r for r in of(records, "alert")}
    on_last_day, late_dated, after = (alerts[utc(jst(23, 59, 50, day=31))], alerts[utc(jst(23, 58, day=31))],
                                      alerts[utc(datetime(2027, 1, 1, 0, 5, tzinfo=TOKYO))])
    assert (late_dated["grade"], late_dated["insurance_eligible_until"]) == (3, "2027-01-30")
    assert (after["grade"], after["insurance_eligible_until"]) == (3, None)
    [mail] = of(records, "mail")  # no alert mail for the 1 January event, no utm-down or reminder after the 31st
    assert (mail["kind"], mail["sent_at"], mail["grade"]) == ("alert", utc(jst(0, 0, 20, day=1, month=1, year=2027)), 3)
    assert sorted(mail["alert_ids"]) == sorted([on_last_day["alert_id"], late_dated["alert_id"]])
    assert [s["status"] for s in of(records, "utm_status")] == ["online", "offline"]


# --- mass outage ------------------------------------------------------------------------------------

def spread_beats(start: datetime, end: datetime, silent: dict[str, tuple[datetime, datetime]], n: int = 20) -> list[bytes]:
    """n UTMs beating once a minute, u00 at :00, u01 at :03, ...; each of `silent` not between its two times."""
    lines = []
    now = start
    while now < end:
        for i in range(n):
            utm_id = f"u{i:02d}"
            cut = silent.get(utm_id)
            if now.second == (3 * i) % 60 and not (cut and cut[0] < now < cut[1]):
                lines.append(beat(utm_id, now))
        now += timedelta(seconds=1)
    return lines


def test_a_cut_of_13_of_20_utms_mails_no_customer_until_the_outage_ends() -> None:
    cut_at, back = jst(8, 31, 20), jst(8, 55)
    silent = {f"u{i:02d}": (cut_at, back) for i in range(10)}
    silent |= {f"u{i:02d}": (cut_at, jst(23, 0)) for i in range(10, 13)}  # these three stay silent
    records = replay(spread_beats(jst(8, 20), jst(8, 59), silent), registry(20))
    kinds = [r["record"] for r in records]
    start, end = kinds.index("incident"), len(kinds) - 1 - kinds[::-1].index("incident")
    assert [(r["state"], r["at"], r["utms"]) for r in of(records, "incident")] == [
        ("start", utc(jst(8, 37)), 13), ("end", utc(jst(8, 56)), 3)]
    first_offline = next(n for n, r in enumerate(records) if r.get("status") == "offline")
    assert "mail" not in kinds[:end] and first_offline > start
    assert mails(records) == [("utm-down", f"u{i}", utc(jst(8, 56))) for i in (10, 11, 12)]
    went_down = {r["utm_id"]: r["at"] for r in of(records, "utm_status") if r["status"] == "offline"}
    assert len(went_down) == 13 and max(went_down.values()) < utc(jst(8, 56))


def test_a_utm_mailed_down_before_an_outage_is_mailed_its_recovery_during_it() -> None:
    silent = {"u19": (jst(8, 5), jst(8, 45))}  # beats at :57; last seen 08:04:57, down at the 08:15 check
    silent |= {f"u{i:02d}": (jst(8, 31, 20), jst(8, 55)) for i in range(13)}
    records = replay(spread_beats(jst(8, 0), jst(8, 50), silent), registry(20))
    assert [(r["state"], r["at"]) for r in of(records, "incident")] == [("start", utc(jst(8, 37)))]
    assert mails(records) == [("utm-down", "u19", utc(jst(8, 15))), ("utm-recovered", "u19", utc(jst(8, 45, 57)))]
