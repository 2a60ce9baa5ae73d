"""The tenant side of the worker: when mails go (MailDesk over `mimamori-mail-requests`, keyed by
tenant_id) and their delivery from `mail.outbox` (the sender, agents/processors/sender.py).

The mail timing writes a step's mails, the schedules they leave and the requests' offsets in one
transaction. A due mail goes at its due time, not at a timer's next tick: each owned partition has
a wake-up at the earliest due time of its tenants (brought forward when a step makes one earlier),
and a partition that falls due is ticked alone, in its own transaction; a timer looks at every
partition once a second besides, in case a wake-up was missed. The sender records each outbox mail
in its ledger in the transaction that commits the outbox offset and delivers it in the background,
each outcome saved in the partition's transaction.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from agents.context import Context, log
from agents.runtime.processor import Message, Output, PartitionedProcessor, SavedState, StateWrite
from agents.processors.sender import SendHandler, register as register_sender
from pipeline.engine import MailDesk
from pipeline.mail.requests import MailRequest
from pipeline.step import MailStep

DUE_INTERVAL = 1.0
"""How often every partition is looked at for due alert mails besides its wake-up (seconds)."""
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
        self.next_due: dict[int, datetime] = {}
        """Per partition, the earliest due time of its tenants (or earlier: a wake-up finds nothing)."""
        self.wakeups: dict[int, asyncio.TimerHandle] = {}
        self._waking: set[asyncio.Task[None]] = set()

    @property
    def desk(self) -> MailDesk | None:
        return next(iter(self.desks.values()), None)

    async def assigned(self, partition: int, saved: SavedState) -> None:
        await self.ctx.registry_follower.wait_ready()
        desk = MailDesk(self.ctx.settings, self.ctx.registry.tenants.get)
        desk.restore(saved.keyed.get(partition, {}).items())
        self.desks[partition] = desk
        self._due(partition, desk.next_due(), anew=True)

    async def revoked(self, partition: int) -> None:
        self.desks.pop(partition, None)
        self._due(partition, None, anew=True)

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output:
        now = self.ctx.clock.now()
        requests = []
        dead: list[Message] = []
        for record in records:
            try:
                requests.append(MailRequest.from_record(orjson.loads(record.value or b"")))
            except Exception as exc:  # noqa: BLE001 - a record that can never be read is dead-lettered
                dead.append(self.ctx.dead_letter("mail-timing", record, exc))
        desk = self.desks[partition]
        output = self._output(desk.step(requests, now))
        output.messages.extend(dead)
        # a step can only bring the due time of the tenants it touched forward
        tenants = {request.tenant_id for request in requests if request.change is not None}
        self._due(partition, desk.next_due(tenants))
        self.ctx.progressed("mail-timing")
        return output

    async def tick(self, partition: int) -> Output:
        desk = self.desks.get(partition)
        if desk is None:
            return Output()
        output = self._output(desk.tick(self.ctx.clock.now()))
        self._due(partition, desk.next_due(), anew=True)
        return output

    async def tick_all(self) -> None:
        """The timer: every partition whose earliest due time has come, at once (each in its own
        transaction), and each partition's wake-up made again from all its tenants."""
        now = self.ctx.clock.now()
        due = []
        for partition, desk in list(self.desks.items()):
            at = desk.next_due()
            if at is not None and at <= now:
                due.append(partition)  # its tick sets its next wake-up
            else:
                self._due(partition, at, anew=True)
        if due:
            await asyncio.gather(*(self._tick_now(p) for p in due))
        self.ctx.progressed("mail-due")

    async def _tick_now(self, partition: int) -> None:
        assert self.processor is not None
        await self.processor.transact(partition, lambda: self.tick(partition))

    def _due(self, partition: int, at: datetime | None, *, anew: bool = False) -> None:
        """Note a partition's earliest due time (`anew`: computed from all its tenants; otherwise
        only ever earlier) and set its wake-up for then."""
        if not anew:
            known = self.next_due.get(partition)
            if at is None or (known is not None and known <= at):
                return
        handle = self.wakeups.pop(partition, None)
        if handle is not None:
            handle.cancel()
        if at is None:
            self.next_due.pop(partition, None)
            return
        self.next_due[partition] = at
        delay = max(0.0, (at - self.ctx.clock.now()).total_seconds())
        self.wakeups[partition] = asyncio.get_running_loop().call_later(delay, self._spawn_wake, partition, at)

    def _spawn_wake(self, partition: int, at: datetime) -> None:
        task = asyncio.ensure_future(self._wake(partition, at))
        self._waking.add(task)
        task.add_done_callback(self._waking.discard)

    async def _wake(self, partition: int, at: datetime) -> None:
        """A partition's wake-up: its due mails in a transaction of their own, then the next wake-up."""
        if self.next_due.get(partition) != at:
            return  # moved meanwhile
        self.wakeups.pop(partition, None)
        try:
            await self._tick_now(partition)
        except Exception:  # noqa: BLE001 - the timer looks again within DUE_INTERVAL
            self.ctx.metrics.agent_errors.labels("mail-due").inc()
            log.exception("mail timing: the due mails of partition %d failed; the timer tries again", partition)

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
