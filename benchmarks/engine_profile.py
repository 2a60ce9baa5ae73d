"""The worker's per-batch Python work without Kafka, under cProfile: what the detect processor does
with a batch (`Detector.step`), then the step's store rows and their insert, in batches of 10,000.

    .venv/bin/python -m benchmarks.engine_profile [--events 100000] [--store] [--top 25]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

from benchmarks.worker_load import make_load
from pipeline.config import Settings
from pipeline.engine import Detector, InputRecord
from pipeline.registry_file import registry_from_data
from pipeline.rules import load_policy
from pipeline.io.store.backends import open_store
from pipeline.io.store.migrate import apply_migrations

BATCH = 10_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--store", action="store_true", help="insert the rows into a chdb store too")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    load = make_load(args.events, end=now - timedelta(minutes=1))
    records = [(b, "heartbeat") for _, b in load.heartbeats] + [(b, "event") for _, b in load.events]
    detector = Detector(Settings(), registry_from_data(load.registry), load_policy(), started_at=now)
    store = None
    if args.store:
        store = open_store(f"chdb://{tempfile.mkdtemp(prefix='engine-profile-')}")
        apply_migrations(store, "Asia/Tokyo", now)
    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: the machine may be shared
    started = time.perf_counter()
    profiler.enable()
    for first in range(0, len(records), BATCH):
        batch = [InputRecord(kind, value, kind, 0, offset)
                 for offset, (value, kind) in enumerate(records[first:first + BATCH], start=first)]
        rows = detector.step(batch, now).rows
        if store is not None:
            for table, table_rows in rows.items():
                if table_rows:
                    store.insert(table, table_rows, dedup_token=f"{first}:{table}")
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{len(records)} records in {elapsed:.2f} s under cProfile: {len(records) / elapsed:,.0f} records/s "
          f"({'with' if store else 'without'} chdb inserts; cProfile adds roughly 1.5-2x)")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.top)
    print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
