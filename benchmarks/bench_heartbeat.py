"""CPU time of the UTM monitor's checks over a large fleet (issue 6: well under a second at 1,000,000).

Run: .venv/bin/python -m benchmarks.bench_heartbeat [--utms 1000000]

The fleet: UTMs heartbeating once a minute (last seen within the last minute), a share that
stopped 10-11 minutes ago and so goes offline in the measured check, and a share already offline
for the daily reminder. The previous check ran a minute earlier, as in the worker.
"""
from __future__ import annotations

import argparse
import random
import resource
import time as clock
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pipeline.heartbeat import MonitorResult, UtmMonitor

TOKYO = ZoneInfo("Asia/Tokyo")
TIMEOUT = timedelta(minutes=10)
NOW = datetime(2024, 5, 1, 8, 59, tzinfo=TOKYO).astimezone(timezone.utc)
DAILY = NOW + timedelta(minutes=1)


def build(utms: int, stopping: float, offline: float, seed: int = 6) -> UtmMonitor:
    rng = random.Random(seed)
    monitor = UtmMonitor(timeout=TIMEOUT, daily_at=time(9, 0), tz=TOKYO, started_at=NOW - timedelta(days=1),
                         mailable=lambda utm_id, tenant_id, day: True)
    n_offline, n_stopping = int(utms * offline), int(utms * stopping)
    for i in range(n_offline):
        monitor.sign_of_life(f"utm-{i:07d}", f"t-{i // 3:07d}", NOW - timedelta(hours=3))
    monitor.check(NOW - timedelta(hours=2))
    for i in range(n_offline, utms):
        ago = rng.uniform(600.5, 660) if i < n_offline + n_stopping else rng.uniform(0, 60)
        monitor.sign_of_life(f"utm-{i:07d}", f"t-{i // 3:07d}", NOW - timedelta(seconds=ago))
    monitor.check(NOW - timedelta(minutes=1))
    return monitor


def timed(label: str, run) -> MonitorResult:
    start = clock.process_time()
    result = run()
    spent = clock.process_time() - start
    print(f"{label}: {spent * 1000:.1f} ms CPU; {len(result.status_changes)} status changes, "
          f"{len(result.notices)} notices, {len(result.incidents)} incidents")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utms", type=int, default=1_000_000)
    args = parser.parse_args()

    start = clock.process_time()
    monitor = build(args.utms, stopping=0.003, offline=0.01)
    spent = clock.process_time() - start
    print(f"built {args.utms:,} UTMs ({monitor.offline_count:,} offline) with sign_of_life: "
          f"{spent:.2f} s CPU, {spent / args.utms * 1e6:.2f} us per UTM")

    timed("check, 0.3% going offline", lambda: monitor.check(NOW))
    timed("check, nothing due", lambda: monitor.check(NOW + timedelta(seconds=30)))
    timed("daily check at 09:00, offline UTMs reminded", lambda: monitor.check(DAILY))

    start = clock.process_time()
    for i in range(0, args.utms, 10):
        monitor.sign_of_life(f"utm-{i:07d}", f"t-{i // 3:07d}", DAILY + timedelta(seconds=1))
    spent = clock.process_time() - start
    print(f"sign_of_life (10% of the fleet, incl. recoveries): {spent / (args.utms // 10) * 1e6:.2f} us per call")

    outage = build(args.utms, stopping=0.3, offline=0.01, seed=7)
    timed("check, 30% going offline at once (mass outage starts)", lambda: outage.check(NOW))
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (both fleets)")


if __name__ == "__main__":
    main()
