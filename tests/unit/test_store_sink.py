"""BatchingSink on the embedded engine: batching by count and time, idempotent retries."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.io.store.backends import Store, StoreUnavailable, open_store
from pipeline.io.store.sink import BatchingSink, batch_token

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
TABLE_SQL = ("CREATE TABLE IF NOT EXISTS {name} (k String, n UInt32) ENGINE = MergeTree ORDER BY k "
             "SETTINGS non_replicated_deduplication_window = 100")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("chdb-sink")
    opened = open_store(f"chdb://{path}")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture()
def table(store: Store, request: pytest.FixtureRequest) -> str:
    name = request.node.name
    store.execute(TABLE_SQL.format(name=name))
    return name


def rows(start: int, count: int) -> list[dict[str, Any]]:
    return [{"k": f"key-{i:05d}", "n": i} for i in range(start, start + count)]


def count(store: Store, table: str) -> int:
    return store.query(f"SELECT count() AS c FROM {table}")[0]["c"]


def test_due_by_count(store: Store, table: str) -> None:
    sink = BatchingSink(store, table, max_rows=100, max_delay=timedelta(seconds=1))
    sink.add(rows(0, 99), T0)
    assert not sink.due(T0)
    sink.add(rows(99, 151), T0)
    assert sink.due(T0)
    assert sink.flush(T0) == 100 and sink.flush(T0) == 100
    assert sink.pending == 50 and count(store, table) == 200


def test_due_by_time(store: Store, table: str) -> None:
    sink = BatchingSink(store, table, max_rows=100, max_delay=timedelta(seconds=1))
    assert not sink.due(T0) and sink.flush(T0) == 0
    sink.add(rows(0, 3), T0)
    assert not sink.due(T0 + timedelta(milliseconds=999))
    assert sink.due(T0 + timedelta(seconds=1))
    assert sink.flush(T0 + timedelta(seconds=1)) == 3
    assert not sink.due(T0 + timedelta(hours=1)) and count(store, table) == 3


def test_the_same_batch_flushed_twice_is_inserted_once(store: Store, table: str) -> None:
    batch = rows(0, 10)
    for _ in range(2):
        sink = BatchingSink(store, table)
        sink.add(batch, T0)
        assert sink.flush(T0) == 10
    assert count(store, table) == 10
    other = BatchingSink(store, table)
    other.add(rows(10, 10), T0)
    other.flush(T0)
    assert count(store, table) == 20


class FailingOnce:
    """The real store behind a connection that breaks after the server took the insert:
    the one failure chdb cannot produce by itself."""

    def __init__(self, store: Store) -> None:
        self.store, self.failures, self.tokens = store, 1, []

    def insert(self, table: str, rows: list[dict[str, Any]], dedup_token: str | None = None) -> None:
        self.tokens.append(dedup_token)
        self.store.insert(table, rows, dedup_token)
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("connection reset after insert")


def test_a_retry_after_a_lost_answer_sends_the_same_batch_and_adds_nothing(store: Store, table: str) -> None:
    flaky = FailingOnce(store)
    sink = BatchingSink(flaky, table, max_rows=50)  # type: ignore[arg-type]
    sink.add(rows(0, 30), T0)
    with pytest.raises(StoreUnavailable):
        sink.flush(T0)
    assert sink.pending == 30 and sink.due(T0)
    sink.add(rows(30, 10), T0)  # arrives while the batch waits: not part of the retried batch
    assert sink.flush(T0) == 30
    assert flaky.tokens[0] == flaky.tokens[1] == batch_token(table, rows(0, 30))
    assert sink.flush(T0) == 10
    assert count(store, table) == 40
    assert store.query(f"SELECT uniqExact(k) AS u FROM {table}")[0]["u"] == 40


def test_backpressure_bound(store: Store, table: str) -> None:
    sink = BatchingSink(store, table, max_rows=10, max_pending=25)
    sink.add(rows(0, 24), T0)
    assert not sink.is_full
    sink.add(rows(24, 1), T0)
    assert sink.is_full
    assert sink.flush_all(T0) == 25 and not sink.is_full and count(store, table) == 25


def test_token_depends_on_table_and_content() -> None:
    assert batch_token("a", rows(0, 2)) == batch_token("a", rows(0, 2))
    assert batch_token("a", rows(0, 2)) != batch_token("b", rows(0, 2))
    assert batch_token("a", rows(0, 2)) != batch_token("a", rows(1, 2))
