"""Maintenance windows silence UTM-down judgements (CONTRACT.md, "Service notices"; monitor with a fake clock)."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pipeline.heartbeat import UtmMonitor
from pipeline.notices.check import cancellation_of
from pipeline.notices.model import Audience, ServiceNotice
from pipeline.notices.windows import MaintenanceWindow, apply_notice, silenced, window_of

TOKYO = ZoneInfo("Asia/Tokyo")
TIMEOUT = timedelta(minutes=10)
T0 = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)  # 10:00 in Tokyo, after the daily check
WINDOW = MaintenanceWindow("mnt", T0 + timedelta(hours=1), T0 + timedelta(hours=3))


def monitor(windows: list[MaintenanceWindow]) -> UtmMonitor:
    return UtmMonitor(timeout=TIMEOUT, daily_at=time(9, 0), tz=TOKYO, started_at=T0,
                      mailable=lambda utm, tenant, day: True, windows=lambda: windows)


def run(m: UtmMonitor, until: datetime, beating: dict[str, datetime] | None = None,
        start: datetime = T0) -> list[tuple[str, str, datetime]]:
    """Check once a minute from `start` to `until`; each UTM in `beating` beats every minute until its time."""
    said = []
    now = start
    while now <= until:
        for utm_id, stops in (beating or {}).items():
            if now < stops:
                said += [(n.kind, utm_id, now) for n in m.sign_of_life(utm_id, "t1", now).mails]
        said += [(n.kind, n.utm_id, now) for n in m.check(now).mails]
        now += timedelta(minutes=1)
    return said


def test_the_window_and_one_timeout_after_it_silence_the_judgement() -> None:
    assert not silenced(WINDOW.starts_at - timedelta(seconds=1), [WINDOW], TIMEOUT)
    assert silenced(WINDOW.starts_at, [WINDOW], TIMEOUT)
    assert silenced(WINDOW.ends_at + TIMEOUT - timedelta(seconds=1), [WINDOW], TIMEOUT)
    assert not silenced(WINDOW.ends_at + TIMEOUT, [WINDOW], TIMEOUT)


def test_silence_inside_the_window_is_no_stop_and_a_utm_back_after_it_gets_no_mail() -> None:
    m = monitor([WINDOW])
    said = run(m, T0 + timedelta(hours=5),
               {"u1": WINDOW.starts_at + timedelta(minutes=5)} | {"u2": T0 + timedelta(hours=10)})
    # u1 stopped inside the window and never came back: judged only once the grace is over
    assert said == [("utm-down", "u1", WINDOW.ends_at + TIMEOUT)]
    m2 = monitor([WINDOW])
    beats = {"u1": WINDOW.starts_at + timedelta(minutes=5)}
    run(m2, WINDOW.ends_at + timedelta(minutes=5), beats)
    back = WINDOW.ends_at + timedelta(minutes=5)
    assert m2.sign_of_life("u1", "t1", back).notices == []  # it came back within the grace: no mail at all
    assert run(m2, T0 + timedelta(hours=5), {"u1": T0 + timedelta(hours=10)}, start=back) == []
    assert m2.status_of("u1") == "online"


def test_a_utm_down_before_the_window_stays_down_and_its_reminders_go_on() -> None:
    m = monitor([WINDOW])
    said = run(m, T0 + timedelta(hours=24), {"u1": T0 + timedelta(minutes=20)})
    down_at = T0 + timedelta(minutes=30)  # last beat at +19 min
    assert said[0] == ("utm-down", "u1", down_at)
    assert [s[0] for s in said] == ["utm-down", "utm-down-reminder"]  # the next day's 09:00 reminder
    assert m.status_of("u1") == "offline"


def test_without_a_window_the_same_silence_is_a_stop_at_once() -> None:
    m = monitor([])
    said = run(m, T0 + timedelta(hours=5), {"u1": WINDOW.starts_at + timedelta(minutes=5)})
    assert said == [("utm-down", "u1", WINDOW.starts_at + timedelta(minutes=15))]


def test_notices_declare_move_and_withdraw_windows() -> None:
    notice = ServiceNotice("mnt", "maintenance-planned", Audience(all=True), {"ja": "t"}, {"ja": "b"},
                           starts_at=WINDOW.starts_at, ends_at=WINDOW.ends_at)
    windows: dict[str, MaintenanceWindow] = {}
    apply_notice(windows, "mnt", notice)
    assert windows == {"mnt": WINDOW}
    moved = notice.next_version(ends_at=WINDOW.ends_at + timedelta(hours=1))
    apply_notice(windows, "mnt", moved)
    assert windows["mnt"].ends_at == WINDOW.ends_at + timedelta(hours=1)
    apply_notice(windows, "mnt", cancellation_of(moved, "mnt", T0))
    assert windows == {}
    apply_notice(windows, "mnt", notice)
    apply_notice(windows, "mnt", None)
    assert windows == {}
    fault = ServiceNotice("f", "fault", Audience(all=True), {"ja": "t"}, {"ja": "b"}, level="A",
                          starts_at=WINDOW.starts_at, ends_at=WINDOW.ends_at)
    assert window_of(fault) is None
