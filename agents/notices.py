"""Service notices in the worker: one agent on the single-partition `service.notices` topic (so
one worker owns each broadcast, and reads the versions of a notice in order) writes each version
to the store's `notices` table for the portal, then mails it to the concerned tenants' admins
through the mail outbox, paced at MIMAMORI_NOTICE_MAIL_RATE.

A batch is acknowledged only after its rows are stored and all its mails are in the outbox. A
worker that dies mid-broadcast reads the batch again and renders the same mails with the same
Message-IDs (notice id, version, tenant); the sender's ledger drops the ones already delivered.
"""
from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRecord

from agents.context import Context, log
from agents.notice_follower import register_follower
from agents.runtime import PartitionedProcessor, StatelessHandler, StateWrite
from agents.store import row_messages
from pipeline.notices.mail import notice_mails
from pipeline.notices.pacing import paced_chunks
from pipeline.notices.topic import NoticeBook
from pipeline.rows import notice_removed_row, notice_row

AGENT = "notices"


class NoticeDesk(StatelessHandler):
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.book = NoticeBook()

    async def process(self, events: list[ConsumerRecord]) -> list[StateWrite]:
        ctx = self.ctx
        follower = ctx.registry_follower
        if follower is not None:
            await follower.wait_ready()  # the audience is judged on the whole registry
        now = ctx.clock.now()
        rows: dict[str, dict[str, Any]] = {}
        taken = []
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
                taken.append(notice)
        if rows:
            batch = list(rows.values())
            await ctx.deliver_all("notice-rows", lambda: ctx.publisher.send_all(
                row_messages(ctx.settings.topics.store_rows, {"notices": batch})))
        for notice in taken:
            mails = notice_mails(notice, ctx.registry, ctx.clock.now(), ctx.settings.tz)
            if mails:
                log.info("notice %s version %d: %d mail(s)", notice.notice_id, notice.version, len(mails))
            for chunk, pause in paced_chunks(mails, ctx.settings.notice_mail_rate):
                await ctx.publish_outbox(list(chunk))
                ctx.progressed(AGENT)
                if pause:
                    await asyncio.sleep(pause)
        ctx.progressed(AGENT)
        return []


def register(ctx: Context) -> NoticeDesk:
    """The broadcast agent, and the follower that gives this worker's UTM monitor the windows."""
    register_follower(ctx)
    desk = NoticeDesk(ctx)
    ctx.add_processor(PartitionedProcessor(
        name=AGENT, group=ctx.settings.topics.group(AGENT), bootstrap=ctx.settings.kafka,
        inputs=[ctx.settings.topics.notices], handler=desk, publisher=ctx.publisher, max_records=100,
        loop=ctx.app.loop, beacon=ctx.app.beacon))
    return desk
