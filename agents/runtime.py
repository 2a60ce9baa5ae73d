"""Partitioned processing with our own hands on fetch, seek and commit.

Faust stays the application (lifecycle, timers, web, the producer of odd messages), but no record of
a partitioned input reaches our logic through Faust's streams: its recovery clears records fetched
while tables recover and then commits past a head it never handed over (faust-streaming #596, #216,
#221), and its per-event machinery costs ~30 times what its own Kafka client does. A
`PartitionedProcessor` is a consumer-group member of its own (group `<deployment>-<name>`) that:

- on assignment, before any record of a partition is handled, reads the partition's saved state
  (a compacted state topic, and an append-only log topic where the handler keeps one) from the
  beginning to its end and hands it to the handler; the consumer then starts at the group's
  committed offset, or at the beginning of the retained log when the group never committed;
- takes records in batches (`getmany`), in partition order, under one lock that timers share;
- writes the handler's state changes and waits for Kafka's acknowledgement, and only then commits
  the batch's offsets: a commit never moves past a record that was not processed, and a crash
  anywhere repeats at most the batch, which every output tolerates (ids and tokens from content).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

log = logging.getLogger("mimamori")


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One change of saved state: `key` None appends `value` to the log topic; a keyed value None
    removes the key."""

    partition: int
    key: str | None
    value: Any


