"""The silence schedule against a plain scan of every UTM, on random sign-of-life sequences."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.heartbeat import UtmMonitor
from pipeline.heartbeat.schedule import SilenceSchedule

BASE = datetime(2024, 5, 1, tzinfo=timezone.utc)
steps = st.lists(
    st.tuples(st.sampled_from(["seen", "seen", "check", "forget"]), st.integers(0, 7), st.integers(0, 900_000)),
    max_size=80,
)


@given(steps)
@settings(max_examples=150, deadline=None)
def test_take_silent_returns_exactly_the_utms_last_seen_before_the_cutoff(ops) -> None:
    schedule = SilenceSchedule()
    last_seen: dict[str, float] = {}
    clock = 0.0
    for op, n, micros in ops:
        clock += micros / 1e6
        utm_id = f"u{n}"
        if op == "seen":
            if utm_id in last_seen:
                schedule.remove(utm_id, int(last_seen[utm_id]))
            schedule.add(utm_id, int(clock))
            last_seen[utm_id] = clock
        elif op == "forget" and utm_id in last_seen:
            schedule.remove(utm_id, int(last_seen.pop(utm_id)))
        elif op == "check":
            cutoff = clock - 2.5
            got = schedule.take_silent(cutoff, lambda u: last_seen[u] < cutoff)
            expected = {u for u, t in last_seen.items() if t < cutoff}
            assert sorted(got) == sorted(expected)
            for u in got:
                del last_seen[u]
    assert len(schedule) == len(last_seen)


@given(steps)
@settings(max_examples=100, deadline=None)
def test_monitor_statuses_match_a_plain_rule(ops) -> None:
    timeout = timedelta(seconds=2)
    m = UtmMonitor(timeout=timeout, daily_at=time(9), tz=ZoneInfo("Asia/Tokyo"), started_at=BASE,
                   mailable=lambda u, t, d: True, mass_outage_min=10**9)
    seen: dict[str, datetime] = {}
    offline: set[str] = set()
    quiet: set[str] = set()  # online, silent for more than half the timeout at the last check
    now = BASE
    for op, n, micros in ops:
        now += timedelta(microseconds=micros)
        utm_id = f"u{n}"
        if op == "seen":
            m.sign_of_life(utm_id, "t", now)
            seen[utm_id] = now
            offline.discard(utm_id)
            quiet.discard(utm_id)
        elif op == "forget":
            m.forget(utm_id)
            seen.pop(utm_id, None)
            offline.discard(utm_id)
            quiet.discard(utm_id)
        elif op == "check":
            m.check(now)
            if now >= BASE + timeout:
                offline |= {u for u, t in seen.items() if now - t > timeout}
            quiet = {u for u, t in seen.items() if now - t > timeout / 2} - offline
        for u in (f"u{i}" for i in range(8)):
            expected = "never_seen" if u not in seen else ("offline" if u in offline else "online")
            assert m.status_of(u) == expected
        assert m.silent_count == len(quiet) + len(offline)
    assert (m.seen_count, m.offline_count) == (len(seen), len(offline))


def test_take_silent_reads_whole_seconds_then_the_one_the_cutoff_falls_in() -> None:
    schedule = SilenceSchedule()
    last_seen = {"a": 10.2, "b": 11.3, "c": 11.7, "d": 12.1}
    for utm_id, t in last_seen.items():
        schedule.add(utm_id, int(t))
    assert schedule.take_silent(11.5, lambda u: last_seen[u] < 11.5) == ["a", "b"]
    assert schedule.take_silent(11.5, lambda u: last_seen[u] < 11.5) == []
    assert schedule.take_silent(13.0, lambda u: last_seen[u] < 13.0) == ["c", "d"]
    assert len(schedule) == 0
