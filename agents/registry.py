"""The registry: every worker follows the compacted registry topics into memory; one mirror
agent writes them to the store for the portal views."""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import orjson

from agents.context import Context, log
from agents.runtime import PartitionedProcessor, StatelessHandler
from pipeline.config import Settings
from pipeline.kafka_security import kafka_python_options
from pipeline.models import Registry, Tenant, Utm
from pipeline.rows import tenant_removed_row, tenant_row, utm_removed_row, utm_row
from agents.store import row_messages


class RegistryFollower:
    """Every worker reads the compacted registry topics whole, from the beginning and without a
    consumer group, into its own Registry, in a thread of its own. `ready` is set once it has read
    what the topics held when it started; the detect agent waits for it, so that a cold start does
    not reject the first events of UTMs it has simply not read about yet."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.records = 0
        self.thread = threading.Thread(target=self._run, name="registry-follower", daemon=True)

    def apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            log.warning("registry record without key on %s ignored", topic)
            return
        table: dict[str, Any]
        decode: Callable[[dict[str, Any]], Any]
        if topic == self.settings.topics.tenants:
            table, decode = self.registry.tenants, Tenant.from_record
        else:
            table, decode = self.registry.utms, Utm.from_record
        name = key.decode(errors="replace")
        if value is None:
            table.pop(name, None)
            return
        try:
            table[name] = decode(orjson.loads(value))
        except Exception as exc:
            log.error("registry record %r on %s refused: %s", name, topic, exc)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    async def wait_ready(self) -> None:
        while not self.ready.is_set():
            await asyncio.sleep(0.1)

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)

        while not self.stopping.is_set():
            try:
                consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka.split(","), group_id=None,
                                         enable_auto_commit=False, client_id="mimamori-registry",
                                         **kafka_python_options(self.settings))
                try:
                    topics = (self.settings.topics.tenants, self.settings.topics.utms)
                    partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
                    consumer.assign(partitions)
                    consumer.seek_to_beginning(*partitions)
                    ends = consumer.end_offsets(partitions)
                    self._follow(consumer, ends)
                finally:
                    consumer.close()
            except Exception:
                log.exception("registry follower failed; reading the registry again in 5 s")
                self.stopping.wait(5)

    def _follow(self, consumer: Any, ends: dict[Any, int]) -> None:
        while not self.stopping.is_set():
            if not self.ready.is_set() and all(consumer.position(tp) >= end for tp, end in ends.items()):
                log.info("registry read: %d tenants, %d UTMs", len(self.registry.tenants), len(self.registry.utms))
                self.ready.set()
            for tp, messages in consumer.poll(timeout_ms=500, max_records=5000).items():
                for message in messages:
                    self.apply(tp.topic, message.key, message.value)
                    self.records += 1


def register_follower(ctx: Context) -> RegistryFollower:
    follower = RegistryFollower(ctx.settings, ctx.registry)
    follower.start()

    @ctx.app.on_before_shutdown.connect
    def stop_following(app: Any, **kwargs: Any) -> None:
        follower.stop()

    return follower


@dataclass(frozen=True)
class _Mirror:
    table: str
    topic: str
    decode: Callable[[dict[str, Any]], Any]
    row: Callable[[Any, datetime], dict[str, Any]]
    removed_row: Callable[[str, datetime], dict[str, Any]]


def register_mirrors(ctx: Context) -> None:
    """One agent per compacted registry topic (run by whichever worker owns its single partition)
    writes each record to the store's registry table, which the portal views join; a null value
    writes a removal."""
    topics = ctx.settings.topics
    for mirror in (
        _Mirror("tenants", topics.tenants, Tenant.from_record, tenant_row, tenant_removed_row),
        _Mirror("utms", topics.utms, Utm.from_record, utm_row, utm_removed_row),
    ):
        _register_mirror(ctx, mirror)


class _MirrorHandler(StatelessHandler):
    """Writes each registry record to the store's registry table; a null value writes a removal."""

    def __init__(self, ctx: Context, mirror: _Mirror) -> None:
        self.ctx = ctx
        self.mirror = mirror

    async def process(self, records: list[Any]) -> list[Any]:
        ctx, mirror = self.ctx, self.mirror
        now = ctx.clock.now()
        rows = []
        for record in records:
            if record.key is None:
                log.warning("registry record without key on %s ignored", mirror.topic)
                continue
            try:
                if record.value is None:
                    rows.append(mirror.removed_row(record.key.decode(), now))
                else:
                    rows.append(mirror.row(mirror.decode(orjson.loads(record.value)), now))
            except Exception as exc:  # noqa: BLE001
                await ctx.dead_letter(f"mirror-{mirror.table}", record, exc)
        if rows:
            await ctx.deliver_all(f"mirror-{mirror.table}", lambda: ctx.publisher.send_all(
                row_messages(ctx.settings.topics.store_rows, {mirror.table: rows})))
        ctx.progressed(f"mirror-{mirror.table}")
        return []


def _register_mirror(ctx: Context, mirror: _Mirror) -> None:
    ctx.add_processor(PartitionedProcessor(
        name=f"mirror-{mirror.table}", group=ctx.settings.topics.group(f"mirror-{mirror.table}"),
        bootstrap=ctx.settings.kafka, inputs=[mirror.topic], handler=_MirrorHandler(ctx, mirror),
        publisher=ctx.publisher, max_records=5000, loop=ctx.app.loop, beacon=ctx.app.beacon))
