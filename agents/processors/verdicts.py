"""Verdicts arrive keyed by alert_id; the UTM side needs them on the partition of the alert's UTM.

The detect side publishes each new alert's route (alert_id -> utm_id) on a compacted topic; every
worker follows it whole. The router re-keys each verdict by its UTM. A verdict for an
alert no route names, once the book has caught up with the topic, is dead-lettered.
"""
from __future__ import annotations

import asyncio
import time
import orjson
from aiokafka import ConsumerRecord

from agents.context import Context
from agents.runtime.follow import CompactedFollower
from agents.runtime.processor import Message, Output, PartitionedProcessor, StatelessHandler
from pipeline.models import Verdict

UNKNOWN_WAIT = 10.0
"""How long a verdict waits for its alert's route before it is taken as one for an unknown alert."""


class VerdictHandler(StatelessHandler):
    def __init__(self, ctx: Context, book: CompactedFollower) -> None:
        self.ctx = ctx
        self.book = book

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output:
        ctx = self.ctx
        routed: list[Message] = []
        for record in records:
            try:
                verdict = Verdict.from_record(orjson.loads(record.value or b""))
                utm_id = await self._route(verdict.alert_id)
                if utm_id is None:
                    raise LookupError(f"no alert {verdict.alert_id!r} is known")
                routed.append((ctx.settings.topics.verdicts_by_utm, utm_id.encode(), record.value, None))
            except Exception as exc:  # noqa: BLE001 - dead-lettered, the partition goes on
                routed.append(ctx.dead_letter("route-verdicts", record, exc))
        ctx.progressed("route-verdicts")
        return Output(routed)

    async def _route(self, alert_id: str) -> str | None:
        asked = time.time()
        while True:
            utm_id = self.book.values.get(alert_id)
            if utm_id is not None or self.book.read_at > asked or time.time() - asked > UNKNOWN_WAIT:
                return utm_id
            await asyncio.sleep(0.1)


def register(ctx: Context) -> VerdictHandler:
    topics = ctx.settings.topics
    book = ctx.follower.topic(topics.alert_routes, bytes.decode, "route-book")
    book.start()

    router = VerdictHandler(ctx, book)
    ctx.add_processor(PartitionedProcessor(
        name="route-verdicts", group=topics.group("route-verdicts"),
        inputs=[topics.verdicts], handler=router, max_records=500, **ctx.processor_options()))
    return router
