"""The tenant side of the worker: when mails go (MailDesk over `mimamori-mail-requests`, keyed by
tenant_id) and their delivery from `mail.outbox` (the sender), with a ledger of what went out.

A rendered mail is in the outbox, acknowledged by Kafka, before the schedule that produced it is
saved; a restart may render it again, with the same Message-ID, and the sender's ledger drops the
second copy. The sender saves a delivery in its ledger before the outbox offset is committed.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from agents.context import PARTITIONS, SMTP_UNAVAILABLE, Context, log
from agents.runtime import PartitionedProcessor, SavedState, StateWrite
from agents.store import row_messages
from agents.partitioning import partition_for
from pipeline.engine import MailDesk
from pipeline.mail.ledger import Retrier
from pipeline.mail.requests import MailRequest
from pipeline.mail.transport import PermanentMailError, TransientMailError, open_transport
from pipeline.models import Mail
from pipeline.sinks import mail_rows
from pipeline.step import MailStep, route_of, state_key

DUE_INTERVAL = 1.0
LEDGER_KEEP = timedelta(days=30)
LEDGER_PRUNE_INTERVAL = 3600.0


SENT_KEY = "\x1fsent"
"""State key (per partition) of a step's results saved before its mails go to the outbox."""


class MailSide:
    """Handler of the mail-timing processor: owns the MailDesk of this worker's tenants.

    A step's mails and the schedules they leave are saved (one `sent` record per partition) before
    the mails go to the outbox; the schedules are then saved as usual and the record removed. A
    worker that dies in between is followed by one that restores the schedules of that record and
    puts its mails in the outbox again (same Message-IDs: the sender's ledger drops what went), so
    the requests it reads again find their alerts mailed, not pending."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.desk: MailDesk | None = None
        self.processor: PartitionedProcessor | None = None

    async def assigned(self, partitions: set[int], saved: SavedState) -> None:
        await self.ctx.registry_follower.wait_ready()
        desk = MailDesk(self.ctx.settings, self.ctx.registry.tenants.get)
        desk.restore((key, value) for p in partitions for key, value in saved.keyed.get(p, {}).items()
                     if key != SENT_KEY)
        unsent: list[Mail] = []
        for p in partitions:
            sent = saved.keyed.get(p, {}).get(SENT_KEY)
            if sent:
                desk.restore(sent["state"].items())
                unsent += [Mail.from_record(m) for m in sent["mails"]]
        if unsent:
            log.warning("mail timing: %d mail(s) of a step cut short put in the outbox again", len(unsent))
            await self.ctx.publish_outbox(unsent)
        self.desk = desk

    async def revoked(self, partitions: set[int]) -> None:
        self.desk = None

    async def process(self, records: list[ConsumerRecord]) -> list[StateWrite]:
        assert self.desk is not None
        now = self.ctx.clock.now()
        requests = []
        for record in records:
            try:
                requests.append(MailRequest.from_record(orjson.loads(record.value or b"")))
            except Exception as exc:  # noqa: BLE001 - a record that can never be read is dead-lettered
                await self.ctx.dead_letter("mail-timing", record, exc)
        writes = await self._send(self.desk.step(requests, now))
        self.ctx.progressed("mail-timing")
        return writes

    async def tick(self) -> list[StateWrite]:
        if self.desk is None:
            return []
        writes = await self._send(self.desk.tick(self.ctx.clock.now()))
        self.ctx.progressed("mail-due")
        return writes

    async def _send(self, step: MailStep) -> list[StateWrite]:
        writes = _writes(step)
        if not step.mails:
            return writes
        sent: dict[int, dict[str, Any]] = {}
        for write in writes:
            sent.setdefault(write.partition, {"state": {}, "mails": []})["state"][write.key] = write.value
        for mail in step.mails:
            sent.setdefault(partition_for(mail.tenant_id, PARTITIONS), {"state": {}, "mails": []})["mails"].append(
                mail.to_record())
        assert self.processor is not None
        await self.processor.write_state([StateWrite(p, SENT_KEY, record) for p, record in sent.items()])
        await self.ctx.publish_outbox(step.mails)
        return writes + [StateWrite(p, SENT_KEY, None) for p in sent]


def _writes(step: MailStep) -> list[StateWrite]:
    return [StateWrite(partition_for(route_of(key), PARTITIONS), key, value) for key, value in step.state.keyed.items()]


class Sender:
    """Handler of the mail-sender processor: delivers outbox mails one by one; a server that is
    down is waited for, never skipped; a mail refused for good goes to the failed-mail topic."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.ledger: dict[str, float] = {}
        self.transport = open_transport(ctx.settings.smtp)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")
        self.retrier = Retrier()
        self.processor: PartitionedProcessor | None = None

    async def assigned(self, partitions: set[int], saved: SavedState) -> None:
        self.ledger = {key: value for p in partitions for key, value in saved.keyed.get(p, {}).items()}

    async def revoked(self, partitions: set[int]) -> None:
        self.ledger = {}

    async def process(self, records: list[ConsumerRecord]) -> list[StateWrite]:
        for record in records:
            started = time.perf_counter()
            try:
                mail = Mail.from_record(orjson.loads(record.value or b""))
            except Exception as exc:  # noqa: BLE001
                await self.ctx.dead_letter("mail-sender", record, exc)
                continue
            await self.deliver(mail, record.value or b"")
            self.ctx.metrics.batch_seconds.labels("mail-sender").observe(time.perf_counter() - started)
            self.ctx.progressed("mail-sender")
        return []

    async def deliver(self, mail: Mail, value: bytes) -> None:
        ctx = self.ctx
        key = state_key(mail.tenant_id, mail.message_id)
        if key in self.ledger:
            log.info("mail %s already delivered; not sent again", mail.message_id)
            return
        ctx.metrics.mail_waiting(mail.message_id, mail.sent_at.timestamp())
        try:
            await self._deliver(mail, value, key)
        finally:
            ctx.metrics.mail_done(mail.message_id)

    async def _deliver(self, mail: Mail, value: bytes, key: str) -> None:
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
                await ctx.deliver_all("mail-failed", lambda: ctx.publisher.send_all(
                    [(ctx.settings.topics.failed_mails, mail.tenant_id.encode(), value, None)]))
                return
        ctx.failing.pop("mail-sender", None)
        ctx.metrics.mails_stuck.set(0)
        delivered_at = ctx.clock.now()
        if mail.arrived_at is not None:
            ctx.metrics.observe_notice(mail.grade, (delivered_at - mail.arrived_at).total_seconds())
        self.ledger[key] = delivered_at.timestamp()
        assert self.processor is not None
        await self.processor.write_state([StateWrite(partition_for(mail.tenant_id, PARTITIONS), key, self.ledger[key])])
        ctx.metrics.mails_delivered.labels(mail.kind).inc()
        await ctx.deliver_all("mail-rows", lambda: ctx.publisher.send_all(
            row_messages(ctx.settings.topics.store_rows, mail_rows([mail], delivered_at))))

    async def prune(self) -> list[StateWrite]:
        """A mail can come round again only while its request can be re-read (minutes after a
        crash; the schedules remember mailed grades for days): a month of ledger is plenty."""
        cutoff = (self.ctx.clock.now() - LEDGER_KEEP).timestamp()
        old = [key for key, at in self.ledger.items() if at < cutoff]
        for key in old:
            del self.ledger[key]
        if old:
            log.info("mail ledger: %d deliveries older than %s forgotten", len(old), LEDGER_KEEP)
        return [StateWrite(partition_for(route_of(key), PARTITIONS), key, None) for key in old]


def register(ctx: Context) -> tuple[MailSide, Sender]:
    side = MailSide(ctx)
    sender = Sender(ctx)
    topics = ctx.settings.topics
    common: dict[str, Any] = {"bootstrap": ctx.settings.kafka, "publisher": ctx.publisher,
                              "loop": ctx.app.loop, "beacon": ctx.app.beacon}
    timing = PartitionedProcessor(name="mail-timing", group=topics.group("mail-timing"), inputs=[topics.mail_requests],
                                  handler=side, state_topic=topics.mail_state, max_records=1000, **common)
    sending = PartitionedProcessor(name="mail-sender", group=topics.group("mail-sender"), inputs=[topics.outbox],
                                   handler=sender, state_topic=topics.mail_ledger, max_records=100, **common)
    sender.processor = sending
    side.processor = timing
    ctx.add_processor(timing)
    ctx.add_processor(sending)
    ctx.guarded_timer(DUE_INTERVAL, "mail-due", lambda: timing.exclusive(side.tick))
    ctx.guarded_timer(LEDGER_PRUNE_INTERVAL, "mail-ledger-prune", lambda: sending.exclusive(sender.prune))
    return side, sender
