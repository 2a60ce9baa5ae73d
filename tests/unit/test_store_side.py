"""The store processor: its guard against a crashed batch's republished rows landing in the same
insert as the originals, rows kept as JSON texts from the topic to the store, and the check
against the store of an insert tried again."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import msgspec
import orjson
import pytest

from agents.processors.store import _Insert, _Part, first_of_each_event
from pipeline.internal import StoreRows, json_array
from pipeline.io.store.backends import StoreUnavailable

pytestmark = pytest.mark.unit


def test_a_republished_event_in_the_same_batch_as_its_original_is_kept_once() -> None:
    rows = [{"utm_id": "u1", "event_id": "e1", "n": 1}, {"utm_id": "u1", "event_id": "e2", "n": 2},
            {"utm_id": "u2", "event_id": "e1", "n": 3}, {"utm_id": "u1", "event_id": "e1", "n": 4}]
    assert [r["n"] for r in first_of_each_event(rows)] == [1, 2, 3]


def test_store_rows_read_back_as_json_texts_make_the_same_rows() -> None:
    rows = [{"utm_id": "u1", "event_id": f"e{n}", "ts": datetime(2026, 12, 1, 0, 0, n, tzinfo=timezone.utc),
             "extra": {"nested": [n, "é"]}} for n in range(5)]
    values = StoreRows.values("events", rows, recheck=True, max_rows=2, max_bytes=10_000)
    read = [StoreRows.raw(value) for value in values]
    assert [len(message.rows) for message in read] == [2, 2, 1] and all(message.recheck for message in read)
    assert orjson.loads(json_array([row for message in read for row in message.rows])) == [
        {**row, "ts": row["ts"].isoformat().replace("+00:00", "Z")} for row in rows]
    with pytest.raises(ValueError):
        StoreRows.raw(b'{"table": "no_such_table", "rows": []}')
    with pytest.raises(msgspec.DecodeError):
        StoreRows.raw(b'{"table": "events", "rows": [{"utm_id": ]}')


class _Recorder:
    """A store that records the calls and answers the events check from `stored`."""

    def __init__(self, stored: set[str], fail_first: bool = False) -> None:
        self.stored = stored
        self.fail_first = fail_first
        self.calls: list[tuple[str, Any, str | None]] = []

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.calls.append(("query", None, None))
        return [{"stored": key} for key in self.stored]

    def insert(self, table: str, rows: list[dict[str, Any]], dedup_token: str | None = None) -> None:
        self.calls.append(("insert", [row["event_id"] for row in rows], dedup_token))

    def insert_json(self, table: str, body: bytes, dedup_token: str | None = None) -> None:
        self.calls.append(("insert_json", [row["event_id"] for row in orjson.loads(body)], dedup_token))
        if self.fail_first:
            self.fail_first = False
            self.stored.update(f"u1\x1f{row['event_id']}" for row in orjson.loads(body)[:1])  # taken in part?
            raise StoreUnavailable("the holder went away")


def _parts(recheck: bool = False) -> list[Any]:
    rows = [{"utm_id": "u1", "event_id": f"e{n}", "ts": "2026-12-01T00:00:00Z"} for n in range(3)]
    message = StoreRows.raw(StoreRows.values("events", rows, recheck=recheck, max_rows=10, max_bytes=10_000)[0])
    return [_Part(None, message.rows, message.recheck)]


def test_an_insert_goes_as_json_and_is_checked_against_the_store_when_tried_again() -> None:
    store = _Recorder(set())
    ctx = SimpleNamespace(store=store)
    assert _Insert(ctx, "events", _parts(), "tok:events")() == 3  # type: ignore[arg-type]
    assert store.calls == [("insert_json", ["e0", "e1", "e2"], "tok:events")]

    store = _Recorder(set(), fail_first=True)
    insert = _Insert(SimpleNamespace(store=store), "events", _parts(), "tok:events")  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        insert()
    assert insert() == 2  # after an outage in the middle of it: what the store lacks, under a token of its own
    assert store.calls[1:] == [("query", None, None), ("insert", ["e1", "e2"], "tok:events:checked-2")]


def test_a_message_marked_recheck_is_checked_first() -> None:
    store = _Recorder({"u1\x1fe0"})
    assert _Insert(SimpleNamespace(store=store), "events", _parts(recheck=True), "tok:events")() == 2  # type: ignore[arg-type]
    assert store.calls == [("query", None, None), ("insert", ["e1", "e2"], "tok:events:checked-1")]
