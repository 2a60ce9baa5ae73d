"""The tenant side of the worker: when mails go (MailDesk over `mimamori-mail-requests`, keyed by
tenant_id) and their delivery from `mail.outbox` (the sender, agents/processors/sender.py).

The mail timing writes a step's mails, the schedules they leave and the requests' offsets in one
transaction. The sender records each outbox mail in its ledger in the transaction that commits the
outbox offset and delivers it in the background, each outcome saved in the partition's transaction.
"""
from __future__ import annotations

from typing import Any

import orjson
from aiokafka import ConsumerRecord

from agents.context import Context
from agents.runtime.processor import Message, Output, PartitionedProcessor, SavedState, StateWrite
from agents.processors.sender import SendHandler, register as register_sender
from pipeline.engine import MailDesk
from pipeline.mail.requests import MailRequest
from pipeline.step import MailStep

DUE_INTERVAL = 0.25
"""How often due alert mails are looked for (seconds): part of a ★★★ mail's urgent wait + 1 s budget."""
LEDGER_PRUNE_INTERVAL = 3600.0


class MailHandler:
    """Handler of the mail-timing processor: a MailDesk per owned partition of mail requests.

    A step's mails go to the outbox in the same transaction as the schedules they leave and the
    requests' offsets: a worker that dies in between left nothing of the step, and the requests read
    again give the same mails (same Message-IDs)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.desks: dict[int, MailDesk] = {}
        self.processor: PartitionedProcessor | None = None

    @property
    def desk(self) -> MailDesk | None:
        return next(iter(self.desks.values()), None)

    async def assigned(self, partition: int, saved: SavedState) -> None:
        await self.ctx.registry_follower.wait_ready()
        desk = MailDesk(self.ctx.settings, self.ctx.registry.tenants.get)
        desk.restore(saved.keyed.get(partition, {}).items())
        self.desks[partition] = desk

    async def revoked(self, partition: int) -> None:
        self.desks.pop(partition, None)

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output:
        now = self.ctx.clock.now()
        requests = []
        dead: list[Message] = []
        for record in records:
            try:
                requests.append(MailRequest.from_record(orjson.loads(record.value or b"")))
            except Exception as exc:  # noqa: BLE001 - a record that can never be read is dead-lettered
                dead.append(self.ctx.dead_letter("mail-timing", record, exc))
        output = self._output(self.desks[partition].step(requests, now))
        output.messages.extend(dead)
        self.ctx.progressed("mail-timing")
        return output

    async def tick(self, partition: int) -> Output:
        desk = self.desks.get(partition)
        if desk is None:
            return Output()
        return self._output(desk.tick(self.ctx.clock.now()))

    async def tick_all(self) -> None:
        assert self.processor is not None
        await self.processor.each_partition(self.tick)
        self.ctx.progressed("mail-due")

    def _output(self, step: MailStep) -> Output:
        writes = [StateWrite(-1, key, value) for key, value in step.state.keyed.items()]
        return Output(self.ctx.outbox_messages(step.mails), writes)


def register(ctx: Context) -> tuple[MailHandler, SendHandler]:
    handler = MailHandler(ctx)
    sender = SendHandler(ctx)
    topics = ctx.settings.topics
    common: dict[str, Any] = ctx.processor_options()
    timing = PartitionedProcessor(name="mail-timing", group=topics.group("mail-timing"), inputs=[topics.mail_requests],
                                  handler=handler, state_topic=topics.mail_state, max_records=1000, **common)
    handler.processor = timing
    ctx.add_processor(timing)
    ctx.guarded_timer(DUE_INTERVAL, "mail-due", handler.tick_all)
    sending = register_sender(ctx, sender)
    ctx.guarded_timer(LEDGER_PRUNE_INTERVAL, "mail-ledger-prune", lambda: sending.each_partition(sender.prune))
    return handler, sender
