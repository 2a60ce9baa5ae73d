"""Rows/s of event inserts into chdb (full schema, materialized roll-ups included), batches of 5,000.

    .venv/bin/python benchmarks/bench_store.py [--rows 200000] [--batch 5000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.models import Event  # noqa: E402
from pipeline.io.store.backends import open_store  # noqa: E402
from pipeline.io.store.migrate import apply_migrations  # noqa: E402
from pipeline.rows import event_row  # noqa: E402
from pipeline.io.store.sink import BatchingSink  # noqa: E402

TYPES = ("av", "ips", "url", "app", "web")


def make_rows(count: int, now: datetime) -> list[dict]:
    rows = []
    for i in range(count):
        ts = now - timedelta(seconds=(count - i) * 10)
        type_ = TYPES[i % 5]
        event = Event(
            event_id=f"e{i:09d}", utm_id=f"u{i % 300:04d}", tenant_id=f"t{i % 100:03d}", ts=ts, type=type_,
            action=("blocked", "detected", "allowed")[i % 3], direction="outbound", src_ip=f"10.0.{i % 250}.{i % 200}",
            dst_ip="198.51.100.7", received_at=ts, threat_category=("malware", "phishing", "scan", None)[i % 4],
            signature_id=str(i % 977), url=f"http://site{i % 5000}.example/p" if type_ == "url" else None,
            web_category="news" if type_ == "web" else None, app_name="zoom" if type_ == "app" else None,
        )
        rows.append(event_row(event, i % 4 if type_ in ("av", "ips", "url") else None, f"a{i // 7}" if i % 3 else None))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as path:
        store = open_store(f"chdb://{path}")
        apply_migrations(store, "Asia/Tokyo", now)
        rows = make_rows(args.rows, now)
        sink = BatchingSink(store, "events", max_rows=args.batch, max_pending=args.rows)
        sink.add(rows, now)
        started = time.perf_counter()
        sink.flush_all(now)
        elapsed = time.perf_counter() - started
        stored = store.query("SELECT count() AS n FROM events")[0]["n"]
        rolled = store.query("SELECT sum(detections) AS n FROM portal_detections_daily")[0]["n"]
        store.close()
    print(f"chdb event inserts: {args.rows} rows in {sink.batches} batches of {args.batch}: {elapsed:.2f} s, "
          f"{args.rows / elapsed:,.0f} rows/s ({elapsed / sink.batches * 1000:.0f} ms per batch); "
          f"stored {stored}, detections rolled up {rolled}")
    return 0 if stored == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