@dataclass
class SavedState:
    """What a partition's state topics held when it was assigned: keyed entries (latest value of
    each key, in log order) and log values, oldest first."""

    keyed: dict[int, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    logged: dict[int, list[Any]] = field(default_factory=lambda: defaultdict(list))


class Handler(Protocol):
    async def assigned(self, partitions: set[int], saved: SavedState) -> None: ...

    async def revoked(self, partitions: set[int]) -> None: ...

    async def process(self, records: list[ConsumerRecord]) -> list[StateWrite]: ...


class StatelessHandler:
    """A handler that keeps nothing per partition: assignment and revocation change nothing."""

    async def assigned(self, partitions: set[int], saved: SavedState) -> None:
        return None

    async def revoked(self, partitions: set[int]) -> None:
        return None


class Publisher(Service):
    """One idempotent producer for every output of a worker; `send_all` returns when Kafka
    acknowledged every message (acks=all). Added to the app before the processors, so it starts
    before them and stops after them."""

    def __init__(self, bootstrap: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Lock | None = None

    async def start_producer(self) -> None:
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self.producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                    max_request_size=8 * 1024 * 1024, max_batch_size=1024 * 1024, client_id="mimamori",
                )
                await producer.start()
                self.producer = producer

    async def on_start(self) -> None:
        await self.start_producer()

    async def on_stop(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            await producer.stop()

    async def send_all(self, messages: Iterable[tuple[str, bytes | None, bytes | None, int | None]]) -> None:
        """(topic, key, value, partition or None for the key's partition)."""
        if self.producer is None:
            await self.start_producer()
        assert self.producer is not None
        futures = [await self.producer.send(topic, value=value, key=key, partition=partition)
                   for topic, key, value, partition in messages]
        if futures:
            await asyncio.gather(*futures)


class PartitionedProcessor(Service):
    """A consumer-group member over co-partitioned `inputs`, with state kept beside each partition."""

    def __init__(self, *, name: str, group: str, bootstrap: str, inputs: list[str], handler: Handler,
                 publisher: Publisher, state_topic: str | None = None, log_topic: str | None = None,
                 max_records: int = 10_000, poll_ms: int = 200, linger_ms: int = 0,
                 on_batch: Callable[[int, float], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.group = group
        self.bootstrap = bootstrap
        self.inputs = inputs
        self.handler = handler
        self.publisher = publisher
        self.state_topic = state_topic
        self.log_topic = log_topic
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.linger_ms = linger_ms
        self.on_batch = on_batch
        self.lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: set[int] = set()
        self.last_progress = time.time()
        self.failing: str | None = None
        self.committed: dict[TopicPartition, int] = {}

    @property
    def label(self) -> str:
        return self.name

    async def on_start(self) -> None:
        await self.publisher.start_producer()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, client_id=f"mimamori-{self.name}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_poll_records=self.max_records, fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024, session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000, max_poll_interval_ms=600_000, rebalance_timeout_ms=60_000,
        )
        self.consumer.subscribe(self.inputs, listener=_Listener(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        async with self.lock:
            consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    @Service.task
    async def _consume(self) -> None:
        while not self.should_stop:
            consumer = self.consumer
            if consumer is None:
                await asyncio.sleep(0.1)
                continue
            try:
                batch = await consumer.getmany(timeout_ms=self.poll_ms, max_records=self.max_records)
                if batch and self.linger_ms:
                    batch = await self._linger(consumer, batch)
            except Exception as exc:  # noqa: BLE001 - the loop outlives a broker hiccup and a stop
                if self.should_stop or self.consumer is None:
                    continue
                log.warning("%s: fetch failed (%s); trying again", self.name, exc)
                await asyncio.sleep(1.0)
                continue
            if batch:
                await self._take(batch)
            else:
                self.last_progress = time.time()

    async def _linger(self, consumer: AIOKafkaConsumer,
                      batch: dict[TopicPartition, list[ConsumerRecord]]) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Gather more records for up to `linger_ms` (fewer, larger batches for the store)."""
        deadline = time.monotonic() + self.linger_ms / 1000
        count = sum(len(records) for records in batch.values())
        while count < self.max_records and (left := deadline - time.monotonic()) > 0:
            more = await consumer.getmany(timeout_ms=int(left * 1000), max_records=self.max_records - count)
            for tp, records in more.items():
                batch.setdefault(tp, []).extend(records)
                count += len(records)
        return batch

    async def _take(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        started = time.perf_counter()
        async with self.lock:
            consumer = self.consumer
            if consumer is None:
                return
            owned = consumer.assignment()
            mine = {tp: records for tp, records in batch.items() if tp in owned and records}
            records = [r for records in mine.values() for r in records]
            if not records:
                return
            writes = await self.handler.process(records)
            await self.write_state(writes)
            offsets = {tp: records[-1].offset + 1 for tp, records in mine.items()}
            try:
                await consumer.commit(offsets)
                self.committed.update(offsets)
            except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                log.warning("%s: commit after a rebalance refused (%s); the new owner takes the batch again",
                            self.name, exc)
        self.last_progress = time.time()
        if self.on_batch is not None:
            self.on_batch(len(records), time.perf_counter() - started)

    async def exclusive(self, action: Callable[[], Awaitable[list[StateWrite]]]) -> bool:
        """Run a timed action between batches, its state saved like a batch's. False when this
        worker owns no partition (nothing to do)."""
        async with self.lock:
            if not self.partitions:
                return False
            await self.write_state(await action())
            return True

    async def write_state(self, writes: list[StateWrite]) -> None:
        if not writes:
            return
        messages = []
        for write in writes:
            if write.key is None:
                assert self.log_topic is not None, f"{self.name} has no log topic"
                messages.append((self.log_topic, None, orjson.dumps(write.value), write.partition))
            else:
                assert self.state_topic is not None, f"{self.name} has no state topic"
                value = None if write.value is None else orjson.dumps(write.value)
                messages.append((self.state_topic, write.key.encode(), value, write.partition))
        await self.publisher.send_all(messages)

    async def restore(self, partitions: set[int]) -> SavedState:
        """Read every state topic's partitions whole, from the beginning to the end they have now."""
        saved = SavedState()
        topics = [t for t in (self.state_topic, self.log_topic) if t]
        if not topics or not partitions:
            return saved
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                  client_id=f"mimamori-{self.name}-restore", fetch_max_bytes=32 * 1024 * 1024,
                                  max_partition_fetch_bytes=16 * 1024 * 1024)
        await reader.start()
        try:
            tps = [TopicPartition(t, p) for t in topics for p in sorted(partitions)]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                for tp, records in (await reader.getmany(*pending, timeout_ms=500, max_records=20_000)).items():
                    for record in records:
                        if tp.topic == self.state_topic and record.key is not None:
                            key = record.key.decode()
                            if record.value is None:
                                saved.keyed[tp.partition].pop(key, None)
                            else:
                                saved.keyed[tp.partition][key] = orjson.loads(record.value)
                        elif tp.topic == self.log_topic and record.value is not None:
                            saved.logged[tp.partition].append(orjson.loads(record.value))
                for tp in list(pending):
                    if await reader.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await reader.stop()
        return saved

    def lag(self) -> dict[TopicPartition, int]:
        """Records beyond the committed offset, per owned input partition."""
        consumer = self.consumer
        if consumer is None:
            return {}
        lags = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None:
                lags[tp] = max(0, high - self.committed.get(tp, 0))
        return lags


class _Listener(ConsumerRebalanceListener):
    def __init__(self, processor: PartitionedProcessor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        p = self.processor
        async with p.lock:
            gone = {tp.partition for tp in revoked}
            if gone & p.partitions:
                await p.handler.revoked(gone & p.partitions)
                p.partitions -= gone

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        p = self.processor
        async with p.lock:
            new = {tp.partition for tp in assigned} - p.partitions
            started = time.perf_counter()
            saved = await p.restore(new)
            await p.handler.assigned(new, saved)
            p.partitions |= new
            for tp in assigned:
                p.committed.pop(tp, None)
            log.info("%s: partitions %s assigned, state read in %.2fs", p.name, sorted(new),
                     time.perf_counter() - started)
