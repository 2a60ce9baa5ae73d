"""A full dedup window in one detect worker's Deduper (issue 22: 100,000 UTMs, 24 h at 1,000
events/s, at most 500 MB RSS), in process: the state log's blocks as the worker writes them
(`encode_pairs`: 20,000 pairs each) are made with numpy and loaded the way the detect handler loads
what the runtime reads (`Deduper.load_value`, block by block), then sealed (`rebuild_index`); then
lookups of new events. Prints one JSON line: seconds to load and to seal, heap bytes a pair, bytes of
the records' files, RSS after (freed memory given back as the detect handler does; before that in
`rss_untrimmed_mib`) and at its peak, microseconds a lookup of a new event.

    .venv/bin/python -m benchmarks.dedup_day [--utms 100000] [--rate 1000] [--hours 24]

`benchmarks/state_restore.py` measures the same restore behind a real broker (for an hour of
pairs: reading a day's 1.7 GB of log from Kafka comes on top of the figures here).
"""
from __future__ import annotations

import argparse
import json
import resource
import struct
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

PAIRS_PER_BLOCK = 20_000


def _rss_mib() -> float:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024


def blocks(utms: int, pairs: int, start: float, span: float):  # type: ignore[no-untyped-def]
    """The log's blocks: pair n of UTM n % utms, arriving evenly over `span` seconds from `start`."""
    from pipeline.dedup import _MAGIC

    width = len(f"utm-{utms - 1:06d}")
    names = b"".join(f"utm-{i:06d}".encode() for i in range(utms)) * 2  # a block's UTMs are a run modulo utms
    rng = np.random.default_rng(22)
    for first in range(0, pairs, PAIRS_PER_BLOCK):
        count = min(PAIRS_PER_BLOCK, pairs - first)
        distinct = min(count, utms)
        at = first % utms
        local = (np.arange(count) % distinct).astype("<u4")
        hashes = rng.integers(0, 2**64 - 1, count, dtype=np.uint64, endpoint=True).astype("<u8")
        times = (start + (first + np.arange(count)) * (span / pairs)).astype("<f8")
        yield b"".join((_MAGIC, struct.pack("<II", distinct, count), np.full(distinct, width, dtype="<u2").tobytes(),
                        names[at * width:(at + distinct) * width], local.tobytes(), hashes.tobytes(), times.tobytes()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utms", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--hours", type=float, default=24.0)
    args = parser.parse_args()
    from pipeline.dedup import Deduper

    base = _rss_mib()
    now = datetime.now(timezone.utc)
    pairs = int(args.rate * 3600 * args.hours)
    span = 3600 * args.hours
    deduper = Deduper(timedelta(hours=24))
    horizon = now.timestamp() - deduper.window
    started = time.perf_counter()
    made = 0.0
    for block in blocks(args.utms, pairs, now.timestamp() - span, span):
        loading = time.perf_counter()
        deduper.load_value(block, horizon)
        made += time.perf_counter() - loading
    load_s = made
    started = time.perf_counter()
    deduper.rebuild_index(now)
    seal_s = time.perf_counter() - started
    untrimmed = _rss_mib()
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # as the detect handler does after a restore (agents not imported here)
    rss = _rss_mib()
    held = len(deduper)
    later = now + timedelta(seconds=1)
    started = time.process_time()
    for i in range(20_000):
        deduper.is_duplicate(f"utm-{i % args.utms:06d}", f"new-{i}", later)
    new_us = (time.process_time() - started) / 20_000 * 1e6
    print(json.dumps({
        "utms": args.utms, "pairs": pairs, "held": held, "load_s": round(load_s, 1), "seal_s": round(seal_s, 1),
        "heap_bytes_per_pair": round(deduper.nbytes() / max(1, held), 2),
        "heap_mib": round(deduper.nbytes() / 2**20, 1), "files_gib": round(deduper.file_bytes() / 2**30, 2),
        "rss_before_mib": round(base, 1), "rss_mib": round(rss, 1), "rss_untrimmed_mib": round(untrimmed, 1),
        "rss_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "lookup_new_event_us": round(new_us, 1),
    }))


if __name__ == "__main__":
    main()
