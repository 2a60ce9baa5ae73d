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
- a message marked `recheck` gets the same check, and so does an insert tried again after the store
  was unavailable during it (it may have been taken), its rows found missing inserted under a token
  of their own;
- the rows stay JSON from the topic to the store (checked well-formed, never made Python objects
  but for a check against the store);
- offsets are committed (with any dead letters) only after every insert of the batch succeeded; an
  insert the store refuses for good (`StoreError`) dead-letters the offending messages and the
  partition goes on.

With the embedded store only the worker that holds it runs this processor.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from aiokafka import ConsumerRecord

from agents.context import Context, log
from agents.runtime.processor import Message, Output, PartitionedProcessor, SavedState, StateWrite
from pipeline.bounds import STORE_ROWS_MESSAGE_BYTES
from pipeline.internal import StoreRows, json_array
from pipeline.io.sinks import unstored_events
from pipeline.io.store.backends import StoreError

INTENT_KEY = "\x1fintent"
LINGER_MS = 1000
MAX_MESSAGES = 16
"""At most 16 messages of at most ROWS_PER_MESSAGE rows in one batch: inserts of up to 32,000 rows,
and a bounded memory (2,000 messages of 2,000 rows made the holder's RSS reach 2 GiB; 50 messages,
a batch held as its records and as the insert's body, were ~100 MB of a worker's ~500 MiB peak while
draining)."""


ROWS_PER_MESSAGE = 2000


def row_messages(topic: str, rows_by_table: dict[str, list[dict[str, Any]]],
                 *, recheck: bool = False) -> list[tuple[str, bytes | None, bytes | None, int | None]]:
    """The store-rows messages of one batch: keyed by table (so each table's rows keep their
    order), at most ROWS_PER_MESSAGE rows and STORE_ROWS_MESSAGE_BYTES each (below the topic's limit)."""
    return [(topic, table.encode(), value, None) for table, rows in rows_by_table.items()
            for value in StoreRows.values(table, rows, recheck=recheck, max_rows=ROWS_PER_MESSAGE,
                                          max_bytes=STORE_ROWS_MESSAGE_BYTES)]


def row_text_messages(topic: str, texts_by_table: dict[str, list[bytes]]) -> list[tuple[str, bytes | None, bytes | None, int | None]]:
    """`row_messages` of rows given as their JSON texts (the detect handler's, `DetectorStep.row_texts`)."""
    return [(topic, table.encode(), value, None) for table, texts in texts_by_table.items()
            for value in StoreRows.text_values(table, texts, max_rows=ROWS_PER_MESSAGE,
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
        by_table: dict[str, list[_Part]] = collections.defaultdict(list)
        for record in records:
            try:
                message = StoreRows.raw(record.value or b"")  # the rows stay JSON: the engine parses them
                recheck = message.recheck or record.offset < self.intent.get(record.partition, -1)
                by_table[message.table].append(_Part(record, message.rows, recheck))
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

    async def _insert(self, table: str, parts: list[_Part], token: str) -> list[Message]:
        ctx = self.ctx
        if not any(part.rows for part in parts):
            return []
        started = time.perf_counter()
        try:
            stored = await ctx.durably(table, _Insert(ctx, table, parts, f"{token}:{table}"))
        except StoreError as exc:
            if len(parts) == 1:
                log.error("store refused %d %s rows for good: %s", len(parts[0].rows), table, exc)
                return [ctx.dead_letter("store", parts[0].record, exc)]
            log.warning("store refused a batch of %s rows (%s); inserting its messages one by one", table, exc)
            dead = []
            for part in parts:
                dead.extend(await self._insert(table, [part], f"{token}:{part.record.partition}/{part.record.offset}"))
            return dead
        log.debug("store: %d rows into %s", stored, table)
        ctx.metrics.store_latency.labels(table).observe(time.perf_counter() - started)
        ctx.metrics.store_rows.labels(table).inc(stored)
        ctx.metrics.row_stored(table, time.time())
        return []


@dataclass(frozen=True, slots=True)
class _Part:
    """One store-rows message of a batch: its record, its rows (JSON texts), whether to recheck them."""

    record: ConsumerRecord
    rows: list[msgspec.Raw]
    recheck: bool


class _Insert:
    """One table's insert of a batch, run by `durably` (again after the store was unavailable).

    The rows go as the JSON they came in (Store.insert_json), under a token derived from the
    batch's records. Event rows are checked against the store first, and only those not found are
    inserted, under a token of their own, when they may be there already: a message marked
    `recheck` or below the partition's intent (a crashed batch), and every attempt after the first
    (the store went away during the insert, which may or may not have been taken: an embedded
    store's holder killed while it wrote). Returns how many rows went in."""

    def __init__(self, ctx: Context, table: str, parts: list[_Part], token: str) -> None:
        self.ctx = ctx
        self.table = table
        self.parts = parts
        self.token = token
        self.recheck = table == "events" and any(part.recheck for part in parts)
        self.attempts = 0

    def __call__(self) -> int:
        self.attempts += 1
        store = self.ctx.store
        assert store is not None
        if self.table == "events" and (self.recheck or self.attempts > 1):
            rows = first_of_each_event(_decoded(self.parts))  # the original may be in this very batch, not stored yet
            rows = unstored_events(store, rows)
            store.insert(self.table, rows, dedup_token=f"{self.token}:checked-{self.attempts}")
            return len(rows)
        store.insert_json(self.table, json_array([row for part in self.parts for row in part.rows]),
                          dedup_token=self.token)
        return sum(len(part.rows) for part in self.parts)


def _decoded(parts: list[_Part]) -> list[dict[str, Any]]:
    rows = orjson.loads(json_array([row for part in parts for row in part.rows]))
    if not all(isinstance(row, dict) for row in rows):
        raise StoreError("store rows: expected JSON objects")
    return rows


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
    handler = StoreHandler(ctx)
    ctx.add_processor(processor(ctx, handler))
    return handler


async def register_now(ctx: Context) -> StoreHandler:
    """The store processor of a worker that got the store while running."""
    handler = StoreHandler(ctx)
    await ctx.add_processor_now(processor(ctx, handler))
    return handler


def processor(ctx: Context, handler: StoreHandler) -> PartitionedProcessor:
    topics = ctx.settings.topics
    return (PartitionedProcessor(
        name="store", group=topics.group("store"), inputs=[topics.store_rows],
        handler=handler, state_topic=topics.store_state, max_records=MAX_MESSAGES,
        linger_ms=LINGER_MS, **ctx.processor_options()))
