"""Builds the whole worker: the Faust app with every agent, table, timer and web page registered."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import faust
from prometheus_client import generate_latest

from agents import detect, mail, notices, report
from agents.app import make_app
from agents.context import Channels, Context
from agents.registry import register_follower, register_mirrors
from pipeline.clock import Clock, SystemClock
from pipeline.config import Settings
from pipeline.kafka_admin import ensure_topics, topic_specs
from pipeline.metrics import Metrics
from pipeline.models import Registry
from pipeline.rules import load_policy
from pipeline.store.backends import Store, open_store
from pipeline.store.migrate import apply_migrations

PROMETHEUS_TEXT = "text/plain; version=0.0.4"
STALLED_AFTER = 120.0
"""An agent with input that made no progress for this long makes /health answer 503."""


def build_app(settings: Settings, app_id: str = "mimamori", *, store: Store | None = None,
              clock: Clock | None = None, web: bool = True, create_topics: bool = True) -> faust.App:
    """The worker's app. Everything that can be refused (rules, store, topics) is checked here,
    before the worker starts consuming."""
    policy = load_policy(settings.rules_file)
    if store is None:
        store = open_store(settings.clickhouse)
        apply_migrations(store, str(settings.tz), datetime.now(timezone.utc))
    if create_topics:
        ensure_topics(settings.kafka, topic_specs(settings.topics))
    app = make_app(settings, app_id, web=web)
    ctx = Context(app=app, settings=settings, topics=Channels.declare(app, settings),
                  registry=Registry(), policy=policy, store=store,
                  metrics=Metrics(), clock=clock or SystemClock())
    app.mimamori = ctx  # type: ignore[attr-defined]
    ctx.registry_follower = register_follower(ctx)
    register_mirrors(ctx)
    ctx.utm_side = detect.register(ctx)
    ctx.mail_side, _ = mail.register(ctx)
    notices.register(ctx)
    report.register(ctx)
    _web_pages(ctx)
    app.finalize()
    return app


def _web_pages(ctx: Context) -> None:
    app = ctx.app

    @app.page("/metrics")
    async def metrics(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.bytes(generate_latest(ctx.metrics.registry), content_type=PROMETHEUS_TEXT)

    started = time.time()

    @app.page("/health")
    async def health(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Liveness: no agent crashed, the timers tick, and the detect agent makes progress while
        input is waiting for it (an agent stuck on something would otherwise look idle)."""
        now = time.time()
        stalled = {name: round(now - at) for name, at in ctx.progress.items()
                   if name in ("heartbeat-check", "mail-due") and now - at > STALLED_AFTER}
        if _input_waiting(ctx) and now - ctx.progress.get("detect", started) > STALLED_AFTER:
            stalled["detect"] = round(now - ctx.progress.get("detect", started))
        dead = [agent.name for agent in app.agents.values() if agent._crashed.is_set()]
        status = 503 if stalled or dead or ctx.failing else 200
        return web.json({"status": "ok" if status == 200 else "stalled", "stalled": stalled,
                         "crashed": dead, "failing": ctx.failing,
                         "progress": {k: round(now - v) for k, v in ctx.progress.items()}}, status=status)


def _input_waiting(ctx: Context) -> bool:
    """Whether an input partition of this worker has records beyond its committed offset."""
    consumer = ctx.app.consumer
    committed = getattr(consumer, "_committed_offset", {})
    inputs = {ctx.settings.topics.events, ctx.settings.topics.heartbeats}
    for tp in ctx.app.assignor.assigned_actives():
        if tp.topic in inputs:
            try:
                high = consumer.highwater(tp)
            except Exception:
                continue
            if high and (committed.get(tp) or 0) < high:
                return True
    return False
