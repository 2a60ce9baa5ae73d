"""Batch rows for one table and insert them idempotently: a retried batch is never taken twice."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import orjson

from pipeline.io.store.backends import Store


def batch_token(table: str, rows: list[dict[str, Any]]) -> str:
    """The insert_deduplication_token of a batch: a digest of its table and content."""
    digest = hashlib.blake2b(table.encode(), digest_size=20)
    for row in rows:
        digest.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z))  # a datetime as its text
        digest.update(b"\n")
    return digest.hexdigest()


class BatchingSink:
    """Rows wait until `max_rows` are pending or the oldest has waited `max_delay`; then `flush`.

    A batch taken by `flush` stays the same batch until it is inserted: when the store is
    unavailable the batch is kept and the error re-raised, and the retry sends the very same rows
    with the same token, so a batch the server took before the connection broke is not taken twice.
    The caller retries with backoff and stops reading input while `is_full` (backpressure).
    """

    def __init__(self, store: Store, table: str, *, max_rows: int = 5000,
                 max_delay: timedelta = timedelta(seconds=1), max_pending: int = 50_000) -> None:
        self.store = store
        self.table = table
        self.max_rows = max_rows
        self.max_delay = max_delay
        self.max_pending = max_pending
        self._rows: list[dict[str, Any]] = []
        self._in_flight: list[dict[str, Any]] | None = None
        self._oldest: datetime | None = None
        self.inserted = 0
        self.batches = 0

    @property
    def pending(self) -> int:
        return len(self._rows) + len(self._in_flight or ())

    @property
    def is_full(self) -> bool:
        return self.pending >= self.max_pending

    def add(self, rows: list[dict[str, Any]], now: datetime) -> None:
        if rows and self._oldest is None:
            self._oldest = now
        self._rows.extend(rows)

    def due(self, now: datetime) -> bool:
        if self._in_flight or len(self._rows) >= self.max_rows:
            return True
        return bool(self._rows) and self._oldest is not None and now - self._oldest >= self.max_delay

    def flush(self, now: datetime) -> int:
        """Insert one batch (at most `max_rows`); return how many rows it held."""
        if self._in_flight is None:
            if not self._rows:
                return 0
            self._in_flight = self._rows[:self.max_rows]
            del self._rows[:self.max_rows]
        batch = self._in_flight
        self.store.insert(self.table, batch, dedup_token=batch_token(self.table, batch))
        self._in_flight = None
        self._oldest = now if self._rows else None
        self.inserted += len(batch)
        self.batches += 1
        return len(batch)

    def flush_all(self, now: datetime) -> int:
        total = 0
        while self.pending:
            total += self.flush(now)
        return total
