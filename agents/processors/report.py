"""The monthly report in the worker: a timer that, once a month's reports are due
(MIMAMORI_REPORT_AT, on the following month), renders one report per active tenant and puts it
into the mail outbox, paced at MIMAMORI_REPORT_MAIL_RATE.

Every worker runs the timer. A report's Message-ID is derived from tenant and month, so a restart
during the broadcast, or a second worker, renders the same mails and the sender's ledger drops
those already delivered; tenants whose report the store already records as delivered are not even
rendered again. A worker down at the due time still sends within pipeline.report.broadcast.CATCH_UP.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from agents.context import Context, log
from pipeline.models import Mail, Tenant
from pipeline.notices.pacing import paced_chunks
from pipeline.report.broadcast import month_due, report_tenants
from pipeline.io.report_gather import delivered_reports, gather_month
from pipeline.report.render import render_report, report_message_id
from pipeline.report.summary import summarize
from pipeline.report.schedule import Month, due_at

TIMER = "monthly-report"
CHECK_INTERVAL = 5.0


class ReportTimer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.done: set[Month] = set()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report")

    async def tick(self) -> None:
        ctx = self.ctx
        settings = ctx.settings
        month = month_due(ctx.clock.now(), settings.report_at, settings.tz)
        if month is None or month in self.done or ctx.store is None:
            return  # without the store (another worker holds the embedded one) that worker reports
        follower = getattr(ctx, "registry_follower", None)
        if follower is not None:
            await follower.wait_ready()  # the tenants are judged on the whole registry
        now = ctx.clock.now()
        tenants = report_tenants(ctx.registry.tenants.values(), month, now, settings.tz)
        ids = {t.tenant_id: report_message_id(t.tenant_id, str(month)) for t in tenants}
        since = due_at(month, settings.report_at, settings.tz) - timedelta(days=1)
        done = await ctx.durably("report-delivered", lambda: delivered_reports(ctx.store, ids, since))
        todo = [t for t in tenants if t.tenant_id not in done]
        log.info("monthly report %s: %d tenant(s), %d already delivered, %d to send",
                 month, len(tenants), len(done), len(todo))
        for chunk, pause in paced_chunks(todo, settings.report_mail_rate):
            started = time.monotonic()
            mails = [mail for tenant in chunk if (mail := await self._render(tenant, month)) is not None]
            await ctx.publish_outbox(mails)
            ctx.progressed(TIMER)
            if pause:
                await asyncio.sleep(max(0.0, pause - (time.monotonic() - started)))
        self.done.add(month)
        log.info("monthly report %s: broadcast done", month)

    async def _render(self, tenant: Tenant, month: Month) -> Mail | None:
        """One tenant's report: the views read on the store's thread (an outage is waited for), the
        charts drawn on the report's own thread (matplotlib takes a few tenths of a second), never
        on the event loop. A report that cannot be rendered is logged, counted and skipped."""
        ctx = self.ctx
        tz, now = ctx.settings.tz, ctx.clock.now()
        data = await ctx.durably("report-gather", lambda: gather_month(ctx.store, tenant, month, tz, now))
        try:
            rendered = await asyncio.get_running_loop().run_in_executor(
                self.executor, lambda: render_report(summarize(data), now, tz))
        except Exception:
            ctx.metrics.agent_errors.labels(TIMER).inc()
            log.exception("monthly report %s of tenant %s could not be rendered", month, tenant.tenant_id)
            return None
        return rendered.mail


def register(ctx: Context) -> ReportTimer:
    timer = ReportTimer(ctx)
    ctx.guarded_timer(CHECK_INTERVAL, TIMER, timer.tick)
    return timer
