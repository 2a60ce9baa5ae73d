from datetime import datetime, timedelta, timezone

import pytest

from pipeline.mail.timing import MailScheduler, TenantMailSchedule
from pipeline.models import Alert

T0 = datetime(2024, 5, 1, 0, 0, 0, tzinfo=timezone.utc)
WAIT, INTERVAL, URGENT = timedelta(seconds=30), timedelta(minutes=5), timedelta(seconds=10)


def alert(alert_id: str, grade: int = 1, tenant: str = "t1", version: int = 1, status: str | None = None) -> Alert:
    return Alert(
        alert_id=alert_id, tenant_id=tenant, utm_id="u1", host_ip="192.0.2.10", host_mac=None, grade=grade,
        rule="r", title="title", first_seen=T0, last_seen=T0, event_count=version, categories=("malware",),
        recommended_action="scan", status=status or ("investigating" if grade == 0 else "open"),
        insurance_eligible_until=None, version=version,
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def schedule() -> TenantMailSchedule:
    return TenantMailSchedule(WAIT, INTERVAL, URGENT)


def ids(alerts: list[Alert] | None) -> list[str]:
    assert alerts is not None
    return [a.alert_id for a in alerts]


def test_one_alert_goes_after_group_wait(schedule: TenantMailSchedule) -> None:
    assert schedule.due_at() is None
    assert schedule.offer(alert("a"), at(0)) is True
    assert schedule.due_at() == at(30)
    assert schedule.take_due(at(29.999)) is None
    assert ids(schedule.take_due(at(30))) == ["a"]
    assert schedule.due_at() is None
    assert schedule.take_due(at(1000)) is None
    assert schedule.last_mail_at == at(30)


def test_a_burst_of_50_goes_in_one_mail(schedule: TenantMailSchedule) -> None:
    for n in range(50):
        schedule.offer(alert(f"a{n:02}"), at(n * 0.5))
    assert schedule.due_at() == at(30)
    mail = schedule.take_due(at(30))
    assert sorted(ids(mail)) == [f"a{n:02}" for n in range(50)]
    assert schedule.take_due(at(31)) is None


def test_urgent_alert_arriving_while_a_group_waits_goes_at_its_urgent_time(schedule: TenantMailSchedule) -> None:
    schedule.offer(alert("low", 1), at(0))
    schedule.offer(alert("high", 3), at(5))
    assert schedule.due_at() == at(15)
    assert schedule.take_due(at(14)) is None
    mail = schedule.take_due(at(15))
    assert ids(mail) == ["high", "low"]


def test_urgent_alert_arriving_while_the_interval_runs_does_not_wait_for_it(schedule: TenantMailSchedule) -> None:
    schedule.offer(alert("a", 1), at(0))
    assert schedule.take_due(at(30))
    schedule.offer(alert("b", 1), at(60))
    assert schedule.due_at() == at(30 + 300)
    schedule.offer(alert("c", 3), at(100))
    assert schedule.due_at() == at(110)
    assert ids(schedule.take_due(at(110))) == ["c", "b"]
    schedule.offer(alert("d", 2), at(120))
    assert schedule.due_at() == at(110 + 300)


def test_raise_after_first_mail_is_mailed_again_and_same_grade_update_is_not(schedule: TenantMailSchedule) -> None:
    schedule.offer(alert("a", 1, version=1), at(0))
    assert ids(schedule.take_due(at(30))) == ["a"]
    assert schedule.offer(alert("a", 1, version=2), at(40)) is False
    assert schedule.due_at() is None
    assert schedule.offer(alert("a", 3, version=3), at(50)) is True
    assert schedule.due_at() == at(60)
    mail = schedule.take_due(at(60))
    assert mail is not None and mail[0].grade == 3 and mail[0].version == 3
    assert schedule.offer(alert("a", 3, version=4), at(70)) is False


def test_pending_copy_is_refreshed_and_a_raise_keeps_its_arrival(schedule: TenantMailSchedule) -> None:
    schedule.offer(alert("a", 1, version=1), at(0))
    assert schedule.offer(alert("a", 1, version=2), at(8)) is True
    assert schedule.offer(alert("a", 3, version=3), at(20)) is True
    assert schedule.due_at() == at(10)
    mail = schedule.take_due(at(20))
    assert mail is not None and mail[0].version == 3
    assert schedule.offer(alert("a", 3, version=2), at(21)) is False


def test_older_version_does_not_replace_the_pending_copy(schedule: TenantMailSchedule) -> None:
    schedule.offer(alert("a", 2, version=5), at(0))
    schedule.offer(alert("a", 1, version=4), at(1))
    mail = schedule.take_due(at(30))
    assert mail is not None and mail[0].version == 5


def test_grade_zero_then_raised_is_mailed_twice(schedule: TenantMailSchedule) -> None:
    schedule.offer(alert("a", 0), at(0))
    assert ids(schedule.take_due(at(30))) == ["a"]
    assert schedule.offer(alert("a", 1, version=2), at(400)) is True
    assert schedule.due_at() == at(430)


def test_note_mailed_withdraws_and_covers_a_verdict(schedule: TenantMailSchedule) -> None:
    schedule.offer(alert("a", 2), at(0))
    schedule.note_mailed("a", 3, at(5))
    assert schedule.due_at() is None
    assert schedule.offer(alert("a", 3, version=2), at(6)) is False
    assert schedule.offer(alert("b", 1, status="closed"), at(7)) is False


def test_state_round_trip_keeps_the_timeline(schedule: TenantMailSchedule) -> None:
    import json

    schedule.offer(alert("a", 1), at(0))
    schedule.take_due(at(30))
    schedule.offer(alert("b", 3), at(40))
    schedule.offer(alert("c", 1), at(45))
    state = json.loads(json.dumps(schedule.to_state()))
    restored = TenantMailSchedule.from_state(state, WAIT, INTERVAL, URGENT)
    assert restored.due_at() == schedule.due_at() == at(50)
    assert restored.offer(alert("a", 1, version=2), at(46)) is False
    assert ids(restored.take_due(at(50))) == ids(schedule.take_due(at(50))) == ["b", "c"]


def test_mailed_grades_are_forgotten_after_the_memory() -> None:
    schedule = TenantMailSchedule(WAIT, INTERVAL, URGENT, memory=timedelta(days=3))
    schedule.offer(alert("a", 1), at(0))
    schedule.take_due(at(30))
    schedule.offer(alert("b", 1), at(4 * 86400))
    schedule.take_due(at(4 * 86400 + 30))
    assert set(schedule.mailed) == {"b"}


def test_tenants_are_never_mixed() -> None:
    scheduler = MailScheduler(WAIT, INTERVAL, URGENT)
    scheduler.offer(alert("a1", 1, tenant="A"), at(0))
    scheduler.offer(alert("b1", 3, tenant="B"), at(2))
    scheduler.offer(alert("a2", 2, tenant="A"), at(3))
    assert scheduler.next_due() == at(12)
    first = scheduler.take_due(at(12))
    assert [(t, ids(a)) for t, a in first] == [("B", ["b1"])]
    assert scheduler.next_due() == at(30)
    second = scheduler.take_due(at(30))
    assert [(t, sorted(ids(a))) for t, a in second] == [("A", ["a1", "a2"])]
    assert scheduler.next_due() is None
    assert scheduler.take_due(at(10_000)) == []


def test_scheduler_takes_several_tenants_due_at_once_in_due_order() -> None:
    scheduler = MailScheduler(WAIT, INTERVAL, URGENT)
    scheduler.offer(alert("x", 1, tenant="Z"), at(0))
    scheduler.offer(alert("y", 1, tenant="A"), at(1))
    assert [t for t, _ in scheduler.take_due(at(100))] == ["Z", "A"]
