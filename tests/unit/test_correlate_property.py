"""Order and duplicates do not change the alerts (CONTRACT.md: late events join "as if in order")."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.correlate import Correlator
from pipeline.dedup import Deduper
from pipeline.models import Alert, Event, Tenant
from pipeline.rules import load_policy

T0 = datetime(2025, 3, 1, 3, 0, tzinfo=timezone.utc)
TOKYO = ZoneInfo("Asia/Tokyo")
POLICY = load_policy()
TENANT = Tenant("t1", "Tenant", ("a@example.jp",), service_start=date(2024, 1, 10))
LATENESS = timedelta(minutes=10)
# (type, threat_category, action, direction, vendor_severity): two kinds per level, so that the
# rule and title of an alert must not depend on which of two equal signals came first.
KINDS = [
    ("app", None, "allowed", "outbound", None),
    ("ips", "scan", "blocked", "inbound", 5),
    ("ips", "botnet", "blocked", "outbound", 4), ("url", None, "detected", "outbound", 5),
    ("url", "phishing", "blocked", "outbound", None), ("av", "pua", "blocked", "outbound", None),
    ("url", "malware", "allowed", "outbound", None), ("ips", "scan", "detected", "outbound", None),
    ("av", "malware", "detected", "outbound", None), ("ips", "c2", "blocked", "outbound", None),
]
SIGNAL_KINDS = list(range(2, len(KINDS)))

RECORD_KINDS = [0, 1]
cluster = st.lists(
    st.tuples(st.integers(1, 40 * 60), st.sampled_from(SIGNAL_KINDS), st.sampled_from([None, "s1", "s2", "s3", "s4"])),
    min_size=0, max_size=6,
)
host_stream = st.lists(st.tuples(st.integers(3 * 3600, 8 * 3600), st.sampled_from(SIGNAL_KINDS), cluster),
                       min_size=1, max_size=3)
records = st.lists(st.tuples(st.integers(0, 30 * 3600), st.sampled_from(RECORD_KINDS)), max_size=8)
scenario = st.lists(st.tuples(st.sampled_from(["u1", "u2"]), host_stream, records), min_size=1, max_size=4)


def make_event(event_id: str, utm: str, at: int, kind: int, host: str, sig: str | None) -> Event:
    type_, category, action, direction, severity = KINDS[kind]
    return Event(
        event_id=event_id, utm_id=utm, tenant_id="t1", ts=T0 + timedelta(seconds=at), type=type_, action=action,
        direction=direction, src_ip=host, dst_ip="203.0.113.1", received_at=T0, threat_category=category,
        vendor_severity=severity, signature_id=sig,
    )


def build(streams: list) -> tuple[list[Event], set[str]]:
    """Events in event-time order, and the ids of the events that open an alert.

    Within an alert consecutive signals are at most 40 min apart, alerts of a host at least 3 h
    apart, so that no shuffle within the 10-minute lateness can split or merge alerts. Events
    without a signal (records, an inbound scan) fall anywhere: they only move the watermark."""
    events: list[Event] = []
    openers: set[str] = set()
    for host_index, (utm, clusters, host_records) in enumerate(streams):
        host = f"192.168.0.{host_index}"
        at = 0
        for gap, opener_kind, members in clusters:
            at += gap
            for position, (step, kind, sig) in enumerate([(0, opener_kind, "s0")] + members):
                at += step
                events.append(make_event(f"h{host_index}-{at}", utm, at, kind, host, sig))
                if position == 0:
                    openers.add(f"h{host_index}-{at}")
        for number, (at, kind) in enumerate(host_records):
            events.append(make_event(f"r{host_index}-{number}", utm, at, kind, host, None))
    events.sort(key=lambda e: (e.ts, e.event_id))
    return events, openers


def final_alerts(arrivals: list[Event]) -> dict[str, Alert]:
    dedup = Deduper(timedelta(hours=24))
    correlator = Correlator(POLICY, window=timedelta(hours=1), tz=TOKYO, tenant_of=lambda utm: TENANT,
                            lateness=LATENESS)
    for position, event in enumerate(arrivals):
        now = T0 + timedelta(seconds=position)
        if dedup.is_duplicate(event.utm_id, event.event_id, now):
            continue
        assert correlator.process(event, now) is not None
    assert correlator.late_events == 0
    return {a.alert_id: replace(a, updated_at=None) for a in correlator.alerts()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario, st.data())
def test_duplicates_and_shuffles_within_lateness_give_the_same_alerts(streams: list, data: st.DataObject) -> None:
    """Arrival order is event time plus a jitter below the 10-minute lateness (so no event is late),
    except that each alert's opening event keeps jitter 0 and all later events of its host are
    strictly later: an alert id names its opening event, so that one must still arrive first.
    Duplicates of random events are inserted after their original."""
    events, openers = build(streams)
    jitters = [0 if e.event_id in openers else data.draw(st.integers(0, 599)) for e in events]
    shuffled = [e for _, _, e in sorted(zip((e.ts + timedelta(seconds=j) for e, j in zip(events, jitters)),
                                            range(len(events)), events), key=lambda x: (x[0], x[1]))]
    for _ in range(data.draw(st.integers(0, 5))):
        original = data.draw(st.integers(0, len(shuffled) - 1))
        shuffled.insert(data.draw(st.integers(original + 1, len(shuffled))), shuffled[original])
    in_order = final_alerts(events)
    assert final_alerts(shuffled) == in_order
    assert all(a.grade in (0, 1, 2, 3) for a in in_order.values())
