"""The mass-outage guard over several monitors (partitions, workers) with a fake clock: the other
monitors' counts come with the time they hold for, and a monitor judges no UTM offline, nor an
outage over, for a moment the whole fleet has not counted yet (pipeline/heartbeat/fleet.py)."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from pipeline.heartbeat import NOWHERE, Share, UtmMonitor, together
from pipeline.heartbeat.fleet import ALWAYS

UTC = timezone.utc
TIMEOUT = timedelta(minutes=10)
START = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


class Elsewhere:
    """The other monitors' share as a test sets it between checks."""

    def __init__(self, share: Share = NOWHERE) -> None:
        self.share = share

    def __call__(self) -> Share:
        return self.share


def monitor(elsewhere: Elsewhere, daily_at: time = time(0, 0)) -> UtmMonitor:
    return UtmMonitor(timeout=TIMEOUT, daily_at=daily_at, tz=UTC, started_at=START,
                      mailable=lambda utm, tenant, day: True, elsewhere=elsewhere)


def beat(m: UtmMonitor, ids: list[str], when: datetime) -> None:
    for utm_id in ids:
        m.sign_of_life(utm_id, "t", when)


def test_shares_add_up_and_are_counted_up_to_the_earliest() -> None:
    assert together([]) == Share(0, 0, ALWAYS) == NOWHERE
    assert together([Share(1, 10, at(5)), Share(2, 20, at(3))]) == Share(3, 30, at(3))
    assert together([Share(1, 10, at(5)), Share(0, 7, None), Share(2, 20, at(3))]) == Share(3, 37, None)


def test_a_monitor_counts_silence_only_half_a_timeout_after_its_start_and_up_to_what_it_read() -> None:
    m = monitor(Elsewhere())
    beat(m, ["u0"], at(0))
    m.check(at(4))
    assert m.counted_until is None  # silence from before the start is not counted yet
    m.check(at(7), read_until=at(6))
    assert m.counted_until == at(6)
    m.check(at(8))
    assert m.counted_until == at(8)


def test_our_share_waits_for_the_other_share_counted_past_the_moment_and_is_held_by_the_outage() -> None:
    """Five silent UTMs here, five among the other monitor's twenty: ten of forty-five trip the guard
    together (neither share alone would). Until the other share is counted past the moment ours cross the timeout, ours stay
    online; once it is, the outage is declared and ours go offline held, no mail."""
    elsewhere = Elsewhere(Share(0, 20, at(15)))
    m = monitor(elsewhere)
    ids = [f"u{i:02d}" for i in range(25)]
    beat(m, ids, at(16))
    beat(m, ids[5:], at(26))
    # the other monitor was paused at 16: its last count is of then, before the cut
    early = m.check(at(27))
    assert (early.incidents, early.notices, early.status_changes, m.offline_count) == ([], [], [], 0)
    assert m.silent_count == 5  # ours are quiet, and counted
    # it comes back and counts its five silent up to now: together ten of forty-five
    elsewhere.share = Share(5, 20, at(27))
    judged = m.check(at(27.5))
    assert [(i.state, i.utms) for i in judged.incidents] == [("start", 10)]
    assert {(n.kind, n.mailed, n.reason) for n in judged.notices} == {("utm-down", False, "mass_outage")}
    assert m.offline_count == 5


def test_without_an_outage_the_wait_ends_with_the_mail_at_the_check_that_could_judge() -> None:
    elsewhere = Elsewhere(Share(0, 25, at(15)))
    m = monitor(elsewhere)
    ids = [f"u{i:02d}" for i in range(25)]
    beat(m, ids, at(16))
    beat(m, ids[5:], at(26))
    assert m.check(at(27)).notices == []
    elsewhere.share = Share(0, 25, None)  # its partition moved: the new owner has not counted yet
    assert m.check(at(28)).notices == []
    elsewhere.share = Share(1, 25, at(28) + timedelta(seconds=50))
    judged = m.check(at(29))
    assert judged.incidents == []
    assert sorted((n.kind, n.utm_id, n.mailed, n.offline_since) for n in judged.notices) == [
        ("utm-down", u, True, at(29)) for u in ids[:5]]


