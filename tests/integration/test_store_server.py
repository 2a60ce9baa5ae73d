"""The server backend over the native protocol, on Debian's ClickHouse 18.16.

18.16 has no TTL, no insert_deduplication_token and old SQL, so these tests use a plain table of
their own, not the schema. Duplicates are excluded by deterministic keys: every row has a unique
`k`, the table is a ReplacingMergeTree on `k`, and the checks compare count(), uniqExact(k) and
count() FINAL with the rows produced.
"""
from __future__ import annotations

import statistics
import threading
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from pipeline.io.store.backends import ServerStore, StoreError, StoreUnavailable, open_store
from pipeline.io.store.sink import BatchingSink

pytestmark = pytest.mark.integration


def _rows(start: int, count: int) -> list[dict[str, Any]]:
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [{"k": f"k{i:07d}", "n": i, "ts": (base + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
             "day": "2026-01-01", "tags": ["a", "b"], "note": None} for i in range(start, start + count)]


def test_server_store_types_and_errors(clickhouse_server) -> None:
    store = open_store(clickhouse_server.url)
    assert isinstance(store, ServerStore)
    try:
        store.execute("DROP TABLE IF EXISTS store_types")
        store.execute("CREATE TABLE store_types (k String, n UInt32, ts DateTime, day Date, tags Array(String), "
                      "note Nullable(String)) ENGINE = MergeTree ORDER BY k")
        store.insert("store_types", _rows(0, 3), dedup_token="ignored-on-18.16")
        rows = store.query("SELECT k, n, ts, day, tags, note FROM store_types WHERE n >= %(n)s ORDER BY k", {"n": 1})
        assert [r["k"] for r in rows] == ["k0000001", "k0000002"]
        assert rows[0]["day"] == date(2026, 1, 1) and rows[0]["tags"] == ["a", "b"] and rows[0]["note"] is None
        assert not store.supports_dedup_token()
        with pytest.raises(StoreError) as bad:
            store.query("SELECT no_such_column FROM store_types")
        assert not isinstance(bad.value, StoreUnavailable)
    finally:
        store.close()


def test_sink_survives_a_20_second_outage_without_loss_or_duplicates(clickhouse_server) -> None:
    store = open_store(clickhouse_server.url)
    assert isinstance(store, ServerStore)
    store.execute("DROP TABLE IF EXISTS sink_outage")
    store.execute("CREATE TABLE sink_outage (k String, n UInt32, ts DateTime, day Date, tags Array(String), "
                  "note Nullable(String)) ENGINE = ReplacingMergeTree ORDER BY k")
    sink = BatchingSink(store, "sink_outage", max_rows=1000, max_delay=timedelta(milliseconds=200), max_pending=20_000)
    total, step, produced = 30_000, 250, 0
    latencies: list[float] = []
    failures = 0
    backoff = 0.1
    outage = threading.Thread(target=lambda: (clickhouse_server.stop(), time.sleep(20), clickhouse_server.start()))
    started = time.monotonic()
    try:
        while produced < total or sink.pending:
            now = datetime.now(timezone.utc)
            if produced < total and not sink.is_full:
                sink.add(_rows(produced, step), now)
                produced += step
                if produced == total // 4:
                    outage.start()
            if sink.due(now) or produced >= total:
                t0 = time.perf_counter()
                try:
                    sink.flush(now)
                    latencies.append(time.perf_counter() - t0)
                    backoff = 0.1
                except StoreUnavailable:
                    failures += 1
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
            time.sleep(0.02)
            assert time.monotonic() - started < 240, "the sink did not drain"
        outage.join()
        counts = store.query("SELECT count() AS rows, uniqExact(k) AS keys, min(n) AS lo, max(n) AS hi FROM sink_outage")[0]
        final = store.query("SELECT count() AS rows FROM sink_outage FINAL")[0]["rows"]
    finally:
        store.close()
    latencies.sort()
    print(f"\nsink over a 20 s outage: {total} rows in {sink.batches} inserts, {failures} failed attempts, "
          f"raw rows {counts['rows']} (a retried batch the server had taken shows here), unique keys {counts['keys']}, "
          f"FINAL {final}; insert latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms; "
          f"wall {time.monotonic() - started:.1f} s")
    assert failures > 0, "the outage was not seen: the test proved nothing"
    assert counts["keys"] == total and final == total and (counts["lo"], counts["hi"]) == (0, total - 1)
    assert sink.inserted == total
