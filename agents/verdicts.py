"""Verdicts arrive keyed by alert_id; the UTM side needs them on the partition of the alert's UTM.

The detect side publishes each new alert's route (alert_id -> utm_id) on a compacted topic; every
worker follows it whole (`RouteBook`). The router re-keys each verdict by its UTM. A verdict for an
alert no route names, once the book has caught up with the topic, is dead-lettered.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from agents.context import Context, log
from agents.runtime import PartitionedProcessor, SavedState, StateWrite
from pipeline.models import Verdict

UNKNOWN_WAIT = 10.0
"""How long a verdict waits for its alert's route before it is taken as one for an unknown alert."""


class RouteBook:
    """alert_id -> utm_id, read from the compacted routes topic by a thread of its own."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.routes: dict[str, str] = {}
        self.read_at = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="route-book", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        while not self.stopping.is_set():
            try:
                consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), group_id=None,
                                         enable_auto_commit=False, client_id="mimamori-routes")
                try:
                    tps = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or ())]
                    consumer.assign(tps)
                    consumer.seek_to_beginning(*tps)
                    while not self.stopping.is_set():
                        asked = time.time()
                        ends = consumer.end_offsets(tps)
                        for tp, records in consumer.poll(timeout_ms=200, max_records=10_000).items():
                            for r in records:
                                if r.key is not None and r.value is not None:
                                    self.routes[r.key.decode()] = r.value.decode()
                        if all(consumer.position(tp) >= ends[tp] for tp in tps):
                            self.read_at = asked
                finally:
                    consumer.close()
            except Exception:
                log.exception("route book failed; reading the routes again in 5 s")
                self.stopping.wait(5)


class VerdictRouter:
    def __init__(self, ctx: Context, book: RouteBook) -> None:
        self.ctx = ctx
        self.book = book

    async def assigned(self, partitions: set[int], saved: SavedState) -> None:
        return None

    async def revoked(self, partitions: set[int]) -> None:
        return None

    async def process(self, records: list[ConsumerRecord]) -> list[StateWrite]:
        ctx = self.ctx
        routed = []
        for record in records:
            try:
                verdict = Verdict.from_record(orjson.loads(record.value or b""))
                utm_id = await self._route(verdict.alert_id)
                if utm_id is None:
                    raise LookupError(f"no alert {verdict.alert_id!r} is known")
                routed.append((ctx.settings.topics.verdicts_by_utm, utm_id.encode(), record.value, None))
            except Exception as exc:  # noqa: BLE001 - dead-lettered, the partition goes on
                await ctx.dead_letter("route-verdicts", record, exc)
        await ctx.deliver_all("route-verdicts", lambda: ctx.publisher.send_all(routed))
        ctx.progressed("route-verdicts")
        return []

    async def _route(self, alert_id: str) -> str | None:
        asked = time.time()
        while True:
            utm_id = self.book.routes.get(alert_id)
            if utm_id is not None or self.book.read_at > asked or time.time() - asked > UNKNOWN_WAIT:
                return utm_id
            await asyncio.sleep(0.1)


def register(ctx: Context) -> VerdictRouter:
    topics = ctx.settings.topics
    book = RouteBook(ctx.settings.kafka, topics.alert_routes)
    book.start()

    @ctx.app.on_before_shutdown.connect
    def stop_book(app: Any, **kwargs: Any) -> None:
        book.stop()

    router = VerdictRouter(ctx, book)
    ctx.add_processor(PartitionedProcessor(
        name="route-verdicts", group=topics.group("route-verdicts"), bootstrap=ctx.settings.kafka,
        inputs=[topics.verdicts], handler=router, publisher=ctx.publisher, max_records=500,
        loop=ctx.app.loop, beacon=ctx.app.beacon))
    return router
