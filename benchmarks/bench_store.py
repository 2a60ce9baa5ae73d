"""Rows/s of event inserts into chdb (full schema, materialized roll-ups included), batches of 5,000,
and the CPU they cost (every thread of the processes involved, so a loaded machine shows less).

    .venv/bin/python -m benchmarks.bench_store [--rows 200000] [--batch 5000] [--holder]

Default: the engine in this process, rows given as dicts (BatchingSink, as `replay --store` does).
--holder: the worker's way: the engine in a store holder process (pipeline/io/store/holder.py), rows
given as the JSON array the store-rows topic carries (Store.insert_json); the CPU of both processes.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.models import Event  # noqa: E402
from pipeline.io.store.backends import open_store  # noqa: E402
from pipeline.io.store.holder import open_held_store  # noqa: E402
from pipeline.io.store.migrate import apply_migrations  # noqa: E402
from pipeline.rows import event_row  # noqa: E402
from pipeline.io.store.sink import BatchingSink, batch_token  # noqa: E402
from pipeline.internal import StoreRows, json_array  # noqa: E402

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


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--holder", action="store_true", help="the engine in a store holder process, rows as JSON")
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as path:
        store = (open_held_store if args.holder else open_store)(f"chdb://{path}", create=True)
        holder = getattr(store, "pid", None)
        apply_migrations(store, "Asia/Tokyo", now)
        rows = make_rows(args.rows, now)
        if args.holder:  # as the store processor gets them: the topic's messages, each row's JSON text
            messages = [StoreRows.raw(value) for value in StoreRows.values(
                "events", rows, max_rows=2000, max_bytes=1_000_000)]
            texts = [row for message in messages for row in message.rows]
            batches = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
        cpu, held_cpu = own_cpu(), process_cpu(holder)
        started = time.perf_counter()
        if args.holder:
            for batch in batches:
                body = json_array(batch)
                store.insert_json("events", body, dedup_token=batch_token("events", [{"body": body.decode()}]))
            count = len(batches)
        else:
            sink = BatchingSink(store, "events", max_rows=args.batch, max_pending=args.rows)
            sink.add(rows, now)
            sink.flush_all(now)
            count = sink.batches
        elapsed = time.perf_counter() - started
        cpu, held_cpu = own_cpu() - cpu, process_cpu(holder) - held_cpu
        stored = store.query("SELECT count() AS n FROM events")[0]["n"]
        rolled = store.query("SELECT sum(detections) AS n FROM portal_detections_daily")[0]["n"]
        store.close()
    where = f"through a holder process (pid {holder}), rows as JSON" if args.holder else "in this process, rows as dicts"
    print(f"chdb event inserts {where}: {args.rows} rows in {count} batches of {args.batch}: {elapsed:.2f} s, "
          f"{args.rows / elapsed:,.0f} rows/s ({elapsed / count * 1000:.0f} ms per batch); CPU {cpu + held_cpu:.2f} s, "
          f"{(cpu + held_cpu) / args.rows * 1e6:.1f} us a row" + (f" (this process {cpu:.2f} s, holder {held_cpu:.2f} s)"
                                                               if args.holder else "")
          + f"; stored {stored}, detections rolled up {rolled}")
    return 0 if stored == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
