"""Pacing a broadcast: mails in chunks, with the pause after each that keeps to a rate (pure)."""
from __future__ import annotations

from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")


def paced_chunks(items: Sequence[T], rate: float) -> Iterator[tuple[Sequence[T], float]]:
    """(chunk, seconds to wait after it) so that at most `rate` items a second go out; the last
    chunk waits 0. A chunk holds one second's worth (at least one item)."""
    size = max(1, int(rate))
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        last = start + size >= len(items)
        yield chunk, 0.0 if last else len(chunk) / rate
