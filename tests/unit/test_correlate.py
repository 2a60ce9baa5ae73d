from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from itertools import count
from zoneinfo import ZoneInfo

import orjson
import pytest

from pipeline.correlate import AlertChange, Correlator, host_key, host_of, make_alert_id
from pipeline.models import Event, Tenant, Verdict
from pipeline.rules import load_policy

T0 = datetime(2025, 3, 1, 3, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TOKYO = ZoneInfo("Asia/Tokyo")
POLICY = load_policy()
TENANT = Tenant("t1", "Tenant", ("a@example.jp",), service_start=date(2024, 1, 10))
_ids = count()


def correlator(**kwargs: object) -> Correlator:
    settings: dict[str, object] = dict(window=HOUR, tz=TOKYO, tenant_of=lambda utm: TENANT if utm == "u1" else None)
    settings.update(kwargs)
    return Correlator(POLICY, **settings)  # type: ignore[arg-type]


def ev(at: timedelta, level: int = 1, *, host: str = "192.168.1.10", sig: str | None = None,
       utm: str = "u1", event_id: str | None = None) -> Event:
    """An event `at` after T0 whose default-policy signal has `level` (None: a record, no signal)."""
    kind = {3: ("av", "malware", "detected"), 2: ("url", "malware", "allowed"), 1: ("url", "phishing", "blocked"),
            0: ("ips", "botnet", "blocked"), None: ("app", None, "allowed")}[level]
    return Event(
        event_id=event_id or f"e{next(_ids)}", utm_id=utm, tenant_id="t1", ts=T0 + at, type=kind[0], action=kind[2],
        direction="outbound", src_ip=host, dst_ip="203.0.113.9", received_at=T0 + at,
        threat_category=kind[1], vendor_severity=5 if level == 0 else None, signature_id=sig,
    )


def feed(c: Correlator, *events: Event) -> list[AlertChange]:
    changes: list[AlertChange] = []
    for e in events:
        changes += c.process(e, e.ts + timedelta(seconds=2))
    return changes


def test_first_signal_opens_an_alert_with_a_deterministic_id() -> None:
    c = correlator()
    e = ev(timedelta(0), 2)
    [change] = feed(c, e)
    alert = change.alert
    assert change.previous_grade is None and change.significant and change.notice is None
    assert alert.alert_id == make_alert_id("t1", "u1", "t1|u1|ip:192.168.1.10", e.event_id)
    assert (alert.grade, alert.status, alert.rule, alert.event_count) == (2, "open", "url-malware-not-blocked", 1)
    assert alert.host_ip == "192.168.1.10" and alert.categories == ("malware",)
    assert alert.recommended_action == "full_scan" and alert.version == 1
    assert alert.updated_at == e.ts + timedelta(seconds=2)


def test_records_and_no_signal_events_give_no_change() -> None:
    c = correlator()
    assert feed(c, ev(timedelta(0), None), replace(ev(timedelta(0), 1), threat_category="scan", type="ips",
                                                   direction="inbound")) == []
    assert c.alerts() == []


def test_events_of_one_host_join_while_within_the_window() -> None:
    c = correlator()
    changes = feed(c, ev(timedelta(0)), ev(59 * MIN), ev(118 * MIN))
    assert len({ch.alert.alert_id for ch in changes}) == 1
    last = changes[-1].alert
    assert (last.event_count, last.first_seen, last.last_seen, last.version) == (3, T0, T0 + 118 * MIN, 3)
    assert [ch.significant for ch in changes] == [True, False, False]


def test_an_event_exactly_one_window_after_the_last_opens_a_new_alert() -> None:
    c = correlator()
    first, second = feed(c, ev(timedelta(0)), ev(HOUR))
    assert first.alert.alert_id != second.alert.alert_id
    assert second.previous_grade is None and second.alert.event_count == 1


def test_other_hosts_and_utms_have_their_own_alerts() -> None:
    c = correlator()
    changes = feed(c, ev(timedelta(0)), ev(MIN, host="192.168.1.11"), ev(2 * MIN, utm="u2"))
    assert len({ch.alert.alert_id for ch in changes}) == 3


def test_mac_wins_over_ip_for_the_host() -> None:
    c = correlator()
    a = replace(ev(timedelta(0)), src_mac="aa:bb:cc:00:00:01")
    b = replace(ev(MIN, host="192.168.1.99"), src_mac="AA-BB-CC-00-00-01")
    first, second = feed(c, a, b)
    assert first.alert.alert_id == second.alert.alert_id and second.alert.host_mac == "aa:bb:cc:00:00:01"


def test_the_24_hour_cap_opens_a_new_alert() -> None:
    c = correlator()
    events = [ev(i * 30 * MIN) for i in range(50)]  # every 30 min for 24.5 h
    changes = feed(c, *events)
    ids = [ch.alert.alert_id for ch in changes]
    assert ids[47] == ids[0]  # 23.5 h after the first
    assert ids[48] != ids[0]  # exactly 24 h after the first
    assert changes[48].previous_grade is None and ids[49] == ids[48]


def test_late_event_within_lateness_joins_as_if_in_order() -> None:
    c = correlator()
    opened, _, late = feed(c, ev(timedelta(0), 1), ev(30 * MIN, 1), ev(20 * MIN, 3))
    assert late.alert.alert_id == opened.alert.alert_id
    assert late.alert.grade == 3 and late.alert.event_count == 3 and late.significant
    assert late.alert.last_seen == T0 + 30 * MIN


def test_late_event_exactly_at_lateness_still_counts() -> None:
    c = correlator()
    feed(c, ev(timedelta(0)), ev(30 * MIN))
    assert len(feed(c, ev(20 * MIN))) == 1 and c.late_events == 0


def test_late_event_beyond_lateness_opens_and_joins_nothing() -> None:
    c = correlator()
    feed(c, ev(timedelta(0), 1), ev(30 * MIN, 1))
    late = ev(30 * MIN - 10 * MIN - timedelta(seconds=1), 3)
    assert c.is_late(late)
    assert feed(c, late) == [] and c.late_events == 1
    assert c.alerts()[0].grade == 1
    # a late record of another host opens nothing either, and any event counts for the watermark
    feed(c, ev(2 * HOUR, None))
    assert feed(c, ev(HOUR + 49 * MIN, 3, host="10.0.0.5")) == [] and c.late_events == 2


def test_backlog_in_order_after_an_outage_is_never_late() -> None:
    c = correlator()
    changes = feed(c, *[ev(i * 5 * MIN, 1) for i in range(40)])
    assert len(changes) == 40 and c.late_events == 0


def test_late_event_before_the_first_extends_the_alert_backwards() -> None:
    c = correlator()
    opened, late = feed(c, ev(5 * MIN, 2), ev(timedelta(0), 1))
    assert late.alert.alert_id == opened.alert.alert_id and late.alert.first_seen == T0


def test_late_event_joins_the_earlier_alert_it_belongs_to() -> None:
    c = correlator()
    a, b = feed(c, ev(timedelta(0), 1), ev(HOUR + 5 * MIN, 1))
    [late] = feed(c, ev(58 * MIN, 2))
    assert late.alert.alert_id == a.alert.alert_id != b.alert.alert_id


def test_three_distinct_caution_signatures_raise_to_2() -> None:
    c = correlator()
    changes = feed(c, ev(timedelta(0), sig="s1"), ev(MIN, sig="s1"), ev(2 * MIN), ev(3 * MIN, sig="s2"))
    assert [ch.alert.grade for ch in changes] == [1, 1, 1, 1]
    [raised] = feed(c, ev(4 * MIN, sig="s3"))
    assert (raised.alert.grade, raised.previous_grade, raised.significant) == (2, 1, True)
    assert raised.alert.rule == "url-phishing" and raised.alert.recommended_action == "full_scan"


def test_signatures_of_higher_signals_do_not_count_for_the_raise() -> None:
    c = correlator()
    changes = feed(c, ev(timedelta(0), 0, sig="s1"), ev(MIN, 1, sig="s2"), ev(2 * MIN, 1, sig="s3"))
    assert changes[-1].alert.grade == 1


def test_grade_zero_only_is_under_investigation_then_a_signal_opens_it() -> None:
    c = correlator()
    first, second = feed(c, ev(timedelta(0), 0), ev(MIN, 0))
    assert (first.alert.grade, first.alert.status, first.alert.recommended_action) == (0, "investigating", "wait_investigation")
    assert not second.significant
    [opened] = feed(c, ev(2 * MIN, 1))
    assert (opened.alert.grade, opened.alert.status, opened.significant) == (1, "open", True)


def test_grade_never_falls_and_title_follows_the_highest_signal() -> None:
    c = correlator()
    changes = feed(c, ev(timedelta(0), 1), ev(MIN, 3), ev(2 * MIN, 2), ev(3 * MIN, 0))
    assert [ch.alert.grade for ch in changes] == [1, 3, 3, 3]
    assert [ch.significant for ch in changes] == [True, True, False, False]
    assert changes[-1].alert.rule == "av-infection"
    assert changes[-1].alert.categories == ("malware", "phishing", "unknown")
    assert [ch.alert.version for ch in changes] == [1, 2, 3, 4]


def test_reaching_grade_3_sets_insurance_from_that_event_day_in_tz() -> None:
    c = correlator()
    # 2025-03-01 15:30 UTC is 2025-03-02 00:30 in Tokyo
    first, raised = feed(c, ev(12 * HOUR, 1), ev(12 * HOUR + 30 * MIN, 3))
    assert first.alert.insurance_eligible_until is None
    assert raised.alert.insurance_eligible_until == date(2025, 4, 1)
    [other] = feed(c, ev(13 * HOUR, 3, utm="u2"))  # unknown tenant: no cover
    assert other.alert.grade == 3 and other.alert.insurance_eligible_until is None


def test_the_insurance_day_is_the_earliest_grade_3_event_s_whatever_the_arrival_order() -> None:
    """Two ★★★ events either side of midnight in Tokyo (15:00 UTC): the earlier one brought the alert
    to grade 3, also when it arrives second (late, within the lateness)."""
    opener, before, after = ev(12 * HOUR - 20 * MIN, 1), ev(12 * HOUR - 5 * MIN, 3), ev(12 * HOUR + 5 * MIN, 3)
    in_order, shuffled = correlator(), correlator()
    feed(in_order, opener, before, after)
    arrived = T0 + 12 * HOUR + 6 * MIN
    for e in (opener, after, before):
        shuffled.process(e, arrived)
    [expected], [got] = in_order.alerts(), shuffled.alerts()
    assert expected.insurance_eligible_until == date(2025, 3, 31)  # 2025-03-01 in Tokyo + 30 days
    assert got.insurance_eligible_until == expected.insurance_eligible_until


def verdict(alert_id: str, grade: int) -> Verdict:
    return Verdict(alert_id, grade, "note", T0 + 3 * HOUR)


def test_verdict_lowering_a_grade_and_the_grade_rising_again_by_new_evidence() -> None:
    c = correlator()
    [opened] = feed(c, ev(timedelta(0), 3))
    [lowered] = c.apply_verdict(verdict(opened.alert.alert_id, 1), T0 + 3 * HOUR)
    assert (lowered.alert.grade, lowered.previous_grade, lowered.alert.status, lowered.notice) == (1, 3, "open", None)
    assert lowered.alert.insurance_eligible_until is None and lowered.verdict is not None
    [same] = feed(c, ev(30 * MIN, 1))
    assert same.alert.grade == 1
    [again] = feed(c, ev(40 * MIN, 3))
    assert again.alert.grade == 3 and again.alert.insurance_eligible_until is not None


def test_verdict_on_an_investigation_sends_the_report() -> None:
    c = correlator()
    [opened] = feed(c, ev(timedelta(0), 0))
    [change] = c.apply_verdict(verdict(opened.alert.alert_id, 2), T0 + HOUR)
    assert (change.alert.grade, change.alert.status, change.notice) == (2, "open", "investigation-report")


def test_verdict_raising_a_grade_is_a_regrade_and_insures_at_its_day() -> None:
    c = correlator()
    [opened] = feed(c, ev(timedelta(0), 2))
    [change] = c.apply_verdict(verdict(opened.alert.alert_id, 3), T0 + 4 * HOUR)
    assert (change.alert.grade, change.notice, change.significant) == (3, "regrade", True)
    assert change.alert.insurance_eligible_until == date(2025, 3, 31)


def test_verdict_grade_zero_closes_and_closed_alert_takes_no_more_events() -> None:
    c = correlator()
    [opened] = feed(c, ev(timedelta(0), 1))
    [closed] = c.apply_verdict(verdict(opened.alert.alert_id, 0), T0 + HOUR)
    assert (closed.alert.status, closed.alert.grade, closed.notice) == ("closed", 0, None)
    assert closed.alert.recommended_action == "none"
    [new] = feed(c, ev(10 * MIN, 1))
    assert new.alert.alert_id != opened.alert.alert_id and new.previous_grade is None


def test_unknown_alert_verdict_changes_nothing() -> None:
    c = correlator()
    assert c.apply_verdict(verdict("al-nope", 2), T0) == [] and c.ignored_verdicts == 1


def test_expire_keeps_verdict_targets_for_the_retention_then_forgets() -> None:
    c = correlator()
    [opened] = feed(c, ev(timedelta(0), 1))
    feed(c, ev(5 * HOUR, None))
    c.expire(T0 + 5 * HOUR)
    assert c.state_for("u1")["joinable"] == {}
    assert c.apply_verdict(verdict(opened.alert.alert_id, 2), T0 + 6 * HOUR)
    c.expire(T0 + 6 * HOUR + timedelta(days=30, seconds=1))
    assert c.apply_verdict(verdict(opened.alert.alert_id, 3), T0 + 40 * 24 * HOUR) == []


def test_expire_moves_alerts_no_event_can_join_to_the_finished_store() -> None:
    finished: dict[str, dict] = {}
    c = correlator(finished=finished)
    first, live = feed(c, ev(timedelta(0), 1), ev(HOUR + 9 * MIN, None), ev(HOUR + 9 * MIN, 2, host="10.0.0.2"))
    c.expire(T0 + 2 * HOUR)
    assert finished == {}  # an event 10 min late (ts 0h59) could still join the first alert
    feed(c, ev(HOUR + 11 * MIN, None))
    c.expire(T0 + 2 * HOUR)
    assert list(finished) == [first.alert.alert_id]
    assert [a["alert"]["alert_id"] for a in c.state_for("u1")["alerts"]] == [live.alert.alert_id]
    assert {a.alert_id for a in c.alerts("u1")} == {first.alert.alert_id, live.alert.alert_id}
    restarted = correlator(finished=finished)  # the store survives, its index is rebuilt
    [change] = restarted.apply_verdict(verdict(first.alert.alert_id, 3), T0 + 3 * HOUR)
    assert change.notice == "regrade" and finished[first.alert.alert_id]["grade"] == 3
    restarted.expire(T0 + 3 * HOUR + timedelta(days=30))
    assert first.alert.alert_id in finished
    restarted.expire(T0 + 3 * HOUR + timedelta(days=30, seconds=1))
    assert finished == {}


def test_state_round_trips_through_json_and_continues_identically() -> None:
    stream = [ev(timedelta(0), 1, sig="a"), ev(MIN, 1, sig="b"), ev(2 * MIN, 0), ev(3 * MIN, 1, utm="u2")]
    rest = [ev(4 * MIN, 1, sig="c"), ev(HOUR + 10 * MIN, 2), ev(5 * MIN, 3, utm="u2")]
    straight = correlator()
    feed(straight, *stream)
    restarted = correlator()
    for utm_id in ("u1", "u2"):
        restarted.load_state(utm_id, orjson.loads(orjson.dumps(straight.state_for(utm_id))))
    other = Correlator.restore(POLICY, orjson.loads(orjson.dumps(straight.snapshot())), window=HOUR, tz=TOKYO,
                               tenant_of=lambda utm: TENANT)
    assert [ch.alert for ch in feed(restarted, *rest)] == [ch.alert for ch in feed(straight, *rest)]
    assert [ch.alert for ch in feed(other, *rest[:1])][0].grade == 2
    assert restarted.utm_of(straight.alerts("u2")[0].alert_id) == "u2"


def test_load_state_none_forgets_the_utm() -> None:
    c = correlator()
    [opened] = feed(c, ev(timedelta(0)))
    c.load_state("u1", None)
    assert c.alerts() == [] and c.utm_of(opened.alert.alert_id) is None


@pytest.mark.parametrize("grade", [-1, 4])
def test_verdict_with_grade_out_of_range_is_ignored(grade: int) -> None:
    c = correlator()
    [opened] = feed(c, ev(timedelta(0)))
    assert c.apply_verdict(verdict(opened.alert.alert_id, grade), T0) == []


def test_host_is_source_unless_inbound() -> None:
    out = replace(ev(MIN), src_mac="AA-BB-CC-00-11-22", dst_mac="ff:ff:ff:00:00:01")
    assert host_of(out) == ("192.168.1.10", "AA-BB-CC-00-11-22")
    assert host_of(replace(out, direction="internal")) == ("192.168.1.10", "AA-BB-CC-00-11-22")
    assert host_of(replace(out, direction="inbound")) == ("203.0.113.9", "ff:ff:ff:00:00:01")


def test_host_key_prefers_mac_and_is_scoped_to_tenant_and_utm() -> None:
    plain = ev(MIN)
    with_mac = replace(plain, src_mac="AA-BB-CC-00-11-22")
    assert host_key(with_mac) == "t1|u1|mac:aa:bb:cc:00:11:22"
    assert host_key(replace(with_mac, src_mac="aa:bb:cc:00:11:22")) == host_key(with_mac)
    assert host_key(plain) == "t1|u1|ip:192.168.1.10"
    assert host_key(replace(plain, utm_id="u2")) != host_key(plain)
    assert host_key(replace(plain, direction="inbound")) == "t1|u1|ip:203.0.113.9"
