"""The Detector and MailDesk of pipeline/engine.py on the contract's notice sentences (issue 16)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from pipeline.config import Settings
from pipeline.correlate import AlertChange
from pipeline.engine import Detector, InputRecord, MailDesk
from pipeline.heartbeat import Notice
from pipeline.models import Alert, Registry, Tenant, Utm, Verdict
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
    first = d.step([InputRecord("event", event("e1", jst(9, 0)))], jst(9, 0)).outputs
    assert (len(first.events), len(first.alert_changes)) == (1, 1)
    d.tick(jst(9, 10, 1))
    assert d.monitor.status_of("u1") == "offline"
    again = d.step([InputRecord("event", event("e1", jst(9, 0)))], jst(9, 12)).outputs
    assert (again.rejections, again.duplicates, again.events, again.alert_changes) == ([], 1, [], [])
    assert [(c.status, c.at) for c in again.status_changes] == [("online", jst(9, 12))]
    assert [(n.kind, n.mailed) for n in again.notices] == [("utm-recovered", True)]
    d.tick(jst(9, 21))
    assert d.monitor.status_of("u1") == "online"  # last seen 09:12, by the duplicate


def test_an_ignored_heartbeat_is_no_sign_of_life_and_a_rejected_record_changes_nothing() -> None:
    d = detector(jst(9, 0))
    hb = orjson.dumps({"v": 1, "utm_id": "off", "ts": jst(9, 0).isoformat()})
    out = d.step([InputRecord("heartbeat", hb), InputRecord("heartbeat", b'{"v": 1, "utm_id": "u1"')], jst(9, 0)).outputs
    assert (out.ignored, [r.reason for r in out.rejections], out.status_changes) == (1, ["invalid_json"], [])
    assert [r.topic for r in out.rejections] == ["heartbeat"]
    assert d.monitor.seen_count == 0


def test_duplicates_keep_a_utm_online_past_the_timeout() -> None:
    d = detector(jst(9, 0))
    d.step([InputRecord("event", event("e1", jst(9, 0)))], jst(9, 0))
    for minute in range(8, 40, 8):
        d.step([InputRecord("event", event("e1", jst(9, 0)))], jst(9, minute))
        out = d.tick(jst(9, minute) + timedelta(minutes=5)).outputs
        assert out.status_changes == [] and out.notices == []


# --- contract_end for mails ------------------------------------------------------------------------

END = date(2026, 12, 31)


def jan(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2027, 1, 1, hh, mm, ss, tzinfo=TOKYO)


def alert(alert_id: str, first: datetime, last: datetime | None = None, grade: int = 1, version: int = 1) -> Alert:
    return Alert(alert_id=alert_id, tenant_id="t1", utm_id="u1", host_ip="192.168.1.10", host_mac=None, grade=grade,
                 rule="r", title="t", first_seen=first, last_seen=last or first, event_count=version,
                 categories=("malware",), recommended_action="caution", status="open" if grade else "investigating",
                 insurance_eligible_until=None, version=version)


def desk(**tenant: Any) -> MailDesk:
    return MailDesk(SETTINGS, registry(contract_end=END, **tenant).tenants.get)


def test_an_alert_of_the_last_day_is_mailed_the_day_after_and_one_of_a_later_event_never() -> None:
    d = desk()
    d.offer(AlertChange(alert("a", jst(23, 59, 50, day=31)), None, None), jst(23, 59, 50, day=31))
    d.offer(AlertChange(alert("b", jan(0, 0, 5)), None, None), jan(0, 0, 5))
    assert d.next_due() == jan(0, 0, 20)
    [mail] = d.due(jan(0, 0, 20))
    assert (mail.kind, mail.alert_ids, mail.sent_at) == ("alert", ("a",), jan(0, 0, 20))
    assert d.next_due() is None


def test_a_later_event_joining_a_pending_alert_neither_raises_nor_changes_what_is_mailed() -> None:
    d = desk()
    d.offer(AlertChange(alert("a", jst(23, 59, day=31)), None, None), jst(23, 59, day=31))
    raised = alert("a", jst(23, 59, day=31), jan(0, 0, 10), grade=3, version=2)
    d.offer(AlertChange(raised, 1, None), jan(0, 0, 10))
    assert d.next_due() == jst(23, 59, 30, day=31)  # not the urgent time of the raise
    [mail] = d.due(jst(23, 59, 30, day=31))
    assert (mail.alert_ids, mail.grade) == (("a",), 1)


def test_a_verdict_after_the_end_is_mailed_for_an_alert_of_events_before_it_only() -> None:
    d = desk()
    before, after = alert("a", jst(20, 0, day=31), grade=0), alert("b", jan(1, 0), grade=0)
    for old in (before, after):
        verdict = Verdict(old.alert_id, 2, "note", jan(12, 0))
        new = Alert.from_record({**old.to_record(), "grade": 2, "status": "open", "version": 2})
        mails = d.offer(AlertChange(new, 0, "investigation-report", verdict=verdict), jan(12, 0))
        assert [m.kind for m in mails] == (["investigation-report"] if old is before else [])


def test_no_utm_mail_after_the_last_day() -> None:
    d = desk()
    def notice(at: datetime) -> Notice:
        return Notice("utm-down", "u1", "t1", at, at, at - timedelta(minutes=11), True)
    assert [m.kind for m in d.notice(notice(jst(23, 59, day=31)), jst(23, 59, day=31))] == ["utm-down"]
    assert d.notice(notice(jan(0, 0, 1)), jan(0, 0, 1)) == []


def test_an_inactive_tenant_is_never_mailed() -> None:
    d = desk(active=False)
    d.offer(AlertChange(alert("a", jst(10, 0, day=31)), None, None), jst(10, 0, day=31))
    assert d.due(jst(11, 0, day=31)) == []


def test_utms_made_inactive_are_forgotten_and_count_toward_no_mass_outage() -> None:
    """Twelve UTMs seen, then eleven made inactive in the registry and silent: not our outage, and
    their saved state is removed so a restart does not bring them back."""
    from pipeline.engine import InputRecord

    reg = Registry(tenants={"t1": Tenant("t1", "T", ("a@example.jp",), service_start=date(2026, 1, 10))},
                   utms={f"m{n:02d}": Utm(f"m{n:02d}", "t1") for n in range(12)})
    d = detector(jst(9, 0), reg)
    beats = [InputRecord("heartbeat", orjson.dumps({"v": 1, "utm_id": u, "ts": jst(9, 1).isoformat()})) for u in reg.utms]
    d.step(beats, jst(9, 1))
    for n in range(1, 12):
        reg.utms[f"m{n:02d}"] = Utm(f"m{n:02d}", "t1", active=False)
    step = d.tick(jst(9, 8))
    assert not d.mass_outage and step.outputs.incidents == []
    assert d.utm_counts["seen"] == 1
    assert {k for k, v in step.state.keyed.items() if v is None and k.endswith("\x1flife")} == \
        {f"m{n:02d}\x1flife" for n in range(1, 12)}
