"""When to try a mail again: backoff with a deterministic jitter, for the sender's deliveries
(pipeline.mail.delivery, whose DeliveryBook is the ledger of what was delivered)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta


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
