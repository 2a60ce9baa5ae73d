"""Drop events seen before: the same (utm_id, event_id) within the dedup window, by arrival time.

The memory is compact: per UTM, each remembered event id is a 64-bit hash (CityHash64 of its UTF-8,
stable across processes, so it is also what the state log saves) beside its arrival time, 16 bytes
a pair, in sorted numpy arrays ("runs", found by binary search); only the pairs taken since the
last compaction sit in a small dict. A dict of strings took ~145-195 bytes a pair.

Exactness: a copy within the window is dropped, a new event is taken, up to a collision of two
64-bit hashes among one UTM's ids of one window (about n^2 / 2^65 for n ids: 4 * 10^-7 for a
UTM that sends 4 million ids a day).

The bound: at most `max_per_utm` pairs per UTM. A UTM that floods more distinct ids within one
window than that makes its own oldest pairs forgotten early (counted in `evicted`): a new event is
never dropped for want of room; only a copy of an id forgotten that way would be taken again.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from clickhouse_cityhash.cityhash import CityHash64

RECENT_MAX = 4096
"""Pairs a UTM keeps in its dict before they are compacted into a run."""
RECENT_SHARE = 16
"""At an expire, a UTM's dict is compacted once its oldest pair is 1/16 of the window old (a
compaction costs some numpy calls whatever its size: a UTM of a few events an hour is compacted
a few times a day)."""
MAX_RUNS = 3
MAX_PER_UTM = 4_000_000
"""Default bound of pairs per UTM (64 MB): 46 distinct ids a second for 24 h."""

_EMPTY_H = np.empty(0, dtype=np.uint64)
_EMPTY_T = np.empty(0, dtype=np.float64)


def dedup_key(utm_id: str, event_id: str) -> str:
    """The pair as the state log wrote it before hashes (read back by `Deduper.load_key`)."""
    return f"{utm_id}\x1f{event_id}"


def id_hash(event_id: str) -> int:
    return CityHash64(event_id.encode("utf-8", "surrogatepass"))  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Run:
    """Hashes sorted ascending, one arrival time each; a hash appears once per run. Kept as
    `array`s: `bisect` on them costs ~0.5 µs, where numpy's scalar searchsorted costs more and
    turns O(n) for a hash above 2^63."""

    hashes: array
    times: array

    @classmethod
    def of(cls, hashes: np.ndarray, times: np.ndarray) -> "_Run":
        return cls(array("Q", hashes.astype(np.uint64, copy=False).tobytes()),
                   array("d", times.astype(np.float64, copy=False).tobytes()))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Read-only numpy views (no copy)."""
        return np.frombuffer(self.hashes, dtype=np.uint64), np.frombuffer(self.times, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.hashes)

    def time_of(self, hashed: int) -> float | None:
        hashes = self.hashes
        i = bisect_left(hashes, hashed)
        if i < len(hashes) and hashes[i] == hashed:
            return self.times[i]  # type: ignore[no-any-return]
        return None


def _sorted_run(hashes: np.ndarray, times: np.ndarray) -> _Run:
    """A run from unsorted pairs; of a hash given twice the latest time stays."""
    order = np.lexsort((times, hashes))
    hashes, times = hashes[order], times[order]
    last = np.ones(len(hashes), dtype=bool)
    last[:-1] = hashes[1:] != hashes[:-1]
    return _Run.of(hashes[last], times[last])


def _merged(older: _Run, newer: _Run) -> _Run:
    """One run of both; where a hash is in both, the newer run's time (taken again after its window)."""
    if not len(older):
        return newer
    old_h, old_t = older.arrays()
    new_h, new_t = newer.arrays()
    at = old_h.searchsorted(new_h)
    clipped = np.minimum(at, len(old_h) - 1)
    both = (at < len(old_h)) & (old_h[clipped] == new_h)
    times = old_t.copy()
    times[at[both]] = new_t[both]
    fresh = ~both
    return _Run.of(np.insert(old_h, at[fresh], new_h[fresh]), np.insert(times, at[fresh], new_t[fresh]))


@dataclass(slots=True)
class _UtmPairs:
    recent: dict[int, float] = field(default_factory=dict)
    runs: list[_Run] = field(default_factory=list)  # oldest first; sizes shrink towards the newest
    loading: tuple[array, array] | None = None  # pairs restored, not yet sorted into a run
    oldest: float = float("inf")  # least arrival time in the runs
    recent_since: float = float("inf")  # arrival of the oldest pair in `recent`

    def time_of(self, hashed: int) -> float | None:
        """The latest arrival of this hash: the newest place that has it."""
        seen = self.recent.get(hashed)
        if seen is not None:
            return seen
        for run in reversed(self.runs):
            hashes = run.hashes
            i = bisect_left(hashes, hashed)
            if i < len(hashes) and hashes[i] == hashed:
                return run.times[i]  # type: ignore[no-any-return]
        return None

    def size(self) -> int:
        return len(self.recent) + sum(map(len, self.runs))

    def compact(self, cutoff: float, bound: int) -> tuple[int, int]:
        """Move the dict (and restored pairs) into the runs, forget pairs taken at or before `cutoff`
        and the oldest beyond `bound`. Returns (expired, evicted)."""
        expired = evicted = 0
        if self.recent or self.loading:
            hashes = np.fromiter(self.recent.keys(), dtype=np.uint64, count=len(self.recent))
            times = np.fromiter(self.recent.values(), dtype=np.float64, count=len(self.recent))
            if self.loading:
                hashes = np.concatenate((np.frombuffer(self.loading[0], dtype=np.uint64), hashes))
                times = np.concatenate((np.frombuffer(self.loading[1], dtype=np.float64), times))
                self.loading = None
            self.recent = {}
            self.recent_since = float("inf")
            if len(times):
                self.oldest = min(self.oldest, float(times.min()))
            self.runs.append(_sorted_run(hashes, times))
            # At most MAX_RUNS runs, each much larger than the next: a miss looks in every run.
            while len(self.runs) > 1 and (len(self.runs) > MAX_RUNS or len(self.runs[-2]) <= 8 * len(self.runs[-1])):
                newer = self.runs.pop()
                self.runs[-1] = _merged(self.runs[-1], newer)
        if self.oldest <= cutoff:
            kept = []
            for run in self.runs:
                hashes, times = run.arrays()
                live = times > cutoff
                expired += len(run) - int(live.sum())
                if live.all():
                    kept.append(run)
                elif live.any():
                    kept.append(_Run.of(hashes[live], times[live]))
            self.runs = kept
        total = sum(map(len, self.runs))
        if total > bound:
            whole = self.runs[0]
            for run in self.runs[1:]:
                whole = _merged(whole, run)
            hashes, times = whole.arrays()
            evicted = len(whole) - bound
            keep = np.sort(np.argpartition(times, evicted)[evicted:])
            self.runs = [_Run.of(hashes[keep], times[keep])]
        self.oldest = min((float(run.arrays()[1].min()) for run in self.runs), default=float("inf"))
        return expired, evicted


