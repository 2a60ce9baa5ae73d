"""The tenant side of the worker: when mails go (MailDesk over `mimamori-mail-requests`, keyed by
tenant_id) and their delivery from `mail.outbox` (the sender), with a ledger of what went out.

A rendered mail is in the outbox, acknowledged by Kafka, before the schedule that produced it is
saved; a restart may render it again, with the same Message-ID, and the sender's ledger drops the
second copy. The sender acknowledges an outbox record only after the mail was delivered.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

import faust
import orjson

from agents.context import PARTITIONS, Context, log
from agents.gaps import GapGuard, guarded_batch, register_guard
from agents.tables import compound_key, partition_for, route_of, routed_table
from pipeline.correlate import AlertChange
from pipeline.engine import MailDesk
from pipeline.heartbeat import Notice
from pipeline.mail.ledger import DeliveryLedger, Retrier
from pipeline.mail.timing import TenantMailSchedule
from pipeline.mail.transport import PermanentMailError, TransientMailError, open_transport
from pipeline.models import Alert, Mail, Verdict, parse_time
from pipeline.sinks import mail_rows

DUE_INTERVAL = 1.0
LEDGER_KEEP = timedelta(days=30)
LEDGER_PRUNE_INTERVAL = 3600.0


def notice_from_record(data: dict[str, Any]) -> Notice:
    def when(name: str) -> datetime | None:
        return parse_time(data[name]) if data.get(name) else None

    return Notice(kind=data["kind"], utm_id=data["utm_id"], tenant_id=data["tenant_id"], at=parse_time(data["at"]),
                  offline_since=when("offline_since"), last_seen=when("last_seen"), mailed=bool(data["mailed"]),
                  reason=data.get("reason"), day=date.fromisoformat(data["day"]) if data.get("day") else None)


def change_from_request(request: dict[str, Any]) -> AlertChange:
    alert = Alert.from_record(request["alert"])
    if request["type"] == "verdict":
        return AlertChange(alert, request.get("previous_grade"), request.get("notice"), True,
                           Verdict.from_record(request["verdict"]))
    return AlertChange(alert, None, None)


class MailSide:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        app = ctx.app
        self.schedules = routed_table(app, "mail-schedules", PARTITIONS)
        self.desk: MailDesk | None = None
        self.owned: frozenset[int] = frozenset()
        self.lock = asyncio.Lock()

    def ready(self) -> MailDesk:
        topic = self.ctx.topics.mail_requests.get_topic_name()
        owned = frozenset(tp.partition for tp in self.ctx.app.assignor.assigned_actives() if tp.topic == topic)
        if self.desk is None or owned != self.owned:
            settings = self.ctx.settings
            desk = MailDesk(settings, self.ctx.registry.tenants.get)
            for tenant_id, state in self.schedules.items():
                if partition_for(route_of(tenant_id), PARTITIONS) in owned:
                    desk.scheduler.tenants[tenant_id] = TenantMailSchedule.from_state(
                        state, settings.mail_group_wait, settings.mail_group_interval, settings.mail_urgent_wait)
            self.desk, self.owned = desk, owned
        return self.desk

    async def take_batch(self, events: list[faust.EventT]) -> None:
        ctx = self.ctx
        async with self.lock:
            now = ctx.clock.now()
            desk = self.ready()
            mails: list[Mail] = []
            tenants: set[str] = set()
            for event in events:
                try:
                    request = orjson.loads(event.value)
                    if request["type"] == "utm":
                        notice = notice_from_record(request["notice"])
                        mails.extend(desk.notice(notice, now))
                        continue
                    change = change_from_request(request)
                    tenants.add(change.alert.tenant_id)
                    mails.extend(desk.offer(change, now))
                except Exception:
                    ctx.metrics.agent_errors.labels("mail-timing").inc()
                    log.exception("mail request %r could not be taken", (event.value or b"")[:200])
            await self._post(desk, mails, tenants)
        ctx.progressed("mail-timing")

    async def send_due(self) -> None:
        async with self.lock:
            now = self.ctx.clock.now()
            desk = self.ready()
            due = {t for t, s in desk.scheduler.tenants.items() if (at := s.due_at()) is not None and at <= now}
            if due:
                await self._post(desk, desk.due(now), due)
        self.ctx.progressed("mail-due")

    async def _post(self, desk: MailDesk, mails: list[Mail], tenants: set[str]) -> None:
        ctx = self.ctx

        async def send() -> list[Any]:
            return [await ctx.topics.outbox.send(key=mail.tenant_id, value=orjson.dumps(mail.to_record()))
                    for mail in mails]

        await ctx.deliver_all("mail-outbox", send)
        for mail in mails:
            ctx.metrics.mails.labels(mail.kind).inc()
        for tenant_id in tenants:
            schedule = desk.scheduler.tenants.get(tenant_id)
            if schedule is None or schedule.is_idle():
                self.schedules.pop(tenant_id, None)
                desk.scheduler.tenants.pop(tenant_id, None)
            else:
                self.schedules[tenant_id] = schedule.to_state()
        if mails:
            await ctx.app.producer.flush()


class Sender:
    """Delivers outbox mails one by one; a server that is down is waited for, never skipped."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        app = ctx.app
        self.ledger = routed_table(app, "mail-ledger", PARTITIONS)
        self.transport = open_transport(ctx.settings.smtp)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail")
        self.retrier = Retrier()
        self.failed = ctx.topics.failed_mails

    async def deliver(self, value: bytes) -> None:
        ctx = self.ctx
        mail = Mail.from_record(orjson.loads(value))
        key = compound_key(mail.tenant_id, mail.message_id)
        if key in self.ledger:
            log.info("mail %s already delivered; not sent again", mail.message_id)
            return
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                await loop.run_in_executor(self.executor, self.transport.send, mail)
                break
            except TransientMailError as exc:
                ctx.metrics.mail_failures.labels("true").inc()
                ctx.metrics.mails_stuck.set(1)
                delay = self.retrier.delay(attempt, mail.message_id).total_seconds()
                log.warning("mail %s not delivered (%s); retry %d in %.1fs", mail.message_id, exc, attempt + 1, delay)
                attempt += 1
                await asyncio.sleep(delay)
            except PermanentMailError as exc:
                ctx.metrics.mail_failures.labels("false").inc()
                log.error("mail %s refused for good (%s); kept in %s", mail.message_id, exc,
                          self.failed.get_topic_name())
                await (await self.failed.send(key=mail.tenant_id, value=value))
                return
        ctx.metrics.mails_stuck.set(0)
        delivered_at = ctx.clock.now()
        self.ledger[key] = delivered_at.timestamp()
        await ctx.app.producer.flush()
        ctx.metrics.mails_delivered.labels(mail.kind).inc()
        rows = mail_rows([mail], delivered_at)["mails"]
        await ctx.durably("mails", lambda: ctx.store.insert("mails", rows, dedup_token=f"mail:{mail.message_id}"))


