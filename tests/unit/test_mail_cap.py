"""The 100-alert cap (CONTRACT.md, "Mail"): a tenant with 3,001 pending alerts gets 31 mails at the
same moment, every alert in exactly one, the highest grades first, with the same Message-IDs
whenever the same pending alerts are taken again (a restored schedule)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import orjson
import pytest

from pipeline.config import Settings
from pipeline.correlate import AlertChange
from pipeline.engine import MailDesk
from pipeline.mail.timing import MAX_ALERTS_PER_MAIL, TenantMailSchedule, split_for_mails
from pipeline.models import Alert, Tenant

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
SETTINGS = Settings(mail_group_wait=timedelta(seconds=30), mail_group_interval=timedelta(minutes=5),
                    mail_urgent_wait=timedelta(seconds=10))
TENANT = Tenant("t1", "T", ("a@example.jp",), service_start=date(2026, 1, 10))
GRADES = (1, 3, 0, 2, 1, 1, 2)
"""Grades cycle so that every grade is spread over the arrivals; 3,001 alerts give 429 of grade 3."""


def alert(n: int, tenant: str = "t1") -> Alert:
    grade = GRADES[n % len(GRADES)]
    return Alert(alert_id=f"a{n:05}", tenant_id=tenant, utm_id="u1", host_ip=f"10.0.{n // 250}.{n % 250}",
                 host_mac=None, grade=grade, rule="r", title="title", first_seen=T0, last_seen=T0, event_count=1,
                 categories=("malware",), recommended_action="scan",
                 status="investigating" if grade == 0 else "open", insurance_eligible_until=None)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def offer_all(desk: MailDesk, count: int) -> list[Alert]:
    """`count` alerts arriving one every 5 ms, the first at T0."""
    alerts = [alert(n) for n in range(count)]
    for n, a in enumerate(alerts):
        assert desk.offer(AlertChange(a, None, None), at(n * 0.005)) == []
    return alerts


def test_split_cuts_in_order_and_refuses_a_limit_below_one() -> None:
    alerts = [alert(n) for n in range(7)]
    assert split_for_mails(alerts, 3) == [alerts[0:3], alerts[3:6], alerts[6:7]]
    assert split_for_mails([], 3) == []
    with pytest.raises(ValueError):
        split_for_mails(alerts, 0)


def test_3001_pending_alerts_go_in_31_mails_at_once_highest_grade_first() -> None:
    desk = MailDesk(SETTINGS, {"t1": TENANT}.get)
    alerts = offer_all(desk, 3001)
    grade_of = {a.alert_id: a.grade for a in alerts}
    urgent = sum(1 for a in alerts if a.grade == 3)
    # the first ★★★ (alert 1, at 5 ms) makes the whole group due at its urgent wait
    assert desk.next_due() == at(0.005 + 10)
    assert desk.due(at(10.004)) == []

    mails = desk.due(at(10.005))

    assert len(mails) == 31 == -(-3001 // MAX_ALERTS_PER_MAIL)
    assert [len(m.alert_ids) for m in mails] == [100] * 30 + [1]
    assert all(m.sent_at == at(10.005) and m.kind == "alert" and m.tenant_id == "t1" for m in mails)
    listed = [alert_id for m in mails for alert_id in m.alert_ids]
    assert sorted(listed) == sorted(grade_of) and len(set(listed)) == 3001
    # grades never rise from one mail to the next, nor inside a mail; every ★★★ is in the first mails
    grades = [grade_of[alert_id] for alert_id in listed]
    assert grades == sorted(grades, reverse=True)
    assert {grade_of[a] for m in mails[: urgent // 100] for a in m.alert_ids} == {3}
    assert [m.grade for m in mails] == [3] * 5 + [2] * 8 + [1] * 13 + [0] * 5
    assert [m.subject.count("★★★") for m in mails[:5]] == [1] * 5
    assert all("★★★" not in m.subject for m in mails[5:])
    assert max(len(m.raw) for m in mails) < 1_000_000  # the outbox takes it (3,001 in one mail made 6.4 MB)
    assert len({m.message_id for m in mails}) == 31
    # the latency is measured from each mail's own earliest alert
    assert mails[0].arrived_at == at(0.005)
    # nothing is left; the next alert waits for the group interval from this moment
    assert desk.next_due() is None
    desk.offer(AlertChange(alert(5000), None, None), at(11))
    assert desk.next_due() == at(10.005 + 300)


def test_the_same_pending_alerts_taken_again_give_the_same_mails_and_message_ids() -> None:
    desk = MailDesk(SETTINGS, {"t1": TENANT}.get)
    offer_all(desk, 250)
    saved = orjson.loads(orjson.dumps(desk.scheduler.tenants["t1"].to_state()))
    first = desk.due(at(30))

    again = MailDesk(SETTINGS, {"t1": TENANT}.get)
    again.restore([("t1\x1fschedule", saved)])
    second = again.due(at(30))

    assert [m.message_id for m in first] == [m.message_id for m in second]
    assert [m.alert_ids for m in first] == [m.alert_ids for m in second]
    assert [len(m.alert_ids) for m in first] == [100, 100, 50]


def test_a_tenant_at_the_cap_gets_one_mail_and_tenants_are_never_mixed() -> None:
    desk = MailDesk(SETTINGS, {"t1": TENANT, "t2": Tenant("t2", "U", ("b@example.jp",),
                                                         service_start=date(2026, 1, 10))}.get)
    for n in range(MAX_ALERTS_PER_MAIL):
        desk.offer(AlertChange(alert(n), None, None), at(0))
    for n in range(MAX_ALERTS_PER_MAIL + 1):
        desk.offer(AlertChange(alert(10_000 + n, tenant="t2"), None, None), at(0))
    mails = desk.due(at(30))
    assert sorted((m.tenant_id, len(m.alert_ids)) for m in mails) == [("t1", 100), ("t2", 1), ("t2", 100)]


def test_schedule_takes_every_pending_alert_in_mail_order() -> None:
    schedule = TenantMailSchedule(SETTINGS.mail_group_wait, SETTINGS.mail_group_interval, SETTINGS.mail_urgent_wait)
    for n in range(20):
        schedule.offer(alert(n), at(n))
    taken = schedule.take_due(at(60))
    assert taken is not None and len(taken) == 20
    assert [a.grade for a in taken] == sorted((a.grade for a in taken), reverse=True)
    threes = [a.alert_id for a in taken if a.grade == 3]
    assert threes == sorted(threes)  # same grade: earliest arrival first
