"""The tenant side of the worker: when mails go (MailDesk over `mimamori-mail-requests`, keyed by
tenant_id) and their delivery from `mail.outbox` (the sender), with a ledger of what went out.

The mail timing writes a step's mails, the schedules they leave and the requests' offsets in one
transaction. The sender saves a delivery in its ledger, in the transaction that commits the outbox
offset; a kill between the SMTP server's acceptance and that commit sends the mail again, with the
same Message-ID.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from agents.context import SMTP_UNAVAILABLE, Context, log
from agents.runtime import Message, Output, PartitionedProcessor, SavedState, StateWrite
from agents.store import row_messages
from pipeline.engine import MailDesk
from pipeline.mail.ledger import Retrier
from pipeline.mail.requests import MailRequest
from pipeline.mail.transport import PermanentMailError, TransientMailError, open_transport
from pipeline.models import Mail
from pipeline.sinks import mail_rows
from pipeline.step import MailStep, state_key

DUE_INTERVAL = 1.0
LEDGER_KEEP = timedelta(days=30)
LEDGER_PRUNE_INTERVAL = 3600.0


class MailSide:
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

    async def process(self, partition: int, records: list[ConsumerRecord]) -> Output:
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


class Sender:
    """Handler of the mail-sender processor: delivers outbox mails one by one; a server that is
    down is waited for, never skipped; a mail refused for good goes to the failed-mail topic."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.ledgers: dict[int, dict[str, float]] = {}
        self.transport = open_transport(ctx.settings.smtp)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")
        self.retrier = Retrier()
        self.processor: PartitionedProcessor | None = None

    async def assigned(self, partition: int, saved: SavedState) -> None:
        self.ledgers[partition] = dict(saved.keyed.get(partition, {}))

    async def revoked(self, partition: int) -> None:
        self.ledgers.pop(partition, None)

    async def process(self, partition: int, records: list[ConsumerRecord]) -> Output:
        output = Output()
        for record in records:
            started = time.perf_counter()
            try:
                mail = Mail.from_record(orjson.loads(record.value or b""))
            except Exception as exc:  # noqa: BLE001
                output.messages.append(self.ctx.dead_letter("mail-sender", record, exc))
                continue
            output.extend(await self.deliver(partition, mail, record.value or b""))
            self.ctx.metrics.batch_seconds.labels("mail-sender").observe(time.perf_counter() - started)
            self.ctx.progressed("mail-sender")
        return output

    async def deliver(self, partition: int, mail: Mail, value: bytes) -> Output:
        ctx = self.ctx
        key = state_key(mail.tenant_id, mail.message_id)
        if key in self.ledgers[partition]:
            log.info("mail %s already delivered; not sent again", mail.message_id)
            return Output()
        ctx.metrics.mail_waiting(mail.message_id, mail.sent_at.timestamp())
        try:
            return await self._deliver(partition, mail, value, key)
        finally:
            ctx.metrics.mail_done(mail.message_id)

    async def _deliver(self, partition: int, mail: Mail, value: bytes, key: str) -> Output:
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                await loop.run_in_executor(self.executor, self.transport.send, mail)
                break
            except TransientMailError as exc:
                ctx.metrics.mail_failures.labels("true").inc()
                ctx.metrics.mails_stuck.set(1)
                ctx.failing["mail-sender"] = SMTP_UNAVAILABLE
                delay = self.retrier.delay(attempt, mail.message_id).total_seconds()
                log.warning("mail %s not delivered (%s); retry %d in %.1fs", mail.message_id, exc, attempt + 1, delay)
                attempt += 1
                await asyncio.sleep(delay)
            except PermanentMailError as exc:
                ctx.metrics.mail_failures.labels("false").inc()
                log.error("mail %s refused for good (%s); kept in %s", mail.message_id, exc,
                          ctx.settings.topics.failed_mails)
                return Output([(ctx.settings.topics.failed_mails, mail.tenant_id.encode(), value, None)])
        ctx.failing.pop("mail-sender", None)
        ctx.metrics.mails_stuck.set(0)
        delivered_at = ctx.clock.now()
        if mail.arrived_at is not None:
            ctx.metrics.observe_notice(mail.grade, (delivered_at - mail.arrived_at).total_seconds())
        self.ledgers[partition][key] = delivered_at.timestamp()
        ctx.metrics.mails_delivered.labels(mail.kind).inc()
        return Output(row_messages(ctx.settings.topics.store_rows, mail_rows([mail], delivered_at)),
                      [StateWrite(-1, key, delivered_at.timestamp())])

    async def prune(self, partition: int) -> Output:
        """A mail can come round again only while its request can be re-read (minutes after a
        crash; the schedules remember mailed grades for days): a month of ledger is plenty."""
        ledger = self.ledgers.get(partition, {})
        cutoff = (self.ctx.clock.now() - LEDGER_KEEP).timestamp()
        old = [key for key, at in ledger.items() if at < cutoff]
        for key in old:
            del ledger[key]
        if old:
            log.info("mail ledger: %d deliveries older than %s forgotten", len(old), LEDGER_KEEP)
        return Output([], [StateWrite(-1, key, None) for key in old])


def register(ctx: Context) -> tuple[MailSide, Sender]:
    side = MailSide(ctx)
    sender = Sender(ctx)
    topics = ctx.settings.topics
    common: dict[str, Any] = ctx.processor_options()
    timing = PartitionedProcessor(name="mail-timing", group=topics.group("mail-timing"), inputs=[topics.mail_requests],
                                  handler=side, state_topic=topics.mail_state, max_records=1000, **common)
    sending = PartitionedProcessor(name="mail-sender", group=topics.group("mail-sender"), inputs=[topics.outbox],
                                   handler=sender, state_topic=topics.mail_ledger, max_records=1, **common)
    sender.processor = sending
    side.processor = timing
    ctx.add_processor(timing)
    ctx.add_processor(sending)
    ctx.guarded_timer(DUE_INTERVAL, "mail-due", side.tick_all)
    ctx.guarded_timer(LEDGER_PRUNE_INTERVAL, "mail-ledger-prune", lambda: sending.each_partition(sender.prune))
    return side, sender
