"""Progress of long commands on stderr (count, rate, ETA), only when stderr is a terminal.

In a pipe or a file nothing is written, so scripts and logs see the commands' output unchanged.
The line is redrawn in place (carriage return) at most a few times a second and ended with a
newline when the work is done.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")


def _number(n: float) -> str:
    return f"{n:,.0f}"


def _clock_text(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """`advance(records, size)` as work is done; `total` is in the unit of `size` (bytes of a
    file) or, without sizes, in records. Silent unless `stream` is a terminal (or `enabled`)."""

    def __init__(self, label: str, *, total: float | None = None, unit: str = "lines",
                 stream: TextIO | None = None, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, every: float = 0.25) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.label, self.total, self.unit = label, total or None, unit
        self._clock, self._every = clock, every
        self.started = self._last = clock()
        self.count = 0
        self.done = 0.0
        self._drawn = False

    def advance(self, records: int = 1, size: float | None = None) -> None:
        self.count += records
        self.done += records if size is None else size
        if self.enabled:
            now = self._clock()
            if now - self._last >= self._every:
                self._last = now
                self._draw(now)

    def line(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        text = f"{self.label}: {_number(self.count)} {self.unit}, {_number(rate)}/s"
        if self.total:
            share = min(self.done / self.total, 1.0)
            text += f", {share:.0%}"
            if 0 < share < 1:
                text += f", ETA {_clock_text(elapsed * (1 - share) / share)}"
        return text

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """The final count on its own line (terminal only)."""
        if self.enabled:
            self._draw(self._clock())
            self.stream.write("\n")
            self.stream.flush()

    def track(self, items: Iterable[T], size: Callable[[T], float] | None = None) -> Iterator[T]:
        """Pass `items` through, counting each (and its size); closes at the end."""
        try:
            for item in items:
                yield item
                self.advance(1, size(item) if size else None)
        finally:
            self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def file_size(path: str) -> int | None:
    """Size of a regular file, for the ETA; None for stdin, a pipe or anything unsized."""
    if path == "-":
        return None
    try:
        return os.path.getsize(path) or None
    except OSError:
        return None
