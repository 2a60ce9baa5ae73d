"""Online UTMs grouped by the second of their last sign of life.

A check then visits only the seconds that have fallen out of the timeout window, so its cost
follows the number of UTMs going silent, not the number of UTMs.
"""
from __future__ import annotations

import heapq
from typing import Callable


class SilenceSchedule:
    def __init__(self) -> None:
        self._buckets: dict[int, dict[str, None]] = {}
        self._seconds: list[int] = []
        self._count = 0

    def add(self, utm_id: str, second: int) -> None:
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = {}
            heapq.heappush(self._seconds, second)
        if utm_id not in bucket:
            bucket[utm_id] = None
            self._count += 1

    def remove(self, utm_id: str, second: int) -> None:
        bucket = self._buckets.get(second)
        if bucket is None or utm_id not in bucket:
            return
        del bucket[utm_id]
        self._count -= 1
        if not bucket:
            del self._buckets[second]

    def take_silent(self, cutoff: float, is_silent: Callable[[str], bool]) -> list[str]:
        """Remove and return the UTMs last seen before `cutoff` (epoch seconds), oldest first.

        Whole seconds before the cutoff are taken as they are; only the second the cutoff falls
        in is looked at UTM by UTM, with `is_silent`.
        """
        silent: list[str] = []
        seconds, buckets = self._seconds, self._buckets
        while seconds and seconds[0] < cutoff:
            second = seconds[0]
            bucket = buckets.get(second)
            if second + 1 <= cutoff or bucket is None:
                heapq.heappop(seconds)
                if bucket is not None:
                    del buckets[second]
                    silent.extend(bucket)
                continue
            due = [utm_id for utm_id in bucket if is_silent(utm_id)]
            for utm_id in due:
                del bucket[utm_id]
            if not bucket:
                del buckets[second]
            silent.extend(due)
            break
        self._count -= len(silent)
        return silent

    def __len__(self) -> int:
        return self._count
