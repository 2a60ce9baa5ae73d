"""Backpressure: how much a gateway takes at once, and what it answers while the broker is down.

Plain state with the clock passed in. `Admission` bounds what the uploads in hand may hold
(their bodies' bytes; beyond: 429, come back shortly). `BrokerHealth` turns to `down` when an
acknowledgement does not come in time; while down, one request at a time is let through as a
probe and the others are answered 503 at once, instead of each waiting out the timeout.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Admission:
    limit: int
    in_flight: int = 0

    def take(self, amount: int) -> bool:
        """Room for `amount` more? A single one larger than the limit passes when nothing else is in hand."""
        if self.in_flight and self.in_flight + amount > self.limit:
            return False
        self.in_flight += amount
        return True

    def release(self, amount: int) -> None:
        self.in_flight = max(0, self.in_flight - amount)


@dataclass
class BrokerHealth:
    down_since: float | None = None
    probing: bool = False
    last_error: str | None = None

    @property
    def up(self) -> bool:
        return self.down_since is None

    def admit(self) -> bool:
        """May a request try the broker now? While down, only one at a time (the probe)."""
        if self.down_since is None:
            return True
        if self.probing:
            return False
        self.probing = True
        return True

    def acknowledged(self) -> None:
        self.down_since, self.probing, self.last_error = None, False, None

    def failed(self, now: float, error: str) -> None:
        if self.down_since is None:
            self.down_since = now
        self.probing = False
        self.last_error = error

    def finished_without_broker(self) -> None:
        """An admitted request that sent nothing (all refused): it proved nothing either way."""
        self.probing = False

    def retry_after(self, now: float) -> int:
        """Seconds a client should wait: grows with the outage, 1 to 30."""
        if self.down_since is None:
            return 1
        return int(min(30, max(1, (now - self.down_since) / 4)))
