"""The mass-outage guard's view of the rest of the fleet: the other monitors' silence, and up to when
it is known.

Each monitor (one per input partition) counts its own UTMs silent for more than half the timeout;
the guard adds the other monitors' counts. Those come late (another worker's report travels through
a topic) or stale (a worker paused, starved, behind on its input, or that has just taken a partition
over has not counted yet). A count is only worth something with the time it is true for: a monitor
takes no UTM offline for a moment the whole fleet has not counted yet, since at that moment the
guard might hold (UTMs cut at one moment are quiet half a timeout before any of them is offline).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

ALWAYS = datetime.max.replace(tzinfo=timezone.utc)
"""`counted_until` of no monitor at all: nothing to wait for."""


@dataclass(frozen=True, slots=True)
class Share:
    """`silent` of `seen` UTMs of one or more monitors; `counted_until`: the time up to which that
    count holds every UTM silent for more than half the timeout (the time its silence was measured
    up to), None when not counted yet (before a first check, or within half a timeout of a
    monitor's start, when silence from before the start is not counted)."""

    silent: int
    seen: int
    counted_until: datetime | None


NOWHERE = Share(0, 0, ALWAYS)
"""No other monitor: a lone monitor judges the whole fleet itself."""


def together(shares: Iterable[Share]) -> Share:
    """The shares summed, counted up to the earliest of their times (None if one is not counted)."""
    silent = seen = 0
    until: datetime | None = ALWAYS
    for share in shares:
        silent += share.silent
        seen += share.seen
        if until is not None:
            until = None if share.counted_until is None else min(until, share.counted_until)
    return Share(silent, seen, until)
