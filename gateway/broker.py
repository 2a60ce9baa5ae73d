"""The gateway's Kafka side: an idempotent acks=all producer that sends one upload as whole batches
to its UTM's partition, and a follower of the compacted registry and credential topics."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateway.credentials import CredentialState
from pipeline.config import Settings
from pipeline.io.kafka_admin import partition_of
from pipeline.io.kafka_security import aiokafka_options
from pipeline.models import Registry
from pipeline.registry_file import registry_record

log = logging.getLogger("mimamori.gateway")

MAX_BATCH_BYTES = 1_000_000
"""Under the broker's default message.max.bytes (1 MiB); a larger upload goes as several batches."""


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Connection options of the deployment (TLS/SASL from `pipeline.io.kafka_security`)."""
    return {"bootstrap_servers": settings.kafka, **aiokafka_options(settings)}


class Producer:
    def __init__(self, settings: Settings) -> None:
        self.options = dict(
            **kafka_options(settings), acks="all", enable_idempotence=True, max_batch_size=MAX_BATCH_BYTES,
            linger_ms=0, client_id="mimamori-gateway",
            request_timeout_ms=max(30_000, int(settings.gateway_ack_timeout.total_seconds() * 1000) + 5000))
        self.producer: AIOKafkaProducer | None = None
        self.lanes: dict[tuple[str, int], _Lane] = {}

    @property
    def started(self) -> bool:
        return self.producer is not None

    async def start(self) -> None:
        producer = AIOKafkaProducer(**self.options)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self.producer = producer

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def discard(self) -> None:
        """Drop this producer (its unsent batches fail): after an outage its idempotence sequence may
        have a gap (batches that expired unsent), which the broker refuses for good
        (OutOfOrderSequenceNumber); a new producer has a new producer id and starts afresh."""
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    async def send_all(self, topic: str, key: bytes, values: list[bytes]) -> None:
        """Every value to the key's partition; returns once the broker acknowledged them all.

        Uploads to one partition are sent together (group commit): while a partition's batch is on
        its way, the uploads that arrive meanwhile wait in its lane and go as the next batch. The
        idempotent producer has one batch in flight per partition, so one upload per batch would
        cap a partition at one request per broker round trip."""
        if not values:
            return
        if self.producer is None:
            raise ConnectionError("the producer has not reached the broker yet")
        partitions = sorted(await self.producer.partitions_for(topic))
        partition = partitions[partition_of(key, len(partitions))]
        lane = self.lanes.setdefault((topic, partition), _Lane())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.pending.append((key, values, waiter))
        if not lane.busy:
            lane.busy = True
            asyncio.create_task(self._drain(topic, partition, lane))
        await waiter

    async def _drain(self, topic: str, partition: int, lane: "_Lane") -> None:
        try:
            while lane.pending:
                taken, lane.pending = lane.pending, []
                try:
                    await self._send_batches(topic, partition, taken)
                except Exception as exc:  # noqa: BLE001 - each waiting upload is told (503, retried)
                    for _, _, waiter in taken:
                        if not waiter.done():
                            waiter.set_exception(exc)
                            waiter.exception()  # read here too: an upload that gave up no longer waits
                else:
                    for _, _, waiter in taken:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            lane.busy = False

    async def _send_batches(self, topic: str, partition: int, taken: list[tuple[bytes, list[bytes], Any]]) -> None:
        producer = self.producer
        if producer is None:
            raise ConnectionError("the producer has not reached the broker yet")
        delivered = []
        batch = producer.create_batch()
        for key, values, _ in taken:
            for value in values:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    delivered.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record of {len(value)} bytes does not fit a batch")
        delivered.append(await producer.send_batch(batch, topic, partition=partition))
        for future in delivered:
            future.add_done_callback(_read_outcome)
        await asyncio.gather(*delivered)


@dataclass
class _Lane:
    pending: list[tuple[bytes, list[bytes], "asyncio.Future[None]"]] = field(default_factory=list)
    busy: bool = False


def _read_outcome(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled():
        future.exception()


class Follower:
    """Reads the registry and credential topics whole from the beginning (no consumer group) and
    keeps following them; `ready` once it has read what they held when it (re)connected first."""

    def __init__(self, settings: Settings, registry: Registry, credentials: dict[str, CredentialState]) -> None:
        self.settings = settings
        self.registry = registry
        self.credentials = credentials
        self.ready = asyncio.Event()
        self.failing: str | None = None
        self.records = 0
        self.refused = 0
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: list[Any] = []
        topics = settings.topics
        self.decoders: dict[str, tuple[dict[str, Any], Callable[[bytes | None, bytes], Any]]] = {
            topics.tenants: (registry.tenants, lambda key, value: registry_record("tenant", key, value)),
            topics.utms: (registry.utms, lambda key, value: registry_record("utm", key, value)),
            topics.credentials: (credentials, lambda key, value: CredentialState.from_record(orjson.loads(value))),
        }

    def apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        table, decode = self.decoders[topic]
        self.records += 1
        if key is None:
            return
        name = key.decode(errors="replace")
        if value is None:
            table.pop(name, None)
            return
        try:
            table[name] = decode(key, value)
        except Exception as exc:  # noqa: BLE001 - a bad record is ignored, the previous version stays
            # (registry records are checked as `registry load` and the worker check them)
            self.refused += 1
            log.error("%s: record %r refused: %s", topic, name, type(exc).__name__)

    async def run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(**kafka_options(self.settings), group_id=None, enable_auto_commit=False,
                                        client_id="mimamori-gateway-follower")
            try:
                await consumer.start()
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried; /health names it meanwhile
                self.failing = type(exc).__name__
                log.warning("gateway: following the registry failed (%s); again in 2 s", type(exc).__name__)
                await asyncio.sleep(2)
            finally:
                await consumer.stop()

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        cluster = await consumer._client.fetch_all_metadata()  # the partitions of topics not assigned yet
        tps = []
        for topic in self.decoders:
            tps += [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]
        if not tps:
            raise RuntimeError("no registry topic found")
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        self.consumer, self.partitions = consumer, tps
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, messages in batches.items():
                for message in messages:
                    self.apply(tp.topic, message.key, message.value)
            self.failing = None
            if not self.ready.is_set():
                positions = [await consumer.position(tp) for tp in tps]
                if all(p >= ends[tp] for p, tp in zip(positions, tps)):
                    log.info("gateway: registry read (%d tenants, %d UTMs, %d credential states)",
                             len(self.registry.tenants), len(self.registry.utms), len(self.credentials))
                    self.ready.set()


    async def catch_up(self, timeout: float = 2.0) -> bool:
        """Wait until everything published to the followed topics before this call is read (bounded):
        asked before telling a UTM it is unknown, inactive or revoked, so that a registration or a new
        credential published a moment ago is not refused by a gateway a little behind."""
        consumer, tps = self.consumer, self.partitions
        if consumer is None or not tps:
            return False
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(tps), timeout)
            while True:
                positions = [await consumer.position(tp) for tp in tps]
                if all(p >= ends[tp] for p, tp in zip(positions, tps)):
                    return True
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.02)
        except Exception:  # noqa: BLE001 - a broker that does not answer: judge on what was read
            return False


async def until_started(producer: Producer, on_error: Callable[[str], None]) -> None:
    """Start the producer, retrying while the broker cannot be reached."""
    while True:
        try:
            await producer.start()
            return
        except Exception as exc:  # noqa: BLE001 - retried; /health names it
            on_error(type(exc).__name__)
            await asyncio.sleep(2)
