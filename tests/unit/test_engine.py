"""The Detector and MailDesk of pipeline/engine.py on the contract's notice sentences (issue 16)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from pipeline.config import Settings
from pipeline.engine import Detector, Outputs
from pipeline.models import Registry, Tenant, Utm
from pipeline.rules import load_policy

TOKYO = ZoneInfo("Asia/Tokyo")
POLICY = load_policy()
SETTINGS = Settings()


def jst(hh: int, mm: int, ss: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hh, mm, ss, tzinfo=TOKYO)


def registry(**tenant: Any) -> Registry:
    return Registry(tenants={"t1": Tenant("t1", "T", ("a@example.jp",), service_start=date(2026, 1, 10), **tenant)},
                    utms={"u1": Utm("u1", "t1"), "off": Utm("off", "t1", active=False)})


def event(event_id: str, at: datetime, utm_id: str = "u1", **fields: Any) -> bytes:
    record = {"v": 1, "event_id": event_id, "utm_id": utm_id, "ts": at.isoformat(), "type": "av",
              "action": "blocked", "direction": "inbound", "src_ip": "203.0.113.5", "dst_ip": "192.168.1.10",
              "threat_category": "malware"}
    record.update(fields)
    return orjson.dumps(record)


def detector(started_at: datetime, reg: Registry | None = None) -> Detector:
    return Detector(SETTINGS, reg or registry(), POLICY, started_at=started_at)


def test_a_dropped_duplicate_is_a_sign_of_life_and_changes_nothing_else() -> None:
    d = detector(jst(9, 0))
    first = Outputs()
    d.take(event("e1", jst(9, 0)), jst(9, 0), first)
    assert (len(first.events), len(first.alert_changes)) == (1, 1)
    d.check(jst(9, 10, 1), Outputs())
    assert d.monitor.status_of("u1") == "offline"
    again = Outputs()
    assert d.take(event("e1", jst(9, 0)), jst(9, 12), again) is not None
    assert (again.duplicates, again.events, again.alert_changes) == (1, [], [])
    assert [(c.status, c.at) for c in again.status_changes] == [("online", jst(9, 12))]
    assert [(n.kind, n.mailed) for n in again.notices] == [("utm-recovered", True)]
    d.check(jst(9, 21), Outputs())
    assert d.monitor.status_of("u1") == "online"  # last seen 09:12, by the duplicate


def test_an_ignored_heartbeat_is_no_sign_of_life_and_a_rejected_record_changes_nothing() -> None:
    d = detector(jst(9, 0))
    out = Outputs()
    hb = orjson.dumps({"v": 1, "utm_id": "off", "ts": jst(9, 0).isoformat()})
    assert d.take(hb, jst(9, 0), out, kind="heartbeat") is None
    assert d.take(b'{"v": 1, "utm_id": "u1"', jst(9, 0), out, kind="heartbeat") is None
    assert (out.ignored, [r.reason for r in out.rejections], out.status_changes) == (1, ["invalid_json"], [])
    assert d.monitor.seen_count == 0


def test_duplicates_keep_a_utm_online_past_the_timeout() -> None:
    d = detector(jst(9, 0))
    d.take(event("e1", jst(9, 0)), jst(9, 0), Outputs())
    for minute in range(8, 40, 8):
        d.take(event("e1", jst(9, 0)), jst(9, minute), Outputs())
        out = Outputs()
        d.check(jst(9, minute) + timedelta(minutes=5), out)
        assert out.status_changes == [] and out.notices == []
