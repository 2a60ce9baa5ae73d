"""Validation and normalization throughput: `EventValidator.check_event` over ~200k simulated events, one core.

Run: .venv/bin/python -m benchmarks.bench_validation [--events N]
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import timedelta

from pipeline.ingest import EventValidator
from pipeline.models import Event, Rejection, parse_time
from pipeline.registry_file import registry_from_data
from pipeline.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000, help="about how many events (default 200000)")
    args = parser.parse_args()
    rate = args.events / 1800
    sim = simulate(tenants=20, utms_per_tenant=5, rate=rate, duration=timedelta(minutes=30), seed=1)
    values = [line for line in sim.lines if b'"type":' in line]
    validator = EventValidator(registry_from_data(sim.registry))
    now = parse_time(sim.expected["end"])
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for value in values:
        result = validator.check_event(value, now)
        outcomes["accepted" if isinstance(result, Event) else result.reason if isinstance(result, Rejection) else "?"] += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(f"check_event: {len(values)} simulated events (mean {sum(map(len, values)) / len(values):.0f} bytes) "
          f"in {elapsed:.2f} s wall, {cpu:.2f} s CPU")
    print(f"throughput: {len(values) / elapsed:,.0f} events/s on one core")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


if __name__ == "__main__":
    main()
