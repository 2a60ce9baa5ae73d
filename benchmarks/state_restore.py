"""Restore time and RSS of a detect partition's saved state (issue 19, point 7), on a real broker.

Fills one detect partition's state topics as a worker with `--utms` UTMs and `--hours` of dedup
pairs at `--rate` events a second would have left them (each UTM's status, and the dedup log in
batches as the worker writes it), then, in a fresh process, reads them back the way the runtime
does after an assignment (`PartitionedProcessor.read_saved`, read_committed, to the end) and
restores a Detector from them. Prints one JSON line: records and bytes read, seconds to read and to
restore, RSS after, and the figures extrapolated linearly to 24 h of pairs.

    .venv/bin/python -m benchmarks.state_restore [--utms 100000] [--rate 1000] [--hours 1]

The whole day is 86.4 million pairs at 1,000 events/s; by default one hour is written and read
(filling a topic with a day takes longer than the benchmark should), and the day extrapolated.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
PAIRS_PER_MESSAGE = 20_000
"""Pairs a log message (a binary block, as the worker writes them: ~400 KB)."""


def _rss_mib() -> float:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024


def fill(bootstrap: str, topics: object, utms: int, pairs: int, now: datetime, span: float = 3600.0) -> dict[str, int]:
    from kafka import KafkaProducer

    from pipeline.dedup import encode_pairs, id_hash
    from pipeline.step import state_key

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=50, batch_size=1 << 20,
                             max_request_size=8 << 20, compression_type=None)
    state, log = topics.detect_state, topics.detect_seen  # type: ignore[attr-defined]
    at = now.isoformat()
    written = 0
    for i in range(utms):
        life = {"tenant_id": f"t-{i // 5:06d}", "status": "online", "last_seen": at, "second": i % 60}
        value = orjson.dumps(life)
        producer.send(state, key=state_key(f"utm-{i:06d}", "life").encode(), value=value, partition=0)
        written += len(value)
    start = now.timestamp() - span
    batch: list[tuple[str, int, float]] = []
    for n in range(pairs):
        batch.append((f"utm-{n % utms:06d}", id_hash(f"evt-{n:012d}"), start + n * span / pairs))
        if len(batch) == PAIRS_PER_MESSAGE:
            value = encode_pairs(batch)
            producer.send(log, value=value, partition=0)
            written += len(value)
            batch = []
    if batch:
        value = encode_pairs(batch)
        producer.send(log, value=value, partition=0)
        written += len(value)
    producer.flush()
    producer.close()
    return {"bytes": written}


async def restore(bootstrap: str, prefix: str, utms: int) -> dict[str, float]:
    from agents.runtime.processor import PartitionedProcessor, StatelessHandler
    from pipeline.config import Settings, Topics
    from pipeline.dedup import Deduper
    from pipeline.engine import Detector
    from pipeline.models import Registry

    topics = Topics().prefixed(prefix)
    base = _rss_mib()
    processor = PartitionedProcessor(name="detect", group=topics.group("detect"), bootstrap=bootstrap,
                                     inputs=[topics.events], handler=StatelessHandler(),  # type: ignore[arg-type]
                                     state_topic=topics.detect_state, log_topic=topics.detect_seen)
    settings = Settings()
    now = datetime.now(timezone.utc)
    deduper = Deduper(settings.dedup_window)
    horizon = now.timestamp() - deduper.window
    started = time.perf_counter()
    # as the detect handler does: each log value into the Deduper as it is read (agents/processors/detect.py)
    saved = await processor.read_saved(0, lambda value: deduper.load_value(value, horizon))
    read = time.perf_counter() - started
    keyed = list(saved.keyed[0].items())
    detector = Detector(settings, Registry(), None, started_at=now, deduper=deduper)  # type: ignore[arg-type]
    started = time.perf_counter()
    detector.restore(keyed, [], now)
    restored = time.perf_counter() - started
    del saved, keyed
    import gc

    from agents.processors.detect import _give_back_freed_memory

    gc.collect()
    _give_back_freed_memory()  # as the detect handler does after a restore
    pairs = len(detector.deduper)
    return {"read_s": round(read, 2), "restore_s": round(restored, 2), "utms": detector.utm_counts["seen"],
            "pairs": pairs, "dedup_mib": round(deduper.nbytes() / 2**20, 1),
            "dedup_bytes_per_pair": round(deduper.nbytes() / max(1, pairs), 2),
            "dedup_file_mib": round(deduper.file_bytes() / 2**20, 1),
            "rss_mib": round(_rss_mib(), 1), "rss_before_mib": round(base, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utms", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--bootstrap", help="a running broker (default: one started here)")
    parser.add_argument("--restore-only", nargs=2, metavar=("BOOTSTRAP", "PREFIX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.restore_only:
        print(json.dumps(asyncio.run(restore(args.restore_only[0], args.restore_only[1], args.utms))))
        return
    from pipeline.config import Topics
    from pipeline.io.kafka_admin import ensure_topics, topic_specs
    from tests.support.services import free_port

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "KAFKA_PORT": str(free_port()), "KAFKA_CONTROLLER_PORT": str(free_port()),
               "KAFKA_DIR": str(Path(tmp) / "kafka")}
        bootstrap = args.bootstrap or f"127.0.0.1:{env['KAFKA_PORT']}"
        if not args.bootstrap:
            subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], env=env, check=True, capture_output=True)
        try:
            prefix = f"restore{int(time.time())}."
            topics = Topics().prefixed(prefix)
            ensure_topics(bootstrap, topic_specs(topics))
            pairs = int(args.rate * 3600 * args.hours)
            started = time.perf_counter()
            filled = fill(bootstrap, topics, args.utms, pairs, datetime.now(timezone.utc), 3600 * args.hours)
            fill_s = time.perf_counter() - started
            done = subprocess.run([sys.executable, "-m", "benchmarks.state_restore", "--utms", str(args.utms),
                                   "--restore-only", bootstrap, prefix], cwd=ROOT, capture_output=True, text=True,
                                  check=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            day = 24 / args.hours
            print(json.dumps({
                "utms": args.utms, "pairs": pairs, "state_mib": round(filled["bytes"] / 2**20, 1),
                "fill_s": round(fill_s, 1), **measured,
                "day_pairs": int(pairs * day),
                "day_read_s_extrapolated": round(measured["read_s"] * day, 1),
                "day_restore_s_extrapolated": round(measured["restore_s"] * day, 1),
                "day_rss_mib_extrapolated": round(measured["rss_mib"] + measured["dedup_bytes_per_pair"] * pairs * (day - 1) / 2**20, 1),
                "day_dedup_file_gib_extrapolated": round(measured["dedup_file_mib"] * day / 1024, 1),
            }))
        finally:
            if not args.bootstrap:
                subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