class Deduper:
    """Remembers each pair for `window` after the arrival of the copy that was taken.

    Newly remembered pairs are kept for `drain` (the driver saves them on the state log as
    `(utm_id, hash, arrival)`); `load`/`load_key` give them back after a restart, then
    `rebuild_index` sorts them in.
    """

    def __init__(self, window: timedelta, *, max_per_utm: int = MAX_PER_UTM) -> None:
        if window <= timedelta(0):
            raise ValueError("dedup window must be positive")
        if max_per_utm < 1:
            raise ValueError("max_per_utm must be positive")
        self.window = window.total_seconds()
        self.max_per_utm = max_per_utm
        self.evicted = 0
        """Pairs forgotten before their window ended because their UTM reached the bound."""
        self._utms: dict[str, _UtmPairs] = {}
        self._fresh: list[tuple[str, int, float]] = []

    def is_duplicate(self, utm_id: str, event_id: str, now: datetime) -> bool:
        hashed = id_hash(event_id)
        moment = now.timestamp()
        pairs = self._utms.get(utm_id)
        if pairs is None:
            pairs = self._utms[utm_id] = _UtmPairs()
        else:
            seen = pairs.time_of(hashed)
            if seen is not None and moment - seen < self.window:
                return True
        if not pairs.recent:
            pairs.recent_since = moment
        pairs.recent[hashed] = moment
        self._fresh.append((utm_id, hashed, moment))
        if len(pairs.recent) >= RECENT_MAX:
            self.evicted += pairs.compact(moment - self.window, self.max_per_utm)[1]
        return False

    def remembers(self, utm_id: str, event_id: str, now: datetime) -> bool:
        """Would a copy be dropped at `now` (without remembering anything)."""
        pairs = self._utms.get(utm_id)
        seen = pairs.time_of(id_hash(event_id)) if pairs is not None else None
        return seen is not None and now.timestamp() - seen < self.window

    def drain(self) -> list[tuple[str, int, float]]:
        """The pairs remembered since the last drain: (utm_id, hash, arrival epoch seconds)."""
        fresh, self._fresh = self._fresh, []
        return fresh

    def load(self, utm_id: str, hashed: int, seen: float) -> None:
        """A pair saved by `drain`; the latest arrival of a hash counts."""
        pairs = self._utms.get(utm_id)
        if pairs is None:
            pairs = self._utms[utm_id] = _UtmPairs()
        if pairs.loading is None:
            pairs.loading = (array("Q"), array("d"))
        pairs.loading[0].append(hashed)
        pairs.loading[1].append(seen)

    def load_key(self, key: str, seen: float) -> None:
        """A pair as the state log wrote it before hashes (`dedup_key`)."""
        utm_id, _, event_id = key.partition("\x1f")
        self.load(utm_id, id_hash(event_id), seen)

    def rebuild_index(self, now: datetime | None = None) -> None:
        """Sort restored pairs in (and forget those past the window at `now`, when given)."""
        cutoff = now.timestamp() - self.window if now is not None else float("-inf")
        for pairs in self._utms.values():
            if pairs.loading is not None:
                self.evicted += pairs.compact(cutoff, self.max_per_utm)[1]

    def expire(self, now: datetime) -> int:
        """Forget pairs taken `window` or longer before `now`; returns how many went."""
        cutoff = now.timestamp() - self.window
        settled = now.timestamp() - self.window / RECENT_SHARE
        dropped = 0
        for utm_id, pairs in list(self._utms.items()):
            if pairs.recent_since <= settled or pairs.loading is not None or pairs.oldest <= cutoff:
                expired, evicted = pairs.compact(cutoff, self.max_per_utm)
                dropped += expired
                self.evicted += evicted
            if not pairs.runs and not pairs.recent:
                del self._utms[utm_id]
        return dropped

    def nbytes(self) -> int:
        """Bytes of the compacted runs' arrays (the dict of recent pairs not counted)."""
        return sum(16 * len(run) for p in self._utms.values() for run in p.runs)

    def __len__(self) -> int:
        return sum(pairs.size() for pairs in self._utms.values())
