"""How the worker's process keeps its memory: glibc's malloc thresholds and Python's collector.

Both are set once, by `mimamori worker`, before and after the app is built. Malloc: by default
glibc serves a block above the mmap threshold (128 KiB at first) from mmap and returns it at once
when freed, but each such free raises the threshold to that block's size (up to 32 MiB): after the
first fetched store-rows message or producer batch is freed, every later one of those sizes comes
from the heap, whose freed space between live blocks is kept by the process. Draining a backlog, a
worker's heap grew to ~260-290 MiB with ~180-230 MiB of it free (mallinfo2 at its peak). A fixed
threshold keeps large, short-lived buffers (fetch responses, records of ~1 MB, producer batches,
the store's insert body) out of the heap: measured on one worker draining 200,000 events, peak RSS
504 -> 399 MiB, the heap's free part 176 -> 70 MiB."""
from __future__ import annotations

import ctypes
import gc
import logging

log = logging.getLogger("mimamori")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024
TRIM_THRESHOLD = 4 * 1024 * 1024


def large_blocks_mapped() -> bool:
    """Blocks of MMAP_THRESHOLD bytes or more each mmap'd (returned when freed), and the heap's top
    trimmed past TRIM_THRESHOLD free bytes; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        return False
    if not done:
        log.warning("mallopt refused the mmap threshold; large blocks stay on the heap")
    return bool(done)


GC_THRESHOLDS = (50_000, 20, 10)
"""The cyclic garbage collector's thresholds in a worker (Python's are 700, 10, 10). A batch of
10,000 records makes hundreds of thousands of container objects that live until the batch is
judged and published, so at 700 the collector ran hundreds of times a batch over the same live
objects (10-12% of the detect step's CPU in benchmarks/engine_profile's load; garbage is freed by
reference counting all the same, the collector only finds cycles)."""


def collect_less() -> None:
    """What the worker has built before it starts (modules, the app) is never garbage: it leaves
    the collector's generations (gc.freeze), and the collector runs less often (GC_THRESHOLDS)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
