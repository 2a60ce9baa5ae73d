"""The store side of the worker: rows for ClickHouse, off the path of customer notices.

Every other processor publishes the rows it wants stored on the internal topic
`mimamori-store-rows` (one message per table and input partition per batch, beside its other
outputs), so a ClickHouse outage delays only the portal's data. This processor inserts them in
large batches (it lingers to gather about a second of them), one insert per table:

- ClickHouse lies outside Kafka's transactions, so before an insert it saves, per partition, the
  offset the insert reaches (`intent`, in a transaction of its own); after a crash the records
  below that offset may be in the store already, so their event rows are checked against the
  store before they are inserted again (every other table keeps the latest version of each row,
  where a repeat changes nothing); an insert's token is derived from its records;
- a message marked `recheck` gets the same check;
- offsets are committed (with any dead letters) only after every insert of the batch succeeded; an
  insert the store refuses for good (`StoreError`) dead-letters the offending messages and the
  partition goes on.

With the embedded store only the worker that holds it runs this processor.
"""
from __future__ import annotations

import collections
import time
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from agents.context import Context, log
from agents.runtime.processor import Message, Output, PartitionedProcessor, SavedState, StateWrite
from pipeline.bounds import STORE_ROWS_MESSAGE_BYTES
from pipeline.internal import StoreRows
from pipeline.io.sinks import unstored_events
from pipeline.io.store.backends import StoreError

INTENT_KEY = "\x1fintent"
LINGER_MS = 1000
MAX_MESSAGES = 50
"""At most 50 messages of at most ROWS_PER_MESSAGE rows in one batch: inserts of up to 100,000
rows, and a bounded memory (2,000 messages of 2,000 rows made the holder's RSS reach 2 GiB)."""


ROWS_PER_MESSAGE = 2000


def row_messages(topic: str, rows_by_table: dict[str, list[dict[str, Any]]],
                 *, recheck: bool = False) -> list[tuple[str, bytes | None, bytes | None, int | None]]:
    """The store-rows messages of one batch: keyed by table (so each table's rows keep their
    order), at most ROWS_PER_MESSAGE rows and STORE_ROWS_MESSAGE_BYTES each (below the topic's limit)."""
    return [(topic, table.encode(), value, None) for table, rows in rows_by_table.items()
            for value in StoreRows.values(table, rows, recheck=recheck, max_rows=ROWS_PER_MESSAGE,
                                          max_bytes=STORE_ROWS_MESSAGE_BYTES)]


class StoreHandler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.intent: dict[int, int] = {}

    async def assigned(self, partition: int, saved: SavedState) -> None:
        end = saved.keyed.get(partition, {}).get(INTENT_KEY)
        if end is not None:
            self.intent[partition] = int(end)

    async def revoked(self, partition: int) -> None:
        self.intent.pop(partition, None)

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output:
        ctx = self.ctx
        dead: list[Message] = []
        by_table: dict[str, list[tuple[ConsumerRecord, list[dict[str, Any]], bool]]] = collections.defaultdict(list)
        for record in records:
            try:
                message = StoreRows.from_record(orjson.loads(record.value or b""))
                recheck = message.recheck or record.offset < self.intent.get(record.partition, -1)
                by_table[message.table].append((record, message.rows, recheck))
            except Exception as exc:  # noqa: BLE001
                dead.append(ctx.dead_letter("store", record, exc))
        end = max(record.offset + 1 for record in records)
        await ctx.processor("store").save_now(partition, Output([], [StateWrite(-1, INTENT_KEY, end)]))
        token = _identity(records)
        for table, parts in by_table.items():
            dead.extend(await self._insert(table, parts, token))
        if self.intent.get(partition, -1) <= end:
            self.intent.pop(partition, None)
        ctx.progressed("store")
        return Output(dead)

    async def _insert(self, table: str, parts: list[tuple[ConsumerRecord, list[dict[str, Any]], bool]],
                      token: str) -> list[Message]:
        ctx = self.ctx
        rows = [row for _, part, _ in parts for row in part]
        if table == "events" and any(recheck for _, _, recheck in parts):
            rows = first_of_each_event(rows)  # the original may be in this very batch, not stored yet
            rows = await ctx.durably("events", lambda: unstored_events(ctx.store, rows))
        if not rows:
            return []
        started = time.perf_counter()
        try:
            await ctx.durably(table, lambda: ctx.store.insert(table, rows, dedup_token=f"{token}:{table}"))
        except StoreError as exc:
            if len(parts) == 1:
                log.error("store refused %d %s rows for good: %s", len(rows), table, exc)
                return [ctx.dead_letter("store", parts[0][0], exc)]
            log.warning("store refused a batch of %s rows (%s); inserting its messages one by one", table, exc)
            dead = []
            for part in parts:
                dead.extend(await self._insert(table, [part], f"{token}:{part[0].partition}/{part[0].offset}"))
            return dead
        log.debug("store: %d rows into %s", len(rows), table)
        ctx.metrics.store_latency.labels(table).observe(time.perf_counter() - started)
        ctx.metrics.store_rows.labels(table).inc(len(rows))
        ctx.metrics.row_stored(table, time.time())
        return []


def first_of_each_event(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each (utm_id, event_id): a batch that holds both a crashed batch's rows
    and their republished copies stores them once."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for row in rows:
        key = (row["utm_id"], row["event_id"])
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def _identity(records: list[ConsumerRecord]) -> str:
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for r in records:
        digest.update(f"{r.topic}/{r.partition}/{r.offset};".encode())
    return digest.hexdigest()


def register(ctx: Context) -> StoreHandler:
    side = StoreHandler(ctx)
    ctx.add_processor(processor(ctx, side))
    return side


async def register_now(ctx: Context) -> StoreHandler:
    """The store processor of a worker that got the store while running."""
    side = StoreHandler(ctx)
    await ctx.add_processor_now(processor(ctx, side))
    return side


def processor(ctx: Context, side: StoreHandler) -> PartitionedProcessor:
    topics = ctx.settings.topics
    return (PartitionedProcessor(
        name="store", group=topics.group("store"), inputs=[topics.store_rows],
        handler=side, state_topic=topics.store_state, max_records=MAX_MESSAGES,
        linger_ms=LINGER_MS, **ctx.processor_options()))
