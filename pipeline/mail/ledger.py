"""What was delivered, and when to try again: the sender checks the ledger, sends, records."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import MutableMapping


class DeliveryLedger:
    """Message-ID -> delivery time (epoch seconds); the store may be a Faust table."""

    def __init__(self, store: MutableMapping[str, float] | None = None) -> None:
        self.store: MutableMapping[str, float] = {} if store is None else store

    def delivered(self, message_id: str) -> bool:
        return message_id in self.store

    def delivered_at(self, message_id: str) -> datetime | None:
        at = self.store.get(message_id)
        return None if at is None else datetime.fromtimestamp(at, timezone.utc)

    def record(self, message_id: str, at: datetime) -> None:
        self.store.setdefault(message_id, at.timestamp())

    def forget_before(self, horizon: datetime) -> int:
        """Drop entries older than horizon (only mails that can no longer be re-sent); returns how many."""
        old = [message_id for message_id, at in self.store.items() if at < horizon.timestamp()]
        for message_id in old:
            del self.store[message_id]
        return len(old)


@dataclass(frozen=True)
class Retrier:
    """Exponential backoff, capped, with jitter that is a hash of (key, attempt): deterministic, yet
    mails failing together do not all come back at the same instant."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=10)
    jitter: float = 0.2

    def delay(self, attempt: int, key: str = "") -> timedelta:
        raw = min(self.cap.total_seconds(), self.base.total_seconds() * 2 ** min(max(attempt, 0), 32))
        digest = hashlib.blake2b(f"{key}|{attempt}".encode(), digest_size=8).digest()
        fraction = int.from_bytes(digest, "big") / 2**64
        return timedelta(seconds=raw * (1 - self.jitter * fraction))

    def next_attempt(self, attempt: int, now: datetime, key: str = "") -> datetime:
        """When to try again after `attempt` failures so far (0 = the first try failed)."""
        return now + self.delay(attempt, key)


DEFAULT_RETRIER = Retrier()


def next_attempt(attempt: int, now: datetime, key: str = "") -> datetime:
    return DEFAULT_RETRIER.next_attempt(attempt, now, key)
