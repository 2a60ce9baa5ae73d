"""How the worker's process asks glibc's malloc to hand memory back.

By default glibc serves a block above the mmap threshold (128 KiB at first) from mmap and returns it
at once when freed, but each such free raises the threshold to that block's size (up to 32 MiB): after
the first fetched store-rows message or producer batch is freed, every later one of those sizes comes
from the heap, whose freed space between live blocks is kept by the process. Draining a backlog, a
worker's heap grew to ~260-290 MiB with ~180-230 MiB of it free (mallinfo2 at its peak). A fixed
threshold keeps large, short-lived buffers (fetch responses, records of ~1 MB, producer batches,
the store's insert body) out of the heap: measured on one worker draining 200,000 events, peak RSS
504 -> 399 MiB, the heap's free part 176 -> 70 MiB."""
from __future__ import annotations

import ctypes
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
