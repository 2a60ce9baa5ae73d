"""A seeded load for the whole-worker benchmark: realistic UTM traffic ending just before `end`.

Mostly web/app records and low-signal inbound noise (`pipeline.simulate.background_event`), about
1% threat events from the simulator's incident scripts, about 1% byte-for-byte resends, and one
heartbeat a minute from every live UTM.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from pipeline.simulate import HEARTBEAT_EVERY, SCRIPTS, SimUtm, _wire_time, background_event, build_registry

THREAT_SHARE = 0.01
DUPLICATE_SHARE = 0.01


@dataclass
class Load:
    registry: dict[str, Any]
    events: list[tuple[bytes, bytes]]
    """(utm_id key, line) of every event line, resends included, in send order."""
    heartbeats: list[tuple[bytes, bytes]]
    counts: dict[str, int] = field(default_factory=dict)


def make_load(events: int, *, end: datetime, duration: timedelta = timedelta(hours=1), tenants: int = 40,
              utms_per_tenant: int = 5, seed: int = 11) -> Load:
    """`events` event lines in all (resends included) over `duration` ending at `end`."""
    rng = random.Random(seed)
    start = end - duration
    registry, utms = build_registry(rng, tenants, utms_per_tenant, start)
    live = [u for u in utms if u.active and u.serviced]
    scripts = [script for script, _, _ in SCRIPTS.values()]
    unique_target = events - round(events * DUPLICATE_SHARE)
    script_chance = THREAT_SHARE / 1.8  # the five incident scripts emit 1.8 events on average
    timed: list[tuple[datetime, int, bytes, bytes]] = []
    threats = 0
    step = duration / unique_target
    at = start
    while len(timed) < unique_target:
        at += step
        utm = rng.choice(live)
        if rng.random() < script_chance:
            host = rng.choice(utm.hosts)
            for when, record in rng.choice(scripts)(utm, host, min(at, end - timedelta(minutes=6)), rng):
                timed.append((when, len(timed), utm.utm_id.encode(), orjson.dumps(record)))
                threats += 1
            continue
        timed.append((at, len(timed), utm.utm_id.encode(), orjson.dumps(background_event(rng, utm, at))))
    unique = len(timed)
    for when, _, key, value in rng.sample(timed, events - unique):
        timed.append((min(when + timedelta(seconds=rng.randrange(5, 90)), end), len(timed), key, value))
    timed.sort()
    return Load(registry=registry, events=[(key, value) for _, _, key, value in timed],
                heartbeats=_heartbeats(rng, live, start, end),
                counts={"events": len(timed), "unique_events": unique, "threat_events": threats,
                        "duplicates": len(timed) - unique, "tenants": tenants, "utms": len(live)})


def _heartbeats(rng: random.Random, live: list[SimUtm], start: datetime, end: datetime) -> list[tuple[bytes, bytes]]:
    beats: list[tuple[datetime, bytes, bytes]] = []
    for utm in live:
        at = start + timedelta(seconds=rng.randrange(60))
        while at < end:
            beat = {"v": 1, "utm_id": utm.utm_id, "ts": _wire_time(at), "firmware": "7.2.1",
                    "signatures_version": "2026.11.20.01", "uptime_s": 86400 + int((at - start).total_seconds())}
            beats.append((at, utm.utm_id.encode(), orjson.dumps(beat)))
            at += HEARTBEAT_EVERY
    beats.sort()
    return [(key, value) for _, key, value in beats]
