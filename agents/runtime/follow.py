"""Following compacted topics whole, on the worker's event loop.

What every worker needs to know about the whole deployment (the registry, the notices' maintenance
windows, the alert routes, the fleet's silence) is read by one `Follower`: one Kafka consumer without
a consumer group (`read_committed`: an aborted write is never taken) that reads each followed topic
from its beginning and then keeps up with it, and hands every record to its topic's book. It runs
as a task on the worker's event loop, so a dict a book keeps changes only between two awaits of
whoever iterates it, never under its feet.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, MutableMapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from agents.runtime.reasons import KAFKA_UNAVAILABLE
from pipeline.config import Settings
from pipeline.io.kafka_security import aiokafka_options
from pipeline.io.metrics import Metrics

log = logging.getLogger("mimamori")

RETRY_AFTER = 5.0
POLL_MS = 200
FETCH_WAIT_MS = 100
"""A fetch waits this long for new records at most; an end-offsets request queued behind it as long."""
MAX_RECORDS = 500
"""Records applied between two yields to the event loop (registry records are checked one by one,
~30 µs each)."""


def follower_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The follower's Kafka client: the one place its connection options (TLS, SASL) are set."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_committed", client_id="mimamori-follower",
        fetch_max_bytes=4 * 1024 * 1024, max_partition_fetch_bytes=1024 * 1024, fetch_max_wait_ms=FETCH_WAIT_MS,
        **aiokafka_options(settings),
    )


class CompactedFollower:
    """One followed topic. By default `values[key]` is the latest decoded value of each key (a null
    value removes it; a value `decode` refuses is logged and leaves the previous one); `apply`
    replaces that. `read_at` is the wall time of the last end-offsets request after which the
    follower had read everything the topic held; `wait_ready()` returns once it has read what the
    topic held when it was first assigned."""

    def __init__(self, follower: "Follower", topic: str, decode: Callable[[bytes], Any] | None = None,
                 name: str | None = None, apply: Callable[[bytes | None, bytes | None], None] | None = None) -> None:
        self.follower = follower
        self.topic = topic
        self.decode = decode or (lambda value: value)
        self.name = name or topic
        self.values: dict[str, Any] = {}
        self.read_at = 0.0
        self.records = 0
        self.ready = asyncio.Event()
        self.apply = apply or self._apply

    def start(self) -> None:
        """Follow the topic from now on (from its beginning), with the follower's other topics."""
        self.follower.add(self)

    async def wait_ready(self) -> None:
        await self.ready.wait()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self.values.pop(key.decode(errors="replace"), None)
            return
        try:
            self.values[key.decode(errors="replace")] = self.decode(value)
        except Exception as exc:  # noqa: BLE001 - a bad record of an internal topic is skipped, named
            log.error("%s: record %r refused: %s", self.topic, key, exc)


class Followed:
    """Several books read as one: ready when all are."""

    def __init__(self, *books: CompactedFollower) -> None:
        self.books = books

    def start(self) -> None:
        for book in self.books:
            book.start()

    async def wait_ready(self) -> None:
        for book in self.books:
            await book.wait_ready()


class Follower(Service):
    """The worker's one follower of compacted topics (a task on the app's loop). A failure (broker
    gone, a topic missing) is logged, counted, named in `failing` (which /health shows) and retried
    in 5 s from where it was; the books keep what they hold meanwhile."""

    def __init__(self, settings: Settings, *, failing: MutableMapping[str, str] | None = None,
                 metrics: Metrics | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self.failing: MutableMapping[str, str] = failing if failing is not None else {}
        self.books: dict[str, CompactedFollower] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.targets: dict[TopicPartition, int] = {}
        """The end of each partition when it was first assigned: its book is ready past it."""

    def topic(self, topic: str, decode: Callable[[bytes], Any] | None = None, name: str | None = None,
              apply: Callable[[bytes | None, bytes | None], None] | None = None) -> CompactedFollower:
        """A book of `topic` (followed once started)."""
        return CompactedFollower(self, topic, decode, name, apply)

    def add(self, book: CompactedFollower) -> None:
        if self.books.get(book.topic) not in (None, book):
            raise ValueError(f"{book.topic} is followed already")
        self.books[book.topic] = book

    @Service.task
    async def _follow(self) -> None:
        while not self.should_stop:
            if not self.books:
                await self.sleep(0.1)
                continue
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the follower outlives a broker outage
                if self.should_stop:
                    return
                self.failing["follower"] = KAFKA_UNAVAILABLE  # a code for /health; the details are logged
                if self.metrics is not None:
                    self.metrics.agent_errors.labels("follower").inc()
                log.warning("follower of %s failed (%s); again in %.0f s", sorted(self.books), exc, RETRY_AFTER)
                await self.sleep(RETRY_AFTER)

    async def _run(self) -> None:
        consumer = follower_consumer(self.settings)
        await consumer.start()
        try:
            following: set[str] = set()
            behind = False
            while not self.should_stop:
                if following != set(self.books):
                    following = set(self.books)
                    await self._assign(consumer, following)
                tps = list(consumer.assignment())
                asked, ends = time.time(), None
                if not behind:  # an end-offsets request costs a round trip: not while reading a backlog
                    ends = await consumer.end_offsets(tps)
                batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
                taken = 0
                for tp, records in batch.items():
                    book = self.books[tp.topic]
                    for record in records:
                        book.apply(record.key, record.value)
                    book.records += len(records)
                    taken += len(records)
                behind = taken >= MAX_RECORDS
                await self._caught_up(consumer, tps, ends, asked)
                self.failing.pop("follower", None)
                await asyncio.sleep(0)  # getmany from its buffer does not yield: let the loop run between batches
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer, topics: set[str]) -> None:
        """Every partition of `topics`: where the follower was, else from the beginning."""
        # aiokafka's public `topics()` fetches this and keeps only the names; no group, no subscription
        cluster = await consumer._client.fetch_all_metadata()
        tps = []
        for topic in sorted(topics):
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                raise LookupError(f"topic {topic} not found")
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        new = [tp for tp in tps if tp not in self.positions]
        for tp in tps:
            if tp in self.positions:
                consumer.seek(tp, self.positions[tp])
        if new:
            await consumer.seek_to_beginning(*new)
            self.targets.update(await consumer.end_offsets(new))

    async def _caught_up(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                         ends: dict[TopicPartition, int] | None, asked: float) -> None:
        for tp in tps:
            self.positions[tp] = await consumer.position(tp)
        for topic in {tp.topic for tp in tps}:
            book = self.books[topic]
            mine = [tp for tp in tps if tp.topic == topic]
            if ends is not None and all(self.positions[tp] >= ends[tp] for tp in mine):
                book.read_at = asked
            if not book.ready.is_set() and all(self.positions[tp] >= self.targets.get(tp, 0) for tp in mine):
                book.ready.set()
                log.info("%s read: %d record(s)", book.name, book.records)
