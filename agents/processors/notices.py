"""Service notices in the worker: one processor on the single-partition `service.notices` topic (so
one worker owns each broadcast, and reads the versions of a notice in order) writes each version to
the store's `notices` table for the portal and queues its broadcast; a timer puts the queued mails
into the outbox at MIMAMORI_NOTICE_MAIL_RATE.

A broadcast is saved state (`mimamori-notice-state`: the notice and the tenants still to mail), so
no batch waits for the pacing: the notice's offset is committed with its queued broadcast, and each
paced chunk of mails goes to the outbox in one transaction with what remains. A worker that takes
the partition over goes on from there; Message-IDs come from notice id, version and tenant, so a
chunk written twice is recognisably the same mails.
"""
from __future__ import annotations

import time
from typing import Any

from aiokafka import ConsumerRecord

from agents.context import Context, log
from agents.processors.notice_windows import register_follower
from agents.runtime.processor import Output, PartitionedProcessor, SavedState, StateWrite
from agents.processors.store import row_messages
from pipeline.notices.mail import notice_recipients, render_notice_mail
from pipeline.notices.model import ServiceNotice
from pipeline.notices.topic import NoticeBook
from pipeline.rows import notice_removed_row, notice_row

AGENT = "notices"
PACE_INTERVAL = 1.0


def job_key(notice: ServiceNotice) -> str:
    return f"broadcast\x1f{notice.notice_id}\x1f{notice.version:09d}"


class NoticeHandler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.book = NoticeBook()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.processor: PartitionedProcessor | None = None
        self.credit = 0.0
        self.paced_at = time.monotonic()

    async def assigned(self, partition: int, saved: SavedState) -> None:
        self.jobs = {key: value for key, value in sorted(saved.keyed.get(partition, {}).items())
                     if key.startswith("broadcast\x1f")}
        if self.jobs:
            log.info("notices: %d broadcast(s) to go on with", len(self.jobs))

    async def revoked(self, partition: int) -> None:
        self.jobs = {}

    async def handle(self, partition: int, events: list[ConsumerRecord]) -> Output:
        ctx = self.ctx
        follower = ctx.registry_follower
        if follower is not None:
            await follower.wait_ready()  # the audience is judged on the whole registry
        now = ctx.clock.now()
        rows: dict[str, dict[str, Any]] = {}
        output = Output()
        for event in events:
            key = event.key
            notice = self.book.apply(key, event.value)
            if key is None:
                continue
            if event.value is None:
                rows[key.decode(errors="replace")] = notice_removed_row(key.decode(errors="replace"), now)
            elif notice is None:
                ctx.metrics.agent_errors.labels(AGENT).inc()
            else:
                rows[notice.notice_id] = notice_row(notice, now)
                tenants = [t.tenant_id for t in notice_recipients(notice, ctx.registry, now, ctx.settings.tz)]
                if tenants:
                    log.info("notice %s version %d: %d mail(s) queued", notice.notice_id, notice.version, len(tenants))
                    job = {"notice": notice.to_record(), "tenants": tenants}
                    self.jobs[job_key(notice)] = job
                    output.state.append(StateWrite(-1, job_key(notice), job))
        if rows:
            output.messages.extend(row_messages(ctx.settings.topics.store_rows, {"notices": list(rows.values())}))
        ctx.progressed(AGENT)
        return output

    async def pace(self, partition: int) -> Output:
        """The next chunk of queued mails, at most the rate allows since the last one."""
        ctx = self.ctx
        now_mono = time.monotonic()
        rate = ctx.settings.notice_mail_rate
        self.credit = min(max(rate, 1.0), self.credit + (now_mono - self.paced_at) * rate)
        self.paced_at = now_mono
        output = Output()
        now = ctx.clock.now()
        for key in sorted(self.jobs):
            if self.credit < 1:
                break
            job = self.jobs[key]
            notice = ServiceNotice.from_record(job["notice"])
            take = int(self.credit)
            chunk, rest = job["tenants"][:take], job["tenants"][take:]
            self.credit -= len(chunk)
            mails = [render_notice_mail(notice, tenant, now, ctx.settings.tz)
                     for tenant_id in chunk if (tenant := ctx.registry.tenants.get(tenant_id)) is not None]
            output.messages.extend(ctx.outbox_messages(mails))
            if rest:
                job["tenants"] = rest
                output.state.append(StateWrite(-1, key, job))
            else:
                del self.jobs[key]
                output.state.append(StateWrite(-1, key, None))
                log.info("notice %s version %d: broadcast done", notice.notice_id, notice.version)
        return output

    async def pace_all(self) -> None:
        if self.processor is not None and self.jobs:
            await self.processor.each_partition(self.pace)
        else:
            self.credit, self.paced_at = 0.0, time.monotonic()
        self.ctx.progressed(AGENT)


def register(ctx: Context) -> NoticeHandler:
    """The broadcast processor, and the follower that gives this worker's UTM monitor the windows."""
    register_follower(ctx)
    handler = NoticeHandler(ctx)
    handler.processor = PartitionedProcessor(
        name=AGENT, group=ctx.settings.topics.group(AGENT), inputs=[ctx.settings.topics.notices],
        handler=handler, state_topic=ctx.settings.topics.notice_state, max_records=100, **ctx.processor_options())
    ctx.add_processor(handler.processor)
    ctx.guarded_timer(PACE_INTERVAL, "notice-pacing", handler.pace_all)
    return handler
