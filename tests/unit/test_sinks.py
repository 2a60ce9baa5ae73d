"""Rows of the pipeline's outputs, and the recovery check that keeps re-read events out of the store."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipeline.models import Event
from pipeline.io.sinks import unstored_events
from pipeline.io.store.backends import open_store
from pipeline.io.store.migrate import apply_migrations
from pipeline.rows import event_row

NOW = datetime(2026, 11, 20, 1, 0, 0, 500_000, tzinfo=timezone.utc)


def rows_of(count: int, utm_id: str = "u1") -> list[dict]:
    return [event_row(Event(f"e{i}", utm_id, "t1", NOW - timedelta(seconds=i, microseconds=i * 1234), "web",
                            "allowed", "outbound", "10.0.0.1", "192.0.2.1", NOW), None, None)
            for i in range(count)]


def test_only_events_not_yet_stored_are_left(tmp_path: Path) -> None:
    store = open_store(f"chdb://{tmp_path / 'ch'}", create=True)
    try:
        apply_migrations(store, "Asia/Tokyo", NOW)
        rows = rows_of(10) + rows_of(3, utm_id="u2")
        store.insert("events", rows[:6] + rows[10:11])
        left = unstored_events(store, rows)
        assert [(r["utm_id"], r["event_id"]) for r in left] == (
            [("u1", f"e{i}") for i in range(6, 10)] + [("u2", "e1"), ("u2", "e2")])
        assert unstored_events(store, []) == []
    finally:
        store.close()