def test_silence_is_judged_up_to_the_other_share_only() -> None:
    """Counted up to 26:30 elsewhere: a UTM last seen at 16:00 is past the timeout there, one last
    seen at 16:40 is not yet, whatever the time of the check."""
    elsewhere = Elsewhere(Share(0, 100, at(26.5)))
    m = monitor(elsewhere)
    beat(m, ["early"], at(16))
    beat(m, ["late"], at(16) + timedelta(seconds=40))
    beat(m, [f"x{i}" for i in range(10)], at(30))
    result = m.check(at(31))
    assert [(n.utm_id, n.mailed) for n in result.notices] == [("early", True)]
    elsewhere.share = Share(0, 100, at(31))
    assert [n.utm_id for n in m.check(at(31.5)).notices] == ["late"]


def test_an_outage_ends_only_on_counts_that_all_hold() -> None:
    elsewhere = Elsewhere(Share(8, 20, at(20)))
    m = monitor(elsewhere)
    ids = [f"u{i:02d}" for i in range(20)]
    beat(m, ids, at(10))
    beat(m, ids[4:], at(20))
    start = m.check(at(21))
    assert [(i.state, i.utms) for i in start.incidents] == [("start", 12)]
    # the other monitor restarted: it counts no quiet UTM until half a timeout after its start
    elsewhere.share = Share(0, 20, None)
    assert (m.check(at(22)).incidents, m.mass_outage) == ([], True)
    elsewhere.share = Share(0, 20, at(27))  # its UTMs did come back
    beat(m, ids[4:], at(27))
    end = m.check(at(28))
    assert [(i.state, i.utms) for i in end.incidents] == [("end", 4)]
    assert sorted((n.utm_id, n.mailed) for n in end.notices) == [(u, True) for u in ids[:4]]


def test_the_daily_reminder_waits_for_the_fleet_counted_past_the_daily_time() -> None:
    """An outage the other monitor counts from 09:00 holds the 09:00 reminders back, although this
    monitor's check at 09:00 came before the count."""
    elsewhere = Elsewhere(Share(0, 100, at(20)))
    m = monitor(elsewhere, daily_at=time(9, 0))  # started at 03:00: the daily check is at(360)
    others = [f"x{i}" for i in range(10)]
    beat(m, ["u0", *others], at(0))
    beat(m, others, at(20))
    assert [(n.kind, n.utm_id, n.mailed) for n in m.check(at(21)).notices] == [("utm-down", "u0", True)]
    beat(m, others, at(358))
    elsewhere.share = Share(0, 100, at(359.5))
    assert m.check(at(360)).notices == []  # 09:00 is not counted everywhere yet
    elsewhere.share = Share(30, 100, at(360) + timedelta(seconds=20))
    daily = m.check(at(360.5))
    assert [(i.kind, i.state) for i in daily.incidents] == [("mass_outage", "start")]
    assert [(n.kind, n.utm_id, n.mailed, n.reason) for n in daily.notices] == [
        ("utm-down-reminder", "u0", False, "mass_outage")]
    assert m.check(at(361)).notices == []  # once a day


def test_a_utm_back_just_before_the_daily_time_but_not_read_yet_gets_no_reminder() -> None:
    m = monitor(Elsewhere(), daily_at=time(9, 0))
    others = [f"x{i}" for i in range(10)]
    beat(m, ["u0", *others], at(0))
    beat(m, others, at(20))
    assert [n.kind for n in m.check(at(21)).notices] == ["utm-down"]
    beat(m, others, at(358))
    # u0 beat at 08:59:45; the worker has read its input up to 08:59:40 only
    assert m.check(at(360) + timedelta(seconds=5), read_until=at(359) + timedelta(seconds=40)).notices == []
    back = m.sign_of_life("u0", "t", at(359.75))
    assert [n.kind for n in back.notices] == ["utm-recovered"]
    assert m.check(at(360) + timedelta(seconds=10)).notices == []
    assert m.last_daily_check == at(360).date()
