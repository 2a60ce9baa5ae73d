"""RSS with the state of many UTMs: a registry of `--utms` UTMs and a Detector that has taken a
heartbeat (and, with --events, a few events) from each of them, in a process of its own.

    .venv/bin/python -m benchmarks.state_rss [--utms 100000] [--events 2] [--dedup-pairs 10000000]

Prints one JSON line: peak and current RSS in MiB after the imports, after the registry, and after
the Detector took everything (the worker holds the same three: code, registry mirror, Detector).
"""
from __future__ import annotations

import argparse
import gc
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import orjson

from pipeline.config import Settings
from pipeline.engine import Detector, InputRecord
from pipeline.models import Registry
from pipeline.rules import load_policy
from pipeline.simulate import SimUtm, _wire_time, background_event, build_registry

BATCH = 10_000


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def registry_data(utms: int, now: datetime) -> dict[str, Any]:
    """Tenants of five UTMs each, as a registry file has them (the simulator's, without its hosts)."""
    return {"tenants": list(_tenants(utms, now)), "utms": list(_utms(utms, now))}


def _tenants(utms: int, now: datetime) -> Iterator[dict[str, Any]]:
    start = (now - timedelta(days=200)).date().isoformat()
    for i in range((utms + 4) // 5):
        yield {"tenant_id": f"t-{i:06d}", "name": f"Customer {i} 株式会社", "notify_emails": [f"security@t{i}.example.jp"],
               "locale": "ja", "service_start": start, "contract_end": None, "industry": "retail",
               "region": "kanto", "size_band": "10-49", "active": True}


def _utms(utms: int, now: datetime) -> Iterator[dict[str, Any]]:
    start = (now - timedelta(days=200)).date().isoformat()
    for n in range(utms):
        yield {"utm_id": f"utm-{n // 5:06d}-{n % 5:02d}", "tenant_id": f"t-{n // 5:06d}", "model": "ZA-SA3500G",
               "registered_at": f"{start}T00:00:00Z", "active": True}


def registry_as_followed(utms: int, now: datetime) -> Registry:
    """The registry as a worker's follower builds it: each record as its topic carries it (JSON),
    checked and applied one by one (agents.processors.registry.RegistryBooks), made as it goes, so
    that no file-shaped copy of the whole registry is counted as the registry (building it from such
    a copy printed 73 MiB for 100,000 UTMs)."""
    from agents.processors.registry import RegistryBooks
    from pipeline.io.metrics import Metrics

    registry = Registry()
    books = RegistryBooks(registry, Metrics())
    for tenant in _tenants(utms, now):
        books.tenants(tenant["tenant_id"].encode(), orjson.dumps(tenant))
    for utm in _utms(utms, now):
        books.utms(utm["utm_id"].encode(), orjson.dumps(utm))
    return registry


def dedup_figures(detector: Detector, utm_ids: list[str], pairs: int, now: datetime) -> dict[str, float]:
    """The detector's dedup memory with `pairs` (utm_id, event_id) pairs taken over the last 24 h,
    spread over the UTMs, with the worker's upkeep every 5 minutes and the new pairs drained to
    the state log after each batch: RSS grown, and per pair."""
    before = rss_mib()[0]
    start, step, upkeep = now - timedelta(hours=24), 86400 / pairs, 0.0
    dedup = detector.deduper
    for n in range(pairs):
        at = n * step
        if at >= upkeep:
            dedup.expire(start + timedelta(seconds=at))
            upkeep = at + 300
        dedup.is_duplicate(utm_ids[n % len(utm_ids)], f"{n:016x}-{n % 7919:04d}", start + timedelta(seconds=at))
        if n % BATCH == 0:
            dedup.drain()
    dedup.drain()
    gc.collect()
    grown = rss_mib()[0] - before
    return {"dedup_pairs": float(len(dedup)), "dedup_mib": grown,
            "dedup_bytes_per_pair": grown * 2**20 / max(1, len(dedup))}


def measure(utms: int, events: int, dedup_pairs: int = 0) -> dict[str, float]:
    figures: dict[str, float] = {}
    figures["imports_mib"] = rss_mib()[0]
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    registry = registry_as_followed(utms, now)
    live = [(u.utm_id, u.tenant_id) for u in registry.utms.values()]
    one_host = build_registry(rng, 1, 1, now)[1][0]
    gc.collect()
    figures["registry_mib"] = rss_mib()[0]
    detector = Detector(Settings(), registry, load_policy(), started_at=now - timedelta(minutes=5))
    taken = rejected = 0
    for first in range(0, len(live), BATCH // (1 + events)):
        records: list[InputRecord] = []
        for utm_id, tenant_id in live[first:first + BATCH // (1 + events)]:
            beat = {"v": 1, "utm_id": utm_id, "ts": _wire_time(now - timedelta(seconds=30)), "firmware": "7.2.1",
                    "signatures_version": "2026.11.20.01", "uptime_s": 86400}
            records.append(InputRecord("heartbeat", orjson.dumps(beat), "utm.heartbeats", 0, taken + len(records)))
            for i in range(events):
                utm = SimUtm(utm_id, tenant_id, one_host.hosts, next_event_no=i)
                event = background_event(rng, utm, now - timedelta(seconds=60 - i))
                records.append(InputRecord("event", orjson.dumps(event), "utm.events", 0, taken + len(records)))
        step = detector.step(records, now)
        rejected += len(step.outputs.rejections)
        taken += len(records)
        del step, records
    gc.collect()
    current, peak = rss_mib()
    figures.update(detector_mib=current, peak_mib=peak, utms=float(detector.utm_counts["seen"]),
                   records=float(taken), rejected=float(rejected))
    if dedup_pairs:
        figures.update(dedup_figures(detector, [utm_id for utm_id, _ in live], dedup_pairs, now))
    del live
    measure.kept = (detector, registry)  # type: ignore[attr-defined]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utms", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=0, help="events per UTM besides its heartbeat")
    parser.add_argument("--dedup-pairs", type=int, default=0,
                        help="then (utm_id, event_id) pairs of the last 24 h in the dedup memory: its RSS and bytes a pair")
    args = parser.parse_args()
    print(orjson.dumps(measure(args.utms, args.events, args.dedup_pairs)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