def register(ctx: Context) -> tuple[MailSide, Sender]:
    side = MailSide(ctx)
    sender = Sender(ctx)
    app, topics = ctx.app, ctx.topics

    timing_guard = register_guard(ctx, GapGuard(ctx, "mail-timing", {topics.mail_requests.get_topic_name()}))

    @app.agent(topics.mail_requests, name="mail-timing")
    async def mail_timing(stream: faust.StreamT) -> None:
        async for events in stream.take_events(1000, within=0.2):
            await guarded_batch(timing_guard, side.take_batch, list(events))

    @app.timer(DUE_INTERVAL, name="mail-due")
    async def mail_due() -> None:
        try:
            await side.send_due()
        except Exception:
            ctx.metrics.agent_errors.labels("mail-due").inc()
            log.exception("sending due mails failed")

    sender_guard = register_guard(ctx, GapGuard(ctx, "mail-sender", {topics.outbox.get_topic_name()}))

    @app.agent(topics.outbox, name="mail-sender")
    async def mail_sender(stream: faust.StreamT) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            sender_guard.took(event.message.tp, event.message.offset)
            sender_guard.busy = True
            try:
                await sender.deliver(event.value)
            except Exception:
                ctx.metrics.agent_errors.labels("mail-sender").inc()
                log.exception("outbox record %r could not be delivered", (event.value or b"")[:200])
                await (await sender.failed.send(key=event.key, value=event.value))
            sender_guard.busy = False
            ctx.metrics.batch_seconds.labels("mail-sender").observe(time.perf_counter() - started)
            ctx.progressed("mail-sender")

    @app.timer(LEDGER_PRUNE_INTERVAL, name="mail-ledger-prune")
    async def prune_ledger() -> None:
        """A mail can come round again only while its request can be re-read (minutes after a
        crash; the schedules remember mailed grades for days): a month of ledger is plenty."""
        dropped = DeliveryLedger(sender.ledger).forget_before(ctx.clock.now() - LEDGER_KEEP)
        if dropped:
            log.info("mail ledger: %d deliveries older than %s forgotten", dropped, LEDGER_KEEP)

    return side, sender
