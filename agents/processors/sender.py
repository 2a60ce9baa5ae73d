"""The mail sender: delivers `mail.outbox` without ever letting one customer's mail wait for another's.

`handle` only records each new mail of the outbox in the partition's ledger (`DeliveryBook`:
the mail and its per-recipient state, pipeline/mail/delivery.py) as a state write in the batch's
transaction, and returns. Deliveries run in background tasks, through a pool of connections to the
relay; each attempt's outcome (recipients delivered, parked with their next attempt, refused or
given up and dead-lettered to the failed-mail topic) is saved with `processor.transact(partition,
...)`, in the partition's own transaction. A timer starts the attempts that fall due, urgent mails
first; a worker that restarts finds its parked mails in the ledger and tries each at its due time.
A mail whose Message-ID the ledger knows is never taken again. A kill between the relay's
acceptance and the saved outcome sends that mail again to those recipients, with the same Message-ID.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from agents.context import Context, log
from agents.runtime.reasons import SMTP_UNAVAILABLE
from agents.runtime.processor import Output, PartitionedProcessor, SavedState, StateWrite
from agents.processors.store import row_messages
from pipeline.mail.delivery import (
    DELIVERED, REFUSED, Answer, Applied, Delivery, DeliveryBook, RetryPolicy, parked_by_grade,
)
from pipeline.io.smtp import RelayPool, open_transport
from pipeline.models import Mail, iso
from pipeline.io.sinks import mail_rows

DISPATCH_INTERVAL = 0.25
"""How often the timer looks for parked mails that fell due (seconds)."""
MAX_IN_FLIGHT = 16
"""Attempts started and not finished at most: beyond it, due mails wait their turn, urgent first,
so that a backlog (a broadcast) never sits in front of a ★★★ mail for long."""
POOL_SIZE = 4
PER_DOMAIN = 2
LEDGER_KEEP = timedelta(days=30)


class SendHandler:
    """Handler of the mail-sender processor (one `DeliveryBook` per owned outbox partition)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.books: dict[int, DeliveryBook] = {}
        url = ctx.settings.smtp
        self.pool = RelayPool(lambda: open_transport(url), size=POOL_SIZE, per_domain=PER_DOMAIN)
        self.policy = RetryPolicy(give_up=ctx.settings.mail_give_up)
        self.in_flight: dict[str, int] = {}
        """Ledger key -> partition of the attempts running now."""
        self.processor: PartitionedProcessor | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the processor's handler ---------------------------------------------------------------

    async def assigned(self, partition: int, saved: SavedState) -> None:
        book = DeliveryBook()
        book.restore(saved.keyed.get(partition, {}).items())
        self.books[partition] = book
        opened = book.open()
        for delivery in opened.values():
            self._waiting(delivery)
        if opened:
            log.info("mail sender: partition %d has %d mail(s) to deliver (%d parked)", partition, len(opened),
                     sum(1 for d in opened.values() if d.parked))
        self._observe()

    async def revoked(self, partition: int) -> None:
        book = self.books.pop(partition, None)
        if book is not None:
            self.ctx.metrics.forget_mails(d.message_id for d in book.open().values())
        self._observe()

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output:
        """Record the new mails, nothing more: never waits for SMTP."""
        output = Output()
        book = self.books[partition]
        now = self.ctx.clock.now()
        fresh = False
        for record in records:
            try:
                mail = Mail.from_record(orjson.loads(record.value or b""))
            except Exception as exc:  # noqa: BLE001 - a record that can never be read is dead-lettered
                output.messages.append(self.ctx.dead_letter("mail-sender", record, exc))
                continue
            taken = book.take(mail, now)
            if taken is None:
                log.info("mail %s already in the ledger; not sent again", mail.message_id)
                continue
            key, delivery = taken
            output.state.append(StateWrite(partition, key, book.entry(key)))
            self._waiting(delivery)
            fresh = True
        if fresh:
            # first attempts start now, while the batch commits: an outcome is saved only after it
            # (the partition's lock), and a batch that never commits is read again by the next
            # owner, which sends those mails again under the same Message-IDs
            self.dispatch()
        self.ctx.progressed("mail-sender")
        return output

    # --- attempts -------------------------------------------------------------------------------

    async def tick(self) -> None:
        """The timer: start what fell due, keep the gauges current."""
        self.dispatch()
        self._observe()
        self.ctx.progressed("mail-dispatch")

    def dispatch(self) -> int:
        """Start the attempts due now, urgent mails first, up to MAX_IN_FLIGHT at once."""
        now = self.ctx.clock.now()
        due: list[tuple[bool, datetime, str, int]] = []
        for partition, book in self.books.items():
            for key, delivery in book.open().items():
                at = delivery.due_at()
                if at is not None and at <= now and key not in self.in_flight:
                    due.append((delivery.grade != 3, at, key, partition))
        started = 0
        for _, _, key, partition in sorted(due):
            if len(self.in_flight) >= MAX_IN_FLIGHT:
                break
            self.in_flight[key] = partition
            self._spawn(self._attempt(partition, key))
            started += 1
        return started

    async def _attempt(self, partition: int, key: str) -> None:
        try:
            book = self.books.get(partition)
            delivery = book.deliveries.get(key) if book is not None else None
            if book is None or delivery is None or delivery.done:
                return
            mail = book.mail(key)
            recipients = delivery.due(self.ctx.clock.now())
            if not recipients:
                return
            answers = await self.pool.deliver(mail, recipients)
            answered_at = self.ctx.clock.now()
            self._relay_health()
            assert self.processor is not None
            saved = await self._save_outcome(partition, key, mail, answers, answered_at)
            if not saved:
                log.warning("mail %s: partition %d moved before its outcome was saved; its new owner tries again",
                            mail.message_id, partition)
        finally:
            self.in_flight.pop(key, None)
            self.dispatch()

    async def _save_outcome(self, partition: int, key: str, mail: Mail, answers: dict[str, Answer],
                            at: datetime) -> bool:
        """Save an attempt's answers in the partition's transaction. A partition in the middle of a
        rebalance (revoked, being fenced and restored, most often given straight back) is waited
        for: giving up at once would send the mail again once it is back. False when it went to
        another member (which sends it again, under the same Message-ID) or never came back."""
        assert self.processor is not None
        deadline = time.monotonic() + OUTCOME_WAIT
        while True:
            if await self.processor.transact(partition, lambda: self._save(partition, key, mail, answers, at)):
                return True
            if not self.processor.may_own(partition) or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)

    async def _save(self, partition: int, key: str, mail: Mail, answers: dict[str, Answer],
                    at: datetime) -> Output:
        """Under the partition's lock: apply an attempt's answers and write what they change."""
        ctx = self.ctx
        book = self.books.get(partition)
        delivery = book.deliveries.get(key) if book is not None else None
        if book is None or delivery is None:
            return Output()
        first_acceptance = not delivery.delivered_to()
        applied = delivery.apply(answers, at, self.policy)
        for answer in answers.values():
            ctx.metrics.mail_attempts.labels(answer.outcome).inc()
        output = Output(state=[StateWrite(partition, key, book.entry(key))])
        if applied.delivered and first_acceptance:
            if delivery.arrived_at is not None:
                ctx.metrics.observe_notice(mail.grade, (at - delivery.arrived_at).total_seconds())
                log.info("mail %s (grade %s) accepted %.2fs after its first alert reached the mail desk "
                         "(mail made %.2fs, taken by the sender %.2fs after it)", mail.message_id, mail.grade,
                         (at - delivery.arrived_at).total_seconds(), (mail.sent_at - delivery.arrived_at).total_seconds(),
                         (delivery.queued_at - delivery.arrived_at).total_seconds())
            output.messages.extend(row_messages(ctx.settings.topics.store_rows, mail_rows([mail], at)))
        if applied.parked:
            ctx.metrics.mail_failures.labels("true").inc()
            log.warning("mail %s (tenant %s) deferred for %d recipient(s) (%s); parked until %s, the others go on",
                        mail.message_id, mail.tenant_id, len(applied.parked),
                        delivery.recipients[applied.parked[0]].detail, iso(applied.next_at))
        if applied.failed:
            ctx.metrics.mail_failures.labels("false").inc()
            output.messages.append(self._dead_letter(mail, delivery, applied, at))
        if delivery.done:
            ctx.metrics.mail_done(mail.message_id)
            if delivery.status == DELIVERED:
                ctx.metrics.mails_delivered.labels(mail.kind).inc()
        self._observe()
        return output

    def _dead_letter(self, mail: Mail, delivery: Delivery, applied: Applied, at: datetime) -> tuple[Any, ...]:
        """A failed-mail record: why, for whom, and the mail itself (its outbox record)."""
        topics = self.ctx.settings.topics
        reasons = sorted({"refused" if r.status == REFUSED else "gave_up" for r in applied.failed})
        log.error("mail %s (tenant %s) %s for %d recipient(s) (%s); kept in %s", mail.message_id, mail.tenant_id,
                  " and ".join(reasons), len(applied.failed), applied.failed[0].detail, topics.failed_mails)
        record = {
            "reason": reasons[0] if len(reasons) == 1 else "refused",
            "failed_at": iso(at), "message_id": mail.message_id, "tenant_id": mail.tenant_id,
            "recipients": [{"address": r.address, "status": r.status, "attempts": r.attempts, "detail": r.detail}
                           for r in applied.failed],
            "delivered_to": delivery.delivered_to(), "mail": mail.to_record(),
        }
        return (topics.failed_mails, mail.tenant_id.encode(), orjson.dumps(record), None)

    # --- upkeep ---------------------------------------------------------------------------------

    async def prune(self, partition: int) -> Output:
        """A mail comes round again only while its request can be re-read (minutes after a crash;
        the schedules remember mailed grades for days): a month of finished entries is plenty."""
        book = self.books.get(partition)
        if book is None:
            return Output()
        old = book.forget_before(self.ctx.clock.now() - LEDGER_KEEP)
        if old:
            log.info("mail ledger: %d finished deliveries older than %s forgotten", len(old), LEDGER_KEEP)
        return Output([], [StateWrite(partition, key, None) for key in old])

    def _waiting(self, delivery: Delivery) -> None:
        since = delivery.sent_at or delivery.queued_at
        self.ctx.metrics.mail_waiting(delivery.message_id, since.timestamp(), delivery.grade)

    def _observe(self) -> None:
        opened = [d for book in self.books.values() for d in book.open().values()]
        parked = parked_by_grade(opened)
        self.ctx.metrics.set_parked(parked)
        self.ctx.metrics.mails_stuck.set(sum(parked.values()))

    def _relay_health(self) -> None:
        """The relay unusable is everyone's problem (/health); one customer's server deferring is not."""
        if self.pool.unreachable:
            self.ctx.failing["mail-sender"] = SMTP_UNAVAILABLE
        else:
            self.ctx.failing.pop("mail-sender", None)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.ctx.metrics.agent_errors.labels("mail-sender").inc()
            log.error("mail sender: a delivery task failed", exc_info=task.exception())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.pool.close()


OUTCOME_WAIT = 60.0
"""How long a finished attempt waits for its partition to be ready again to save its outcome."""


def register(ctx: Context, sender: SendHandler) -> PartitionedProcessor:
    topics = ctx.settings.topics
    sending = PartitionedProcessor(name="mail-sender", group=topics.group("mail-sender"), inputs=[topics.outbox],
                                   handler=sender, state_topic=topics.mail_ledger, max_records=100,
                                   **ctx.processor_options())
    sender.processor = sending
    ctx.add_processor(sending)
    ctx.guarded_timer(DISPATCH_INTERVAL, "mail-dispatch", sender.tick)
    return sending

