"""Drop events seen before: the same (utm_id, event_id) within the dedup window, by arrival time."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import MutableMapping
from datetime import datetime, timedelta

BUCKETS_PER_WINDOW = 64


def dedup_key(utm_id: str, event_id: str) -> str:
    return f"{utm_id}\x1f{event_id}"


class Deduper:
    """Remembers each pair for `window` after its first sight.

    The store (key -> epoch seconds of first sight) may be a Faust table; the time buckets beside
    it are memory only, so that `expire` visits just the keys that can be due. After the store is
    restored from elsewhere, call `rebuild_index` once.
    """

    def __init__(self, window: timedelta, store: MutableMapping[str, float] | None = None) -> None:
        if window <= timedelta(0):
            raise ValueError("dedup window must be positive")
        self.window = window.total_seconds()
        self.store: MutableMapping[str, float] = {} if store is None else store
        self._bucket_seconds = self.window / BUCKETS_PER_WINDOW
        self._buckets: defaultdict[int, list[str]] = defaultdict(list)
        self.rebuild_index()

    def rebuild_index(self) -> None:
        self._buckets.clear()
        for key, seen in self.store.items():
            self._buckets[self._bucket(seen)].append(key)

    def _bucket(self, seen: float) -> int:
        return int(seen // self._bucket_seconds)

    def is_duplicate(self, utm_id: str, event_id: str, now: datetime) -> bool:
        key = dedup_key(utm_id, event_id)
        moment = now.timestamp()
        first = self.store.get(key)
        if first is not None and moment - first < self.window:
            return True
        self.store[key] = moment
        self._buckets[self._bucket(moment)].append(key)
        return False

    def expire(self, now: datetime) -> int:
        """Forget pairs first seen `window` or longer before `now`; returns how many went."""
        cutoff = now.timestamp() - self.window
        dropped = 0
        for bucket in [b for b in self._buckets if b <= self._bucket(cutoff)]:
            keys = self._buckets[bucket]
            keep = []
            for key in keys:
                seen = self.store.get(key)
                if seen is None or self._bucket(seen) != bucket:
                    continue  # gone, or re-recorded later and listed in its newer bucket
                if seen <= cutoff:
                    del self.store[key]
                    dropped += 1
                else:
                    keep.append(key)
            if keep:
                self._buckets[bucket] = keep
            else:
                del self._buckets[bucket]
        return dropped

    def __len__(self) -> int:
        return len(self.store)
