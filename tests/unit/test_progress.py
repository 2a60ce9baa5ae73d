"""Progress on stderr: count, rate and ETA on a terminal; nothing in a pipe."""
from __future__ import annotations

import io

from mimamori.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_sees_count_rate_share_and_eta_redrawn_in_place() -> None:
    out, clock = Terminal(), Clock()
    progress = Progress("replay", total=1000, stream=out, clock=clock)
    for _ in range(4):
        clock.now += 1.0
        progress.advance(50, size=100)
    progress.close()
    text = out.getvalue()
    assert text.startswith("\rreplay: 50 lines, 50/s, 10%, ETA 0:09\x1b[K")
    assert "\rreplay: 200 lines, 50/s, 40%, ETA 0:06\x1b[K" in text
    assert text.endswith("\x1b[K\n") and text.count("\n") == 1


def test_redraws_are_limited_to_a_few_a_second() -> None:
    out, clock = Terminal(), Clock()
    progress = Progress("produce", stream=out, clock=clock, every=0.25)
    for _ in range(1000):
        clock.now += 0.001
        progress.advance()
    assert 3 <= out.getvalue().count("\r") <= 4
    assert progress.count == 1000


def test_a_pipe_gets_nothing() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("simulate", total=10, stream=out, clock=clock)
    for _ in progress.track(range(10)):
        clock.now += 1
    assert out.getvalue() == "" and progress.count == 10


def test_without_a_total_there_is_no_eta_and_track_counts_sizes() -> None:
    out, clock = Terminal(), Clock()
    progress = Progress("produce", stream=out, clock=clock, unit="records")
    for _ in progress.track([b"ab", b"cde"], size=len):
        clock.now += 1
    assert progress.done == 5
    assert out.getvalue().rstrip("\n").endswith("produce: 2 records, 1/s\x1b[K")
