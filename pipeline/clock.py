"""Time is passed into the logic, never read inside it: these are the clocks that pass it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that moves only when told to: for tests and for replay, which follows event time."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        self._now = value.astimezone(timezone.utc)

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


class ShiftedClock:
    """The wall clock moved to start at `start`: it runs at wall speed from there. For rehearsals
    and tests of what a worker does at a given time (`mimamori worker --clock-start`)."""

    def __init__(self, start: datetime, wall: Clock | None = None) -> None:
        self._wall = wall or SystemClock()
        self._offset = start.astimezone(timezone.utc) - self._wall.now()

    def now(self) -> datetime:
        return self._wall.now() + self._offset
