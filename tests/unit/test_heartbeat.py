"""The UTM status machine with a fake clock to the second (CONTRACT.md, "UTM status")."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from pipeline.heartbeat import Notice, UtmMonitor, registry_mailable
from pipeline.models import Registry, Tenant, Utm

TOKYO = ZoneInfo("Asia/Tokyo")
TIMEOUT = timedelta(minutes=10)
START = datetime(2024, 5, 1, 0, 30, tzinfo=timezone.utc)  # 09:30 in Tokyo


def jst(day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2024, 5, day, hh, mm, ss, tzinfo=TOKYO).astimezone(timezone.utc)


def monitor(started_at: datetime = START, mailable=lambda utm, tenant, day: True, **kwargs) -> UtmMonitor:
    return UtmMonitor(
        timeout=TIMEOUT, daily_at=time(9, 0), tz=TOKYO, started_at=started_at, mailable=mailable, **kwargs,
    )


def kinds(notices: list[Notice]) -> list[tuple[str, str, bool]]:
    return [(n.kind, n.utm_id, n.mailed) for n in notices]


def test_first_sign_of_life_brings_a_never_seen_utm_online_without_notice() -> None:
    m = monitor()
    assert m.status_of("u1") == "never_seen"
    result = m.sign_of_life("u1", "t1", jst(1, 10, 0))
    assert m.status_of("u1") == "online"
    assert [(c.utm_id, c.tenant_id, c.status, c.at, c.last_seen, c.offline_since) for c in result.status_changes] == [
        ("u1", "t1", "online", jst(1, 10, 0), jst(1, 10, 0), None)
    ]
    assert result.notices == []


def test_online_goes_offline_only_when_silent_longer_than_the_timeout() -> None:
    m = monitor()
    m.sign_of_life("u1", "t1", jst(1, 10, 0))
    assert m.check(jst(1, 10, 10)).status_changes == []
    assert m.status_of("u1") == "online"
    result = m.check(jst(1, 10, 10, 1))
    assert m.status_of("u1") == "offline"
    [change] = result.status_changes
    assert (change.status, change.offline_since, change.last_seen) == ("offline", jst(1, 10, 10, 1), jst(1, 10, 0))
    [notice] = result.notices
    assert (notice.kind, notice.mailed, notice.offline_since, notice.last_seen) == (
        "utm-down", True, jst(1, 10, 10, 1), jst(1, 10, 0))
    assert m.check(jst(1, 10, 30)).notices == []


def test_heartbeats_keep_a_utm_online() -> None:
    m = monitor()
    for minute in range(0, 120):
        now = jst(1, 10, 0) + timedelta(minutes=minute)
        m.sign_of_life("u1", "t1", now)
        assert m.check(now + timedelta(seconds=30)).status_changes == []
    assert m.status_of("u1") == "online"


def test_offline_comes_back_online_with_a_recovery_notice() -> None:
    m = monitor()
    m.sign_of_life("u1", "t1", jst(1, 10, 0))
    m.check(jst(1, 10, 11))
    result = m.sign_of_life("u1", "t1", jst(1, 11, 0))
    assert m.status_of("u1") == "online"
    assert [(c.status, c.offline_since) for c in result.status_changes] == [("online", None)]
    [notice] = result.notices
    assert (notice.kind, notice.mailed, notice.offline_since) == ("utm-recovered", True, jst(1, 10, 11))
    assert m.sign_of_life("u1", "t1", jst(1, 11, 1)).notices == []


def test_down_at_085930_with_daily_0900_gets_both_mails() -> None:
    m = monitor(started_at=jst(1, 8, 0))
    m.sign_of_life("u1", "t1", jst(1, 8, 49, 29))
    down = m.check(jst(1, 8, 59, 30))
    assert kinds(down.notices) == [("utm-down", "u1", True)]
    daily = m.check(jst(1, 9, 0))
    assert kinds(daily.notices) == [("utm-down-reminder", "u1", True)]
    assert daily.notices[0].offline_since == jst(1, 8, 59, 30)
    assert daily.notices[0].day == date(2024, 5, 1)


def test_going_down_in_the_daily_check_itself_gets_both_in_order() -> None:
    m = monitor(started_at=jst(1, 8, 0))
    m.sign_of_life("u1", "t1", jst(1, 8, 49, 30))
    assert kinds(m.check(jst(1, 9, 0)).notices) == [("utm-down", "u1", True), ("utm-down-reminder", "u1", True)]


def test_reminders_on_three_days_running_once_a_day_with_checks_every_minute() -> None:
    m = monitor()
    m.sign_of_life("u1", "t1", jst(1, 12, 0))
    reminders: list[Notice] = []
    now = jst(1, 12, 1)
    while now < jst(4, 12, 0):
        reminders += [n for n in m.check(now).notices if n.kind == "utm-down-reminder"]
        now += timedelta(minutes=1)
    assert [(n.at, n.day, n.offline_since) for n in reminders] == [
        (jst(d, 9, 0), date(2024, 5, d), jst(1, 12, 11)) for d in (2, 3, 4)
    ]
    assert len({n.identity for n in reminders}) == 3


def test_daily_check_runs_once_a_day_with_irregular_checks() -> None:
    m = monitor(started_at=jst(1, 4, 0))
    m.sign_of_life("u1", "t1", jst(1, 5, 0))
    times = [jst(1, 7, 0), jst(1, 9, 7), jst(1, 9, 8), jst(1, 13, 0), jst(2, 8, 59, 59), jst(2, 9, 30), jst(2, 23, 0)]
    got = [(t, n.kind) for t in times for n in m.check(t).notices]
    assert got == [
        (jst(1, 7, 0), "utm-down"), (jst(1, 9, 7), "utm-down-reminder"), (jst(2, 9, 30), "utm-down-reminder"),
    ]


def test_daily_time_is_local_to_the_time_zone() -> None:
    m = monitor(started_at=datetime(2024, 4, 30, 12, 0, tzinfo=timezone.utc))
    m.sign_of_life("u1", "t1", datetime(2024, 4, 30, 12, 0, tzinfo=timezone.utc))
    m.check(datetime(2024, 4, 30, 13, 0, tzinfo=timezone.utc))
    assert m.check(datetime(2024, 4, 30, 23, 59, 59, tzinfo=timezone.utc)).notices == []  # 08:59:59 JST
    [reminder] = m.check(datetime(2024, 5, 1, 0, 0, tzinfo=timezone.utc)).notices  # 09:00 JST
    assert reminder.day == date(2024, 5, 1)
    assert m.check(datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)).notices == []  # 09:00 UTC, 18:00 JST


def test_recovery_between_checks_sends_no_down_after_it() -> None:
    m = monitor()
    m.sign_of_life("u1", "t1", jst(1, 10, 0))
    m.check(jst(1, 10, 10))
    m.sign_of_life("u1", "t1", jst(1, 10, 10, 30))
    assert m.check(jst(1, 10, 11)).notices == []
    m.check(jst(1, 10, 21))
    assert m.status_of("u1") == "offline"
    assert kinds(m.sign_of_life("u1", "t1", jst(1, 10, 21, 30)).notices) == [("utm-recovered", "u1", True)]
    assert m.check(jst(1, 10, 22)).notices == []


def save(m: UtmMonitor, utm_ids: list[str]) -> tuple[dict, dict]:
    return json.loads(json.dumps({u: m.state_of(u) for u in utm_ids})), json.loads(json.dumps(m.monitor_state()))


def rebuild(utms: dict, monitor_state: dict | None, started_at: datetime) -> UtmMonitor:
    m = monitor(started_at=started_at)
    for utm_id, state in utms.items():
        m.load(utm_id, state)
    if monitor_state is not None:
        m.load_monitor_state(monitor_state)
    return m


@pytest.mark.parametrize("keep_monitor_state", [True, False])
def test_restart_between_going_offline_and_first_reminder_neither_repeats_nor_loses(keep_monitor_state: bool) -> None:
    m = monitor()
    m.sign_of_life("u1", "t1", jst(1, 12, 0))
    m.sign_of_life("u2", "t1", jst(1, 12, 0))
    assert len(m.check(jst(1, 12, 11)).notices) == 2
    m.sign_of_life("u2", "t1", jst(1, 13, 0))
    utms, state = save(m, ["u1", "u2"])

    restarted = rebuild(utms, state if keep_monitor_state else None, started_at=jst(2, 8, 0))
    assert restarted.status_of("u1") == "offline" and restarted.status_of("u2") == "online"
    notices = [n for t in (jst(2, 8, 30), jst(2, 9, 0), jst(2, 9, 1)) for n in restarted.check(t).notices]
    assert kinds(notices) == [("utm-down", "u2", True), ("utm-down-reminder", "u1", True), ("utm-down-reminder", "u2", True)]
    assert notices[1].offline_since == jst(1, 12, 11)
    assert kinds(restarted.sign_of_life("u1", "t1", jst(2, 10, 0)).notices) == [("utm-recovered", "u1", True)]


def test_restart_after_the_reminder_the_same_day_does_not_repeat_it_even_without_monitor_state() -> None:
    m = monitor()
    m.sign_of_life("u1", "t1", jst(1, 12, 0))
    m.check(jst(1, 12, 11))
    assert kinds(m.check(jst(2, 9, 0)).notices) == [("utm-down-reminder", "u1", True)]
    utms, _ = save(m, ["u1"])
    restarted = rebuild(utms, None, started_at=jst(2, 9, 5))
    assert restarted.check(jst(2, 9, 30)).notices == []
    assert kinds(restarted.check(jst(3, 9, 0)).notices) == [("utm-down-reminder", "u1", True)]


def test_start_up_grace_holds_offline_until_one_timeout_after_start() -> None:
    started = jst(1, 12, 0)
    m = rebuild({"u1": {"tenant_id": "t1", "status": "online", "last_seen": "2024-05-01T01:00:00Z"}}, None, started)
    assert m.check(started).status_changes == []
    assert m.check(started + TIMEOUT - timedelta(seconds=1)).status_changes == []
    assert m.status_of("u1") == "online"
    result = m.check(started + TIMEOUT)
    assert kinds(result.notices) == [("utm-down", "u1", True)]
    assert result.status_changes[0].last_seen == datetime(2024, 5, 1, 1, 0, tzinfo=timezone.utc)


def fleet(m: UtmMonitor, n: int, at: datetime) -> list[str]:
    ids = [f"u{i:02d}" for i in range(n)]
    for utm_id in ids:
        m.sign_of_life(utm_id, "t" + utm_id, at)
    return ids


def test_mass_outage_holds_while_enough_stay_silent_and_the_returned_get_nothing() -> None:
    m = monitor()
    ids = fleet(m, 40, jst(1, 12, 0))
    for utm_id in ids[20:]:
        m.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 8))
    start = m.check(jst(1, 12, 11))  # 20 of 40 silent
    assert [(i.kind, i.state, i.utms, i.at) for i in start.incidents] == [("mass_outage", "start", 20, jst(1, 12, 11))]
    assert len(start.status_changes) == 20
    assert {(n.kind, n.mailed, n.reason) for n in start.notices} == {("utm-down", False, "mass_outage")}
    for utm_id in ids[20:]:
        m.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 14))
    back = [n for u in ids[:5] for n in m.sign_of_life(u, "t" + u, jst(1, 12, 15)).notices]
    assert {(n.kind, n.mailed, n.reason) for n in back} == {("utm-recovered", False, "mass_outage")} and len(back) == 5
    held = m.check(jst(1, 12, 16))  # 15 of 40 still silent
    assert (held.incidents, held.notices, m.mass_outage, m.offline_count) == ([], [], True, 15)


def test_mass_outage_end_gives_the_still_silent_their_utm_down_and_nothing_to_the_returned() -> None:
    m = monitor()
    ids = fleet(m, 40, jst(1, 12, 0))
    for utm_id in ids[12:]:
        m.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 5))
    assert len(m.check(jst(1, 12, 11)).incidents) == 1
    assert m.mass_outage
    for utm_id in ids[12:]:
        m.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 14))
    returned = [n for u in ids[:3] for n in m.sign_of_life(u, "t" + u, jst(1, 12, 15)).notices]
    assert {(n.kind, n.mailed) for n in returned} == {("utm-recovered", False)}
    during = m.check(jst(1, 12, 16))  # 9 of 40 silent: under the minimum of 10
    assert [(i.state, i.utms) for i in during.incidents] == [("end", 9)]
    assert sorted(kinds(during.notices)) == [("utm-down", u, True) for u in ids[3:12]]
    assert all(n.offline_since == jst(1, 12, 11) for n in during.notices)
    later = [n for u in ids[:12] for n in m.sign_of_life(u, "t" + u, jst(1, 13, 0)).notices]
    assert sorted(kinds(later)) == [("utm-recovered", u, True) for u in ids[3:12]]


def test_mass_outage_needs_both_the_share_and_the_minimum() -> None:
    few = monitor()
    ids = fleet(few, 20, jst(1, 12, 0))
    for utm_id in ids[9:]:
        few.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 8))
    result = few.check(jst(1, 12, 11))  # 9 of 20: 45% but fewer than 10
    assert result.incidents == [] and all(n.mailed for n in result.notices) and len(result.notices) == 9

    small_share = monitor()
    ids = fleet(small_share, 60, jst(1, 12, 0))
    for utm_id in ids[12:]:
        small_share.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 8))
    result = small_share.check(jst(1, 12, 11))  # 12 of 60: exactly 20%, not more
    assert result.incidents == [] and len(result.mails) == 12
    for utm_id in ids[13:]:
        small_share.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 12))
    result = small_share.check(jst(1, 12, 15, 30))  # 13 of 60 silent for more than 5 min: more than 20%
    assert [(i.state, i.utms) for i in result.incidents] == [("start", 13)]
    assert result.notices == []  # ids[12] is not past the timeout yet
    result = small_share.check(jst(1, 12, 18, 30))
    assert [(n.utm_id, n.mailed, n.reason) for n in result.notices] == [(ids[12], False, "mass_outage")]


def test_reminders_during_a_mass_outage_are_not_mailed() -> None:
    m = monitor(started_at=jst(1, 7, 0))
    fleet(m, 10, jst(1, 8, 0))
    assert len(m.check(jst(1, 8, 11)).incidents) == 1
    daily = m.check(jst(1, 9, 0))
    assert len(daily.notices) == 10 and not daily.mails
    assert {n.reason for n in daily.notices} == {"mass_outage"}


def test_never_seen_utms_are_never_mailed() -> None:
    registry = Registry(
        tenants={"t1": Tenant("t1", "T", ("a@example.jp",))},
        utms={"seen": Utm("seen", "t1"), "unseen": Utm("unseen", "t1")},
    )
    m = monitor(mailable=registry_mailable(registry))
    m.sign_of_life("seen", "t1", jst(1, 12, 0))
    notices = [n for d in (1, 2, 3) for t in (jst(d, 9, 0), jst(d, 12, 30)) for n in m.check(t).notices]
    assert {n.utm_id for n in notices} == {"seen"}
    assert m.status_of("unseen") == "never_seen" and m.seen_count == 1


@pytest.mark.parametrize("tenant_active, utm_active, contract_end", [
    (False, True, None), (True, False, None), (True, True, date(2024, 4, 30)),
])
def test_inactive_or_past_contract_is_never_mailed(tenant_active: bool, utm_active: bool, contract_end) -> None:
    registry = Registry(
        tenants={"t1": Tenant("t1", "T", ("a@example.jp",), active=tenant_active, contract_end=contract_end)},
        utms={"u1": Utm("u1", "t1", active=utm_active)},
    )
    m = monitor(mailable=registry_mailable(registry))
    m.sign_of_life("u1", "t1", jst(1, 12, 0))
    notices = m.check(jst(1, 12, 11)).notices + m.check(jst(2, 9, 0)).notices
    notices += m.sign_of_life("u1", "t1", jst(2, 10, 0)).notices
    assert [(n.kind, n.mailed, n.reason) for n in notices] == [
        ("utm-down", False, "not_mailable"), ("utm-down-reminder", False, "not_mailable"),
        ("utm-recovered", False, "not_mailable"),
    ]


def test_contract_end_is_judged_on_the_local_day() -> None:
    registry = Registry(
        tenants={"t1": Tenant("t1", "T", ("a@example.jp",), contract_end=date(2024, 5, 1))},
        utms={"u1": Utm("u1", "t1")},
    )
    m = monitor(mailable=registry_mailable(registry))
    m.sign_of_life("u1", "t1", jst(1, 23, 40))
    assert [n.mailed for n in m.check(jst(1, 23, 59)).notices] == [True]  # 14:59 UTC, still May 1 in Tokyo
    m.sign_of_life("u1", "t1", jst(1, 23, 59, 30))
    assert [n.mailed for n in m.sign_of_life("u1", "t1", jst(1, 23, 59, 30)).notices] == []
    assert [n.mailed for n in m.check(jst(2, 0, 10)).notices] == [False]  # May 2 in Tokyo, May 1 in UTC


def test_recovery_of_a_utm_whose_down_was_not_mailed_is_not_mailed() -> None:
    allowed = {"on": False}
    m = monitor(mailable=lambda utm, tenant, day: allowed["on"])
    m.sign_of_life("u1", "t1", jst(1, 12, 0))
    assert [n.mailed for n in m.check(jst(1, 12, 11)).notices] == [False]
    allowed["on"] = True
    [recovered] = m.sign_of_life("u1", "t1", jst(1, 13, 0)).notices
    assert (recovered.mailed, recovered.reason) == (False, "down_not_mailed")


def test_forget_drops_the_utm_from_checks_and_counts() -> None:
    m = monitor()
    fleet(m, 3, jst(1, 12, 0))
    m.check(jst(1, 12, 11))
    m.forget("u00")
    m.sign_of_life("u01", "tu01", jst(1, 12, 20))
    m.forget("u01")
    assert (m.seen_count, m.offline_count) == (1, 1)
    assert kinds(m.check(jst(2, 9, 0)).notices) == [("utm-down-reminder", "u02", True)]
    assert m.status_of("u00") == "never_seen" and m.state_of("u00") is None


def test_same_input_gives_the_same_output() -> None:
    def run() -> list[dict]:
        m = monitor()
        out: list[dict] = []
        for minute in range(0, 36 * 60, 7):
            now = jst(1, 12, 0) + timedelta(minutes=minute)
            for i in range(30):
                if (minute // 60 + i) % 5:
                    out += [n.to_record() for n in m.sign_of_life(f"u{i}", "t", now).notices]
            out += [n.to_record() for n in m.check(now + timedelta(minutes=3)).notices]
        return out
    first = run()
    assert first == run() and len(first) > 20


def test_saved_state_is_plain_json_and_round_trips() -> None:
    m = monitor()
    m.sign_of_life("u1", "t1", jst(1, 12, 0, 0) + timedelta(microseconds=123456))
    m.check(jst(1, 12, 11))
    m.check(jst(2, 9, 0))
    saved = m.state_of("u1")
    assert json.loads(json.dumps(saved)) == saved == {
        "tenant_id": "t1", "status": "offline", "last_seen": "2024-05-01T03:00:00.123456Z",
        "offline_since": "2024-05-01T03:11:00Z", "down_mailed": True, "down_pending": False,
        "reminded_on": "2024-05-02",
    }
    copy = rebuild({"u1": saved}, m.monitor_state(), START)
    assert copy.state_of("u1") == saved and copy.monitor_state() == m.monitor_state()


def test_restart_during_a_mass_outage_keeps_the_held_downs_and_releases_them_once() -> None:
    m = monitor()
    ids = fleet(m, 20, jst(1, 12, 0))
    for utm_id in ids[10:]:
        m.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 5))
    held = m.check(jst(1, 12, 11))
    assert len(held.incidents) == 1 and not held.mails
    utms, state = save(m, ids)

    restarted = rebuild(utms, state, started_at=jst(1, 12, 30))
    assert restarted.mass_outage
    for utm_id in ids[:10]:
        if utm_id != "u00":
            restarted.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 31))
    for utm_id in ids[10:]:
        restarted.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 31))
    # within half a timeout of the restart the monitor counts no quiet UTM yet: the outage goes on
    early = restarted.check(jst(1, 12, 32))
    assert (early.incidents, early.notices, restarted.mass_outage) == ([], [], True)
    end = restarted.check(jst(1, 12, 36))
    assert [(i.state, i.utms) for i in end.incidents] == [("end", 1)]
    assert [(n.identity, n.mailed) for n in end.notices] == [(held.notices[0].identity, True)]
    assert restarted.check(jst(1, 12, 37)).notices == []


# --- mass outage counted at half the timeout (issue 16) ----------------------------------------------

def run_cut(m: UtmMonitor, start: datetime, end: datetime, cut: set[str], cut_at: datetime,
            back: dict[str, datetime], n: int = 20) -> list[tuple[datetime, object]]:
    """n UTMs beating once a minute at spread seconds (u00 at :00, u01 at :03, ...), checks at whole
    minutes; the `cut` ones are silent from `cut_at` until their time in `back`. Returns every notice,
    incident and status change with the time it came."""
    got: list[tuple[datetime, object]] = []
    now = start
    while now <= end:
        for i in range(n):
            utm_id = f"u{i:02d}"
            silent = utm_id in cut and cut_at < now < back.get(utm_id, end + timedelta(days=1))
            if now.second == (3 * i) % 60 and not silent:
                r = m.sign_of_life(utm_id, "t" + utm_id, now)
                got += [(now, x) for x in (*r.notices, *r.status_changes)]
        if now.second == 0:
            r = m.check(now)
            got += [(now, x) for x in (*r.incidents, *r.notices, *r.status_changes)]
        now += timedelta(seconds=1)
    return got


CUT = {f"u{i:02d}" for i in range(13)}


def test_a_cut_of_13_of_20_spread_utms_is_an_outage_before_any_crosses_the_timeout_and_mails_nothing() -> None:
    m = monitor(started_at=jst(1, 8, 0))
    back = {u: jst(1, 8, 55) for u in CUT}  # all back between two checks, during the outage
    got = run_cut(m, jst(1, 8, 20), jst(1, 9, 10), CUT, jst(1, 8, 31, 20), back)
    incidents = [(t, x.state, x.utms) for t, x in got if x.__class__.__name__ == "Incident"]
    offline = [t for t, x in got if getattr(x, "status", None) == "offline"]
    assert incidents[0][1] == "start" and incidents[0][0] < min(offline)
    assert incidents[0][0] == jst(1, 8, 37)  # the first check at which 10 of them are over 5 min silent
    assert incidents[-1][:2] == (jst(1, 8, 56), "end")
    assert [x for _, x in got if isinstance(x, Notice) and x.mailed] == []
    assert {x.kind for _, x in got if isinstance(x, Notice)} == {"utm-down", "utm-recovered"}
    assert all(x.reason == "mass_outage" for _, x in got if isinstance(x, Notice))
    assert len(offline) == 13 and all(m.status_of(u) == "online" for u in CUT)


def test_at_the_end_of_an_outage_the_still_silent_get_utm_down_at_its_time_with_their_offline_since() -> None:
    m = monitor(started_at=jst(1, 8, 0))
    back = {u: jst(1, 8, 55) for u in sorted(CUT)[:10]}  # 3 stay silent: the outage ends (3 < 10)
    got = run_cut(m, jst(1, 8, 20), jst(1, 8, 59), CUT, jst(1, 8, 31, 20), back)
    mailed = [(t, x.kind, x.utm_id, x.offline_since) for t, x in got if isinstance(x, Notice) and x.mailed]
    went_down = {x.utm_id: x.offline_since for _, x in got if getattr(x, "status", None) == "offline"}
    assert [(t, k, u) for t, k, u, _ in mailed] == [(jst(1, 8, 56), "utm-down", u) for u in ("u10", "u11", "u12")]
    assert all(since == went_down[u] < jst(1, 8, 56) for _, _, u, since in mailed)


def test_a_utm_mailed_down_before_the_outage_gets_its_recovery_during_it() -> None:
    m = monitor()
    ids = fleet(m, 20, jst(1, 12, 0))
    for utm_id in ids[1:]:
        m.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 8))
    assert kinds(m.check(jst(1, 12, 11)).notices) == [("utm-down", "u00", True)]
    for utm_id in ids[11:]:
        m.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 16))
    assert [i.state for i in m.check(jst(1, 12, 14)).incidents] == ["start"]  # u00 and 10 others silent
    assert kinds(m.sign_of_life("u00", "tu00", jst(1, 12, 15)).notices) == [("utm-recovered", "u00", True)]
    assert m.mass_outage


def test_only_more_than_half_the_timeout_counts_toward_an_outage() -> None:
    m = monitor()
    fleet(m, 10, jst(1, 12, 0))
    assert m.check(jst(1, 12, 5)).incidents == [] and m.silent_count == 0
    assert [(i.state, i.utms) for i in m.check(jst(1, 12, 5, 1)).incidents] == [("start", 10)]


def test_a_utm_not_yet_past_the_timeout_when_the_outage_ends_goes_down_as_usual_later() -> None:
    m = monitor()
    ids = fleet(m, 11, jst(1, 12, 0))
    assert [i.state for i in m.check(jst(1, 12, 6)).incidents] == ["start"]
    for utm_id in ids[1:]:
        m.sign_of_life(utm_id, "t" + utm_id, jst(1, 12, 7))
    end = m.check(jst(1, 12, 8))
    assert [i.state for i in end.incidents] == ["end"] and end.notices == []
    assert m.check(jst(1, 12, 10)).notices == []
    assert kinds(m.check(jst(1, 12, 11)).notices) == [("utm-down", "u00", True)]


def test_after_a_restart_silence_counts_from_the_start() -> None:
    started = jst(1, 12, 0)
    m = rebuild({f"u{i:02d}": {"tenant_id": "t", "status": "online", "last_seen": "2024-05-01T02:50:00Z"}
                 for i in range(12)}, None, started)  # last seen 11:50, before a 10 min pause of ours
    assert m.check(started + timedelta(minutes=1)).incidents == []
    assert m.check(started + TIMEOUT / 2).incidents == [] and m.silent_count == 0
    result = m.check(started + TIMEOUT / 2 + timedelta(seconds=1))
    assert [(i.state, i.utms) for i in result.incidents] == [("start", 12)] and result.notices == []
    assert not m.check(started + TIMEOUT + timedelta(seconds=1)).mails
