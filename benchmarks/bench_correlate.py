"""Throughput of the detection path: Deduper + Policy.signal + Correlator.process.

    .venv/bin/python benchmarks/bench_correlate.py [EVENTS]

~200k events over one simulated day from 100 UTMs of 30 hosts, with the once-a-minute expiry: mostly app/web records and
threat events without a signal, some threats, 1% duplicates. Also prints the memory one
Deduper entry takes and the size of a UTM's JSON state.
"""
from __future__ import annotations

import random
import sys
import time
import tracemalloc
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson

from pipeline.correlate import Correlator
from pipeline.dedup import Deduper
from pipeline.models import Event, Tenant
from pipeline.rules import load_policy

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
# (weight, type, threat_category, action, direction, vendor_severity)
MIX = [
    (55, "app", None, "allowed", "outbound", None),
    (15, "web", None, "allowed", "outbound", None),
    (12, "ips", "scan", "blocked", "inbound", 2),
    (5, "ips", "exploit", "blocked", "inbound", 3),
    (4, "url", "phishing", "blocked", "outbound", 3),
    (3, "av", "malware", "blocked", "inbound", 4),
    (3, "ips", "botnet", "blocked", "inbound", 2),
    (1, "ips", None, "detected", "outbound", 5),
    (1, "url", "malware", "allowed", "outbound", 4),
    (0.5, "av", "malware", "detected", "inbound", 5),
    (0.5, "ips", "c2", "detected", "outbound", 5),
]


def make_events(count: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    weights = [m[0] for m in MIX]
    events = []
    step = 86400 / count
    for number in range(count):
        _, type_, category, action, direction, severity = rng.choices(MIX, weights)[0]
        utm = f"utm-{rng.randrange(100):03d}"
        host = f"192.168.{rng.randrange(2)}.{rng.randrange(15) + 10}"
        ts = T0 + timedelta(seconds=number * step + rng.uniform(-120, 0))
        src, dst = (host, "203.0.113.7") if direction != "inbound" else ("198.51.100.3", host)
        events.append(Event(
            event_id=f"{utm}-{number}", utm_id=utm, tenant_id=f"t-{utm}", ts=ts, type=type_, action=action,
            direction=direction, src_ip=src, dst_ip=dst, received_at=ts, threat_category=category,
            vendor_severity=severity, signature_id=f"sig-{rng.randrange(40)}" if category else None,
            app_name="LINE" if type_ == "app" else None,
        ))
        if rng.random() < 0.01:
            events.append(replace(events[-1]))
    return events


def dedup_bytes_per_entry(entries: int = 1_000_000, utms: int = 1_000) -> tuple[float, float]:
    """(bytes a pair while taken, bytes a pair once compacted) over `entries` pairs of `utms` UTMs."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    dedup = Deduper(timedelta(hours=24))
    for number in range(entries):
        dedup.is_duplicate(f"utm-{number % utms:06d}", f"evt-{number:012d}", T0 + timedelta(seconds=number / 10))
    taken = tracemalloc.get_traced_memory()[0] - before
    dedup.drain()  # what the driver does after each step (the pairs go to the state log)
    dedup.expire(T0 + timedelta(seconds=entries / 10))  # the upkeep: every pair compacted
    compacted = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return taken / entries, compacted / entries


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    events = make_events(count)
    policy = load_policy()
    tenant = Tenant("t", "T", ("a@example.jp",), service_start=date(2024, 1, 1))
    dedup = Deduper(timedelta(hours=24))
    correlator = Correlator(policy, window=timedelta(hours=1), tz=ZoneInfo("Asia/Tokyo"),
                            tenant_of=lambda utm: replace(tenant, tenant_id=f"t-{utm}"))
    duplicates = changes = significant = 0
    next_upkeep = T0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for event in events:
        now = event.received_at
        if now >= next_upkeep:  # as the worker's timer would, once a minute
            dedup.expire(now)
            dedup.drain()  # the new pairs, as a driver takes them for the state log after each step
            correlator.expire(now)
            next_upkeep = now + timedelta(minutes=1)
        if dedup.is_duplicate(event.utm_id, event.event_id, now):
            duplicates += 1
            continue
        for change in correlator.process(event, now):
            changes += 1
            significant += change.significant
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    grades = [a.grade for a in correlator.alerts()]
    print(f"events {len(events)}  duplicates {duplicates}  late {correlator.late_events}  "
          f"alert changes {changes} (significant {significant})  alerts {len(grades)} "
          f"by grade {[grades.count(g) for g in range(4)]}")
    print(f"throughput {len(events) / elapsed:,.0f} events/s ({elapsed:.2f} s, one core; "
          f"{cpu / len(events) * 1e6:.1f} µs CPU an event)")
    states = [orjson.dumps(correlator.state_for(u)) for u in {e.utm_id for e in events}]
    print(f"finished alerts kept for verdicts: {len(correlator.finished):,}")
    print(f"live UTM state JSON: mean {sum(map(len, states)) / len(states):,.0f} B, max {max(map(len, states)):,} B")
    started = time.perf_counter()
    for utm_id in {e.utm_id for e in events}:
        correlator.load_state(utm_id, orjson.loads(orjson.dumps(correlator.state_for(utm_id))))
    print(f"state round trip of all UTMs: {time.perf_counter() - started:.3f} s")
    started = time.perf_counter()
    expired = dedup.expire(T0 + timedelta(hours=48))
    print(f"dedup expire of {expired:,} entries: {time.perf_counter() - started:.3f} s")
    taken, compacted = dedup_bytes_per_entry()
    print(f"dedup memory (1,000,000 pairs of 1,000 UTMs): {compacted:.1f} B a pair once compacted "
          f"(the upkeep), {taken:.1f} B a pair before (recent dicts and the undrained log)")


if __name__ == "__main__":
    main()
