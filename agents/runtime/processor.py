"""Partitioned processing with our own hands on fetch, state and commit, exactly once by Kafka
transactions.

Faust stays the application (lifecycle, timers, web), but no record of a partitioned input reaches
our logic through Faust's streams: its recovery cleared records fetched while tables recovered and
then committed past them (faust-streaming #596), and its per-event machinery cost ~30 times its
own Kafka client. A `PartitionedProcessor` is a consumer-group member of its own (group
`<prefix>mimamori-<name>`, range assignor so co-partitioned inputs stay together) that:

- gives each input partition number `p` it owns a transactional producer of its own, with the
  transactional id `<group>-<p>`. A new owner's producer bumps the id's epoch when it starts, which
  aborts whatever the previous owner left open and refuses that producer everything from then on
  (ProducerFenced): a member that was paused, or slow past `max.poll.interval.ms`, and wakes up
  after its partition moved can no longer publish, save state or commit offsets for it;
- after an assignment, outside the rebalance callback (aiokafka sends no heartbeats while one
  runs), and with the partition's fetch paused: starts that producer (the fence), reads the
  partition's saved state whole with `read_committed` (a compacted state topic, and an append-only
  log topic where the handler keeps one), hands it to the handler, seeks to the group's committed
  offset (the beginning of the log when none) and only then resumes the fetch;
- takes `getmany` batches and hands each partition's records to the handler, which returns the
  messages and state changes they produce (`Output`); those and the records' offsets are written in
  one transaction (`send_offsets_to_transaction`): all or nothing, and nothing once fenced;
- overlaps: the next batch is fetched and judged while the last one's transaction is in flight.
  A partition's transactions run one at a time in the order their steps ran (each waits for the
  one before), and the loop goes past batch N+1 only once batch N's transaction ended. When a
  transaction never commits (fenced, revoked, or a commit whose answer was lost and which may have
  happened), the state that already took the steps after it is forgotten and read again from
  Kafka with the records from the committed offset, as a new owner would; a crash repeats at most
  the batches not committed yet. A write that fails before the commit request is retried as it
  was (the aborted attempt is never visible, the state stays right);
- runs timed work through `transact(p, action)`: the same lock and the same transaction per
  partition, so a timer can never publish for a partition this member no longer owns;
- dead-letters a message the broker can never take (too large, invalid) and commits the rest;
  retries any other failure with backoff, visibly (`failing`), while other partitions go on;
- keeps, per partition, how far in time its input has been read (`read_until`): now when the
  fetch has caught up with the partition's end, else the time of the last record read. A UTM is
  judged silent only over that time (our own lag is never a customer's stop).
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
from aiokafka.errors import InvalidProducerEpoch, KafkaError, ProducerFenced
from mode import Service

from agents.runtime.reasons import HANDLER_SLOW, KAFKA_WRITE
from pipeline.bounds import json_bytes
from pipeline.io.kafka_errors import is_permanent_send_error

log = logging.getLogger("mimamori")

Message = tuple[str, "bytes | None", "bytes | None", "int | None"]
"""(topic, key, value, partition or None for the key's partition)."""

MAX_REQUEST_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One change of saved state: `key` None appends `value` to the log topic (bytes as they are,
    anything else as JSON; bytes must not start like JSON); a keyed value None
    removes the key. The runtime writes it to the state partition of the input partition whose
    transaction carries it (`partition` is kept for the handlers' own bookkeeping)."""

    partition: int
    key: str | None
    value: Any


@dataclass
class SavedState:
    """What a partition's state topics held when it was assigned: keyed entries (latest value of
    each key, in log order) and log values, oldest first, by partition."""

    keyed: dict[int, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    logged: dict[int, list[Any]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class Output:
    """What one partition's step asks to be written, in one transaction with its input offsets."""

    messages: list[Message] = field(default_factory=list)
    state: list[StateWrite] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.messages or self.state)

    def extend(self, other: "Output") -> "Output":
        self.messages.extend(other.messages)
        self.state.extend(other.state)
        return self


class Handler(Protocol):
    async def assigned(self, partition: int, saved: SavedState) -> None: ...

    async def revoked(self, partition: int) -> None: ...

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output: ...


class StatelessHandler:
    """A handler that keeps nothing per partition: assignment and revocation change nothing."""

    async def assigned(self, partition: int, saved: SavedState) -> None:
        return None

    async def revoked(self, partition: int) -> None:
        return None


class PartitionLost(Exception):
    """This member no longer owns the partition (revoked, or fenced by a newer owner)."""


def dead_letter_message(topic: str, message: Message, reason: str, at: float) -> Message:
    """An output the broker refused for good, as a bounded record for the rejection topic."""
    from datetime import datetime, timezone

    from pipeline.ingest.validator import rejected

    out_topic, key, value, _ = message
    rejection = rejected("internal_error", f"output to {out_topic} refused: {reason}", value or b"",
                         datetime.fromtimestamp(at, timezone.utc), out_topic)
    return (topic, key, orjson.dumps(rejection.to_record()), None)


class Publisher(Service):
    """An idempotent producer for what belongs to no input partition (the monthly report's mails,
    the CLI); `send_all` returns when Kafka acknowledged every message (acks=all)."""

    def __init__(self, bootstrap: str, client_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bootstrap = bootstrap
        self.client_options = client_options or {}
        self.producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Lock | None = None

    async def start_producer(self) -> None:
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self.producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                    max_request_size=MAX_REQUEST_BYTES, max_batch_size=1024 * 1024, client_id="mimamori",
                    **self.client_options)
                await producer.start()
                self.producer = producer

    async def on_start(self) -> None:
        await self.start_producer()

    async def on_stop(self) -> None:
        if self.producer is not None:
            producer, self.producer = self.producer, None
            await producer.stop()

    async def send_all(self, messages: Iterable[Message]) -> None:
        if self.producer is None:
            await self.start_producer()
        assert self.producer is not None
        futures = [await self.producer.send(topic, value=value, key=key, partition=partition)
                   for topic, key, value, partition in messages]
        if futures:
            await asyncio.gather(*futures)


@dataclass
class _Slot:
    """One owned input partition: its fence (the transactional producer) and how far it was read."""

    partition: int
    generation: int
    producer: AIOKafkaProducer | None = None
    ready: bool = False
    read_until: dict[TopicPartition, float] = field(default_factory=dict)
    restore: asyncio.Task | None = None
    epoch: tuple[int, int] | None = None
    """(producer id, epoch) of this member's latest fence of the partition."""
    tail: asyncio.Future | None = None
    """The partition's last transaction handed over: each awaits the one before it, so they commit
    in the order their steps ran, one open transaction at a time."""
    dirty: bool = False
    """A step's effects were taken in memory and its output never committed: the handler's state is
    ahead of Kafka's and must be read again before the partition is taken again."""
    stale: "_Slot | None" = None
    """The slot this one replaces because its state ran ahead of Kafka's (until it is forgotten)."""


class PartitionedProcessor(Service):
    """A consumer-group member over co-partitioned `inputs`, with state kept beside each partition."""

    def __init__(self, *, name: str, group: str, bootstrap: str, inputs: list[str], handler: Handler,
                 state_topic: str | None = None, log_topic: str | None = None, dead_letters: str | None = None,
                 max_records: int = 10_000, poll_ms: int = 200, linger_ms: int = 0,
                 client_options: dict[str, Any] | None = None, max_poll_interval_ms: int = 300_000,
                 session_timeout_ms: int = 10_000, on_batch: Callable[[int, float], None] | None = None,
                 metrics: Any = None, publisher: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.group = group
        self.bootstrap = bootstrap
        self.inputs = inputs
        self.handler = handler
        self.state_topic = state_topic
        self.log_topic = log_topic
        self.dead_letters = dead_letters
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.linger_ms = linger_ms
        self.client_options = client_options or {}
        self.max_poll_interval_ms = max_poll_interval_ms
        self.session_timeout_ms = session_timeout_ms
        self.on_batch = on_batch
        self.metrics = metrics
        self.consumer: AIOKafkaConsumer | None = None
        self.slots: dict[int, _Slot] = {}
        self.stash: dict[int, _Slot] = {}
        """Partitions revoked with their state, until the next assignment says whether they come back."""
        self.locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.generation = 0
        self.last_progress = time.time()
        self.failing: str | None = None
        self.committed: dict[TopicPartition, int] = {}
        self.promised: dict[TopicPartition, int] = {}
        """Offsets handed over to a transaction (committed, or on their way)."""
        self.restore_seconds: dict[int, float] = {}

    @property
    def label(self) -> str:
        return self.name

    @property
    def partitions(self) -> set[int]:
        """The partitions owned and restored now."""
        return {p for p, slot in self.slots.items() if slot.ready}

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, client_id=f"mimamori-{self.name}",
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_poll_records=self.max_records, fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024, session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(500, self.session_timeout_ms // 5),
            max_poll_interval_ms=self.max_poll_interval_ms, rebalance_timeout_ms=60_000,
            **self.client_options,
        )
        self.consumer.subscribe(self.inputs, listener=_Listener(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        tails = [slot.tail for slot in [*self.slots.values(), *self.stash.values()] if slot.tail is not None]
        if tails:  # what was handed over commits (or fails) before its producer goes
            await asyncio.wait([t for t in tails], timeout=10)
        consumer, self.consumer = self.consumer, None
        restores = [slot.restore for slot in self.slots.values() if slot.restore is not None and not slot.restore.done()]
        for restore in restores:
            restore.cancel()
        if restores:  # their state readers close before the worker closes its event loop
            await asyncio.wait(restores, timeout=10)
        if consumer is not None:
            await consumer.stop()
        for slot in [*self.slots.values(), *self.stash.values()]:
            await _close(slot.producer)
        self.slots.clear()
        self.stash.clear()

    # --- the loop -------------------------------------------------------------------------------

    @Service.task
    async def _consume(self) -> None:
        """Fetch, judge, hand the output over to the partition's transaction and go on: the next
        batch is fetched and judged while the last one's transaction is in flight. Before the loop
        goes on past batch N+1 it waits for batch N's transactions (at most one batch per
        partition waits behind the one in flight)."""
        in_flight: list[asyncio.Future] = []
        while not self.should_stop:
            consumer = self.consumer
            if consumer is None:
                await asyncio.sleep(0.1)
                continue
            try:
                batch = await consumer.getmany(timeout_ms=self.poll_ms if not in_flight else 0,
                                               max_records=self.max_records)
                if batch and self.linger_ms:
                    batch = await self._linger(consumer, batch)
            except Exception as exc:  # noqa: BLE001 - the loop outlives a broker hiccup and a stop
                if self.should_stop or self.consumer is None:
                    continue
                log.warning("%s: fetch failed (%s); trying again", self.name, exc)
                await asyncio.sleep(1.0)
                continue
            by_partition: dict[int, list[ConsumerRecord]] = defaultdict(list)
            offsets: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
            stamps: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
            for tp, records in batch.items():
                if records:
                    by_partition[tp.partition].extend(records)
                    offsets[tp.partition][tp] = _next_offset(consumer, tp, records[-1].offset + 1)
                    stamps[tp.partition][tp] = max(r.timestamp or 0 for r in records)
            deadline = time.monotonic() + self.max_poll_interval_ms / 1000 / 2
            handed: list[asyncio.Future] = []
            for partition, records in by_partition.items():
                left = deadline - time.monotonic()
                if left <= 0:
                    self._read_again(consumer, records)  # the poll loop comes first: these come back
                    continue
                step = await self._take(partition, records, offsets[partition], stamps[partition], left)
                if step is not None:
                    handed.append(step)
            handed.extend(await self._note_reads(consumer, batch))
            await _settled(in_flight)
            in_flight = [step for step in handed if not step.done()]
            if not batch:
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

    def _read_again(self, consumer: AIOKafkaConsumer, records: list[ConsumerRecord]) -> None:
        """Records fetched but not handled: the next fetch starts at the first of each partition."""
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        for tp, offset in first.items():
            try:
                consumer.seek(tp, offset)
            except Exception:  # noqa: BLE001 - revoked meanwhile: its next owner starts at the commit
                pass

    async def _take(self, partition: int, records: list[ConsumerRecord], offsets: dict[TopicPartition, int],
                    stamps: dict[TopicPartition, int], budget: float | None = None) -> asyncio.Future | None:
        """Judge a partition's records and hand their output to its transaction; returns that
        transaction (not awaited here), None when the partition is not ours (any more)."""
        started = time.perf_counter()
        slot = self.slots.get(partition)
        if slot is None or not slot.ready:
            return None  # fetched before a revocation: the next owner (or our own restore) seeks to the commit
        try:
            step = await self._run(slot, lambda: self.handler.handle(partition, records), offsets, stamps,
                                   budget, wait=False)
        except PartitionLost:
            return None

        def done(step: asyncio.Future) -> None:
            if step.cancelled() or step.exception() is not None:
                return
            self.last_progress = time.time()
            if self.on_batch is not None:
                self.on_batch(len(records), time.perf_counter() - started)

        step.add_done_callback(done)
        return step

    async def transact(self, partition: int, action: Callable[[], Awaitable[Output]]) -> bool:
        """Run a timed or background action for one partition under its lock, its output written in
        the partition's transaction. False (nothing run) when this member does not own it."""
        slot = self.slots.get(partition)
        if slot is None or not slot.ready:
            return False
        try:
            await self._run(slot, action, {}, {})
        except PartitionLost:
            return False
        return True

    def may_own(self, partition: int) -> bool:
        """Owned, being restored, or revoked in a rebalance that has not said yet whether it comes
        back: worth waiting for."""
        return partition in self.slots or partition in self.stash

    async def save_now(self, partition: int, output: Output) -> None:
        """From inside `handle` (the partition's lock held): write an output in a transaction of
        its own at once, after those handed over before it, and before an outside effect that must
        find it saved (the store's intent)."""
        slot = self.slots.get(partition)
        if slot is None or not slot.ready:
            raise PartitionLost(partition)
        step = self._hand_over(slot, output, {}, {})
        await _settled([step])
        step.result()

    async def each_partition(self, action: Callable[[int], Awaitable[Output]]) -> int:
        """`transact` for every owned partition; returns how many ran."""
        done = 0
        for partition in sorted(self.partitions):
            done += await self.transact(partition, lambda p=partition: action(p))  # type: ignore[misc]
        return done

    async def _run(self, slot: _Slot, action: Callable[[], Awaitable[Output]],
                   offsets: dict[TopicPartition, int], stamps: dict[TopicPartition, int],
                   budget: float | None = None, *, wait: bool = True) -> asyncio.Future:
        """Run `action` under the partition's lock and hand its output (with `offsets`) over to
        the partition's transactions; `wait`: until it is committed (PartitionLost if it never is)."""
        async with self.locks[slot.partition]:
            if self.slots.get(slot.partition) is not slot or not slot.ready:
                raise PartitionLost(slot.partition)
            handled = time.perf_counter()
            budget = self.max_poll_interval_ms / 1000 / 2 if budget is None else budget
            try:
                output = await asyncio.wait_for(action(), timeout=budget)
            except asyncio.TimeoutError:
                await self._too_slow(slot, budget)
                raise PartitionLost(slot.partition) from None
            except PartitionLost:
                slot.dirty = True
                raise
            if self.slots.get(slot.partition) is not slot or not slot.ready:
                slot.dirty = True  # lost while the action ran: its effects are in memory only
                raise PartitionLost(slot.partition)
            self._stage("handle", time.perf_counter() - handled)
            step = self._hand_over(slot, output, offsets, stamps)
        if wait:
            await _settled([step])  # (a waiter that is cancelled leaves the transaction be)
            step.result()
        return step

    def _hand_over(self, slot: _Slot, output: Output, offsets: dict[TopicPartition, int],
                   stamps: dict[TopicPartition, int]) -> asyncio.Future:
        """Queue a step's output for the partition's transactions, behind those before it (called
        with the partition's lock held, so the queue keeps the order the steps ran in)."""
        step = asyncio.ensure_future(self._transaction(slot, slot.tail, output, offsets, stamps))
        step.add_done_callback(_retrieved)
        slot.tail = step
        self.promised.update(offsets)
        return step

    async def _transaction(self, slot: _Slot, before: asyncio.Future | None, output: Output,
                           offsets: dict[TopicPartition, int], stamps: dict[TopicPartition, int]) -> None:
        """One step's transaction, once the step before it committed. If that one never commits
        (fenced, revoked, or lost in a commit whose outcome is unknown), neither does this one, and
        the partition's state, which took this step already, is marked for reading again."""
        try:
            if before is not None and not await _committed(before):
                raise PartitionLost(slot.partition)
            committing = time.perf_counter()
            await self._commit(slot, output, offsets)
        except BaseException:
            slot.dirty = True
            raise
        self._stage("commit", time.perf_counter() - committing)
        if self.slots.get(slot.partition) is slot:
            self.committed.update(offsets)
        for tp, stamp in stamps.items():  # the newest record's time of each input, once committed
            if stamp > 0:
                slot.read_until[tp] = max(slot.read_until.get(tp, 0.0), min(stamp / 1000, time.time()))

    def _stage(self, stage: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.batch_stage_seconds.labels(self.name, stage).observe(seconds)

    # --- the transaction --------------------------------------------------------------------------

    def _messages(self, partition: int, output: Output) -> list[Message]:
        messages = list(output.messages)
        for write in output.state:
            if write.key is None:
                assert self.log_topic is not None, f"{self.name} has no log topic"
                value = write.value if isinstance(write.value, bytes) else json_bytes(write.value)
                messages.append((self.log_topic, None, value, partition))
            else:
                assert self.state_topic is not None, f"{self.name} has no state topic"
                value = None if write.value is None else json_bytes(write.value)
                messages.append((self.state_topic, write.key.encode(), value, partition))
        return messages

    async def _commit(self, slot: _Slot, output: Output, offsets: dict[TopicPartition, int]) -> None:
        """Write the output and the offsets in one transaction, again until it works. A message the
        broker can never take is replaced by its dead letter; a fence or a revocation ends it. A
        commit request whose outcome is unknown (it may have committed) ends it too: the partition
        is read again from Kafka, as a new owner would.

        The broker is waited for once a transaction for its messages and its offsets together
        (the offsets go to the transaction while the messages are in flight), then for the commit."""
        messages = self._messages(slot.partition, output)
        if not messages and not offsets:
            return
        delay = 0.5
        while True:
            if self.slots.get(slot.partition) is not slot or not slot.ready or slot.producer is None:
                raise PartitionLost(slot.partition)
            producer = slot.producer
            refused: dict[int, BaseException] = {}
            committing = False
            added: asyncio.Future | None = None
            try:
                await producer.begin_transaction()
                futures = []
                for i, (topic, key, value, partition) in enumerate(messages):
                    try:
                        futures.append((i, await producer.send(topic, value=value, key=key, partition=partition)))
                    except Exception as exc:  # noqa: BLE001 - sorted below
                        if not is_permanent_send_error(exc):
                            raise
                        refused[i] = exc
                if offsets:
                    added = asyncio.ensure_future(producer.send_offsets_to_transaction(offsets, self.group))
                    added.add_done_callback(_retrieved)
                if futures:
                    await asyncio.wait([future for _, future in futures])
                failed = None
                for i, future in futures:
                    exc = future.exception()
                    if exc is not None:
                        if not is_permanent_send_error(exc):
                            failed = failed or exc
                        refused[i] = exc
                if failed is not None:
                    raise failed
                if refused:
                    raise _Refused()
                if added is not None:
                    await added
                committing = True
                await producer.commit_transaction()
                if self.failing:
                    log.info("%s: writes succeed again", self.name)
                self.failing = None
                return
            except (ProducerFenced, InvalidProducerEpoch) as exc:
                log.warning("%s: partition %d fenced by a newer owner (%s); its batch is dropped",
                            self.name, slot.partition, type(exc).__name__)
                self._lose(slot)
                raise PartitionLost(slot.partition) from exc
            except _Refused:
                for i, exc in sorted(refused.items()):
                    log.error("%s: a message to %s refused for good (%s); dead-lettered", self.name,
                              messages[i][0], type(exc).__name__)
                    if self.metrics is not None:
                        self.metrics.agent_errors.labels(self.name).inc()
                    messages[i] = dead_letter_message(self.dead_letters or messages[i][0], messages[i],
                                                      type(exc).__name__, time.time())
                await self._renew(slot)
            except Exception as exc:  # noqa: BLE001 - transient: retried, visible in /health
                self.failing = KAFKA_WRITE
                if committing:
                    log.warning("%s: the commit of partition %d failed (%s: %s) and may have happened; the "
                                "partition is read again", self.name, slot.partition, type(exc).__name__, exc)
                    self._read_anew(slot)
                    raise PartitionLost(slot.partition) from exc
                log.warning("%s: transaction of partition %d failed (%s: %s); retrying in %.1fs",
                            self.name, slot.partition, type(exc).__name__, exc, delay)
                await self._renew(slot)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if added is not None and not added.done():
                    added.cancel()

    async def _renew(self, slot: _Slot) -> None:
        """A producer whose transaction failed is replaced (the new one aborts what it left open)."""
        old, slot.producer = slot.producer, None
        await _close(old)
        if self.slots.get(slot.partition) is slot:
            try:
                slot.producer = await self._producer(slot.partition)
                slot.epoch = _epoch(slot.producer)
            except (ProducerFenced, InvalidProducerEpoch):
                self._lose(slot)
                raise PartitionLost(slot.partition)
            except Exception as exc:  # noqa: BLE001 - the caller's loop tries again
                log.warning("%s: producer of partition %d not ready (%s)", self.name, slot.partition, exc)

    async def _producer(self, partition: int) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=2,
            transactional_id=f"{self.group}-{partition}", transaction_timeout_ms=60_000,
            max_request_size=MAX_REQUEST_BYTES, max_batch_size=1024 * 1024,
            client_id=f"mimamori-{self.name}-{partition}", **self.client_options)
        try:
            await producer.start()
            # the fence: the transactional id's new epoch, which aborts what an old owner left open
            # and refuses it from then on (start() alone does not wait for it)
            await asyncio.wait_for(asyncio.shield(producer._txn_manager.wait_for_pid()), timeout=60)  # noqa: SLF001
        except BaseException:
            await _close(producer)
            raise
        return producer

    def _lose(self, slot: _Slot) -> None:
        """Fenced: stop taking the partition at once; its state is forgotten (under its lock, after
        the step running now) and the group gives it to its new owner."""
        slot.dirty = True
        if self.slots.get(slot.partition) is slot:
            del self.slots[slot.partition]
            if self.consumer is not None:
                tps = [tp for tp in self.consumer.assignment() if tp.partition == slot.partition]
                if tps:
                    self.consumer.pause(*tps)
            asyncio.ensure_future(self._drop(slot, slot.ready))
        slot.ready = False

    async def _too_slow(self, slot: _Slot, budget: float) -> None:
        """A step that outlasted its share of max.poll.interval.ms was cut short, its in-memory
        state half done: the partition is read again (state from Kafka, records from the commit),
        as a new owner would, and the poll loop goes on meanwhile."""
        log.warning("%s: a step of partition %d took longer than %.1fs; the partition is read again",
                    self.name, slot.partition, budget)
        self.failing = HANDLER_SLOW
        if self.metrics is not None:
            self.metrics.agent_errors.labels(self.name).inc()
        self._read_anew(slot)

    def _read_anew(self, slot: _Slot) -> None:
        """The handler's state of the partition is ahead of what Kafka holds (a step cut short, or
        steps taken after a transaction whose commit is in doubt): pause the partition, forget that
        state and read it again with the records from the committed offset, as a new owner would.
        The restore waits for the transactions handed over before (they commit or fail first) and
        fences with a producer of its own, which settles a commit in doubt."""
        consumer = self.consumer
        slot.dirty = True
        if self.slots.get(slot.partition) is not slot or consumer is None:
            return
        tps = [tp for tp in consumer.assignment() if tp.partition == slot.partition]
        consumer.pause(*tps)
        slot.ready = False
        fresh = _Slot(slot.partition, self.generation, stale=slot)
        self.slots[slot.partition] = fresh
        fresh.restore = asyncio.ensure_future(self._restore_partition(fresh, tps))

    # --- assignment -------------------------------------------------------------------------------

    def assigned(self, assigned: set[TopicPartition]) -> None:
        """From the rebalance callback: pause the new partitions and restore them in the background."""
        consumer = self.consumer
        if consumer is None:
            return
        self.generation += 1
        for partition in sorted({tp.partition for tp in assigned}):
            tps = [tp for tp in assigned if tp.partition == partition]
            if partition in self.slots:
                continue
            consumer.pause(*tps)
            slot = _Slot(partition, self.generation)
            self.slots[partition] = slot
            slot.restore = asyncio.ensure_future(self._restore_partition(slot, tps, self.stash.pop(partition, None)))
        for partition in list(self.stash):
            asyncio.ensure_future(self._drop(self.stash.pop(partition), True))

    def revoked(self, revoked: set[TopicPartition]) -> None:
        """From the rebalance callback: stop taking the partitions; their state goes in the background
        (under the partition's lock, so after any batch in flight)."""
        for partition in sorted({tp.partition for tp in revoked}):
            slot = self.slots.pop(partition, None)
            if slot is None:
                continue
            was_ready, slot.ready = slot.ready, False
            if slot.restore is not None and not slot.restore.done():
                slot.restore.cancel()
            if was_ready:
                self.stash[partition] = slot  # kept until the assignment tells whether it comes back
            else:
                asyncio.ensure_future(self._drop(slot, False))
            for tp in [tp for tp in self.committed if tp.partition == partition]:
                self.committed.pop(tp, None)
            for tp in [tp for tp in self.promised if tp.partition == partition]:
                self.promised.pop(tp, None)

    async def _drop(self, slot: _Slot, was_ready: bool, *, locked: bool = False) -> None:
        if not locked:
            async with self.locks[slot.partition]:
                await self._drop(slot, was_ready, locked=True)
            return
        stale, slot.stale = slot.stale, None
        await _settled([slot.tail, stale and stale.tail])  # its transactions commit or fail before its producer goes
        if (was_ready or stale is not None) and slot.partition not in self.slots:
            await self.handler.revoked(slot.partition)
        for old in (slot, stale):
            if old is not None:
                producer, old.producer = old.producer, None
                await _close(producer)

    async def _restore_partition(self, slot: _Slot, tps: list[TopicPartition], previous: _Slot | None = None) -> None:
        """Fence, read the saved state, seek to the commit, resume. A partition that comes back to
        this member with nobody else having fenced it since (the transactional id's epoch moved by
        our own fence only) keeps the state the handler holds, unless a step taken in it was never
        committed: an eager rebalance that gives every member its partitions back costs no restore.
        A slot that replaces one whose state ran ahead of Kafka's (`stale`) first lets that one's
        transactions end, then forgets its state."""
        delay = 0.5
        while self.slots.get(slot.partition) is slot:
            try:
                async with self.locks[slot.partition]:
                    if self.slots.get(slot.partition) is not slot:
                        if previous is not None:
                            await self._drop(previous, True, locked=True)
                        return
                    started = time.perf_counter()
                    if slot.stale is not None:
                        await _settled([slot.stale.tail])
                        await _close(slot.stale.producer)
                        slot.stale.producer = None
                        slot.stale = None
                        await self.handler.revoked(slot.partition)
                    if previous is not None:
                        await _settled([previous.tail])  # what it handed over commits (or not) first
                        await _close(previous.producer)
                        previous.producer = None
                    if slot.producer is None:
                        slot.producer = await self._producer(slot.partition)  # the fence: the old owner is done
                    slot.epoch = _epoch(slot.producer)
                    kept = (previous is not None and not previous.dirty and previous.epoch is not None
                            and slot.epoch is not None and previous.epoch[0] == slot.epoch[0]
                            and previous.epoch[1] + 1 == slot.epoch[1])
                    if previous is not None and not kept:
                        await self.handler.revoked(slot.partition)
                    previous = None
                    if kept:
                        log.debug("%s: partition %d came back untouched; its state is kept", self.name, slot.partition)
                    else:
                        log_reader = getattr(self.handler, "log_reader", None)
                        saved = await self.read_saved(slot.partition, log_reader(slot.partition) if log_reader else None)
                        await self.handler.assigned(slot.partition, saved)
                    consumer = self.consumer
                    if consumer is None or self.slots.get(slot.partition) is not slot:
                        await self.handler.revoked(slot.partition)
                        return
                    for tp in tps:
                        committed = await consumer.committed(tp)
                        if committed is None:
                            await consumer.seek_to_beginning(tp)
                            self.committed[tp] = 0
                        else:
                            consumer.seek(tp, committed)
                            self.committed[tp] = committed
                        self.promised[tp] = self.committed[tp]
                    slot.ready = True
                    consumer.resume(*tps)
                    seconds = time.perf_counter() - started
                    self.restore_seconds[slot.partition] = seconds
                    if self.metrics is not None:
                        self.metrics.restore_seconds.labels(self.name).observe(seconds)
                    log.info("%s: partitions [%d] assigned, state read in %.2fs", self.name, slot.partition, seconds)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker hiccup: try again while we own it
                log.warning("%s: restoring partition %d failed (%s: %s); trying again in %.1fs",
                            self.name, slot.partition, type(exc).__name__, exc, delay)
                await _close(slot.producer)
                slot.producer = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def read_saved(self, partition: int, log_reader: Callable[[bytes], None] | None = None) -> SavedState:
        """Read the partition's state topics whole, committed records only, to the end they have now.
        A handler with a `log_reader(partition)` takes the log's values as they come, undecoded (a
        day of dedup pairs is larger decoded than kept); otherwise they are decoded into `logged`."""
        saved = SavedState()
        topics = [t for t in (self.state_topic, self.log_topic) if t]
        if not topics:
            return saved
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                  isolation_level="read_committed", client_id=f"{self.group}-restore",
                                  fetch_max_bytes=32 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
                                  **self.client_options)
        try:
            await reader.start()  # inside: a restore cancelled while the reader connects still closes it
            tps = [TopicPartition(t, partition) for t in topics]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            keyed, logged = saved.keyed[partition], saved.logged[partition]
            while pending:
                for tp, records in (await reader.getmany(*pending, timeout_ms=500, max_records=20_000)).items():
                    for record in records:
                        if tp.topic == self.state_topic and record.key is not None:
                            key = record.key.decode()
                            if record.value is None:
                                keyed.pop(key, None)
                            else:
                                keyed[key] = orjson.loads(record.value)
                        elif tp.topic == self.log_topic and record.value is not None:
                            if log_reader is not None:
                                log_reader(record.value)
                            else:
                                logged.append(orjson.loads(record.value))
                for tp in list(pending):
                    if await reader.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await reader.stop()
        return saved

    # --- how far the input was read -------------------------------------------------------------

    async def _note_reads(self, consumer: AIOKafkaConsumer,
                          batch: dict[TopicPartition, list[ConsumerRecord]]) -> list[asyncio.Future]:
        """A partition whose fetch reached its end was read up to the fetch's time. A position that
        moved past the offset last handed over without records (transaction markers) is committed
        too, so that the group's lag reaches 0. Returns those transactions (not awaited)."""
        try:
            assignment = consumer.assignment()
        except Exception:  # noqa: BLE001 - between generations
            return []
        moved: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
        for tp in assignment:
            slot = self.slots.get(tp.partition)
            if slot is None or not slot.ready:
                continue
            try:
                state = consumer._subscription.subscription.assignment.state_value(tp)  # noqa: SLF001
                end, polled = state.lso, state.timestamp
                position = state.position if state.has_valid_position else None
            except Exception:  # noqa: BLE001 - not fetched yet, or between generations
                continue
            if end is not None and polled and position is not None and position >= end:
                slot.read_until[tp] = max(slot.read_until.get(tp, 0.0), min(polled / 1000, time.time()))
            if (position is not None and tp not in batch and tp in self.committed
                    and position > self.promised.get(tp, self.committed[tp])):
                moved[tp.partition][tp] = position
        steps = []
        for partition, offsets in moved.items():
            slot = self.slots.get(partition)
            if slot is not None and slot.ready:
                try:
                    steps.append(await self._run(slot, _nothing, offsets, {}, wait=False))
                except PartitionLost:
                    pass
        return steps

    def read_until(self, partition: int) -> float | None:
        """Epoch seconds up to which every input of the partition has been read; None before the
        first fetch of each of them."""
        slot = self.slots.get(partition)
        if slot is None or not slot.ready or self.consumer is None:
            return None
        tps = [TopicPartition(topic, partition) for topic in self.inputs]
        times = [slot.read_until.get(tp) for tp in tps]
        if any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    def lag(self) -> dict[TopicPartition, int]:
        """Records beyond the committed offset, per owned input partition."""
        consumer = self.consumer
        if consumer is None:
            return {}
        lags = {}
        try:
            assignment = consumer.assignment()
        except Exception:  # noqa: BLE001
            return {}
        for tp in assignment:
            high = consumer.last_stable_offset(tp) if tp in assignment else None
            if high is None:
                high = consumer.highwater(tp)
            if high is not None:
                lags[tp] = max(0, high - self.committed.get(tp, 0))
        return lags


def _next_offset(consumer: AIOKafkaConsumer, tp: TopicPartition, after_last: int) -> int:
    """Where the next read of `tp` starts: past the batch's last record and any transaction
    markers after it (what a commit must name, or the group never reaches the log's end)."""
    try:
        state = consumer._subscription.subscription.assignment.state_value(tp)  # noqa: SLF001
        if state is not None and state.has_valid_position and state.position >= after_last:
            return int(state.position)
    except Exception:  # noqa: BLE001 - between generations: the last record will do
        pass
    return after_last


def _epoch(producer: AIOKafkaProducer | None) -> tuple[int, int] | None:
    manager = getattr(producer, "_txn_manager", None)
    if manager is None or not manager.has_pid():
        return None
    return (manager.producer_id, manager.producer_epoch)


async def _nothing() -> Output:
    return Output()


def _retrieved(future: asyncio.Future) -> None:
    """A transaction's failure is its waiters' business; nobody waiting is no error."""
    if not future.cancelled():
        future.exception()


async def _settled(futures: Iterable[asyncio.Future | None]) -> None:
    """Wait until each is done, whatever its outcome (without cancelling them if we are)."""
    waiting = [f for f in futures if f is not None and not f.done()]
    if waiting:
        await asyncio.wait(waiting)


async def _committed(step: asyncio.Future) -> bool:
    """Whether a step's transaction committed, once it is done."""
    await _settled([step])
    return not step.cancelled() and step.exception() is None


class _Refused(Exception):
    """Some messages of a transaction were refused for good."""


async def _close(producer: AIOKafkaProducer | None) -> None:
    if producer is None:
        return
    try:
        await asyncio.wait_for(producer.stop(), timeout=10)
    except Exception:  # noqa: BLE001 - a fenced or broken producer still lets go of its sockets
        pass


class _Listener(ConsumerRebalanceListener):
    """Only bookkeeping here: aiokafka sends no heartbeats while a callback runs."""

    def __init__(self, processor: PartitionedProcessor) -> None:
        self.processor = processor

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.processor.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.processor.assigned(assigned)
