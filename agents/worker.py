"""Builds the whole worker: its processors, follower, timers and web pages, in a Faust shell that starts
and stops them (agents.runtime.shell)."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import faust
from prometheus_client import generate_latest

from agents.processors import detect, mail, notices, report, verdicts
from agents.processors import store as store_side
from agents.runtime.shell import make_app
from agents.context import Context, log
from agents.runtime.follow import Follower
from agents.processors.registry import register_follower, register_mirrors
from agents.runtime.processor import Publisher
from pipeline.clock import Clock, SystemClock
from pipeline.config import Settings
from pipeline.io.kafka_admin import ensure_topics, topic_specs
from pipeline.io.kafka_security import aiokafka_options
from pipeline.io.kafka_security import kafka_python_options
from pipeline.io.metrics import Metrics
from pipeline.models import Registry
from pipeline.redact import redact_url
from pipeline.rules import load_policy
from pipeline.io.store.backends import Store, StoreHeld
from pipeline.io.store.holder import HeldStore, open_held_store
from pipeline.io.store.migrate import apply_migrations

PROMETHEUS_TEXT = "text/plain; version=0.0.4"
STALLED_AFTER = 120.0
"""A processor with input waiting, or a timer, that made no progress for this long (a timer: at least
three of its intervals) makes /health answer 503."""


def build_app(settings: Settings, *, store: Store | None = None,
              clock: Clock | None = None, web: bool = True, create_topics: bool = True) -> faust.App:
    """The worker's app. Everything that can be refused (rules, store, topics) is checked here,
    before the worker starts consuming."""
    policy = load_policy(settings.rules_file)
    if store is None:
        store = _claim_store(settings)
    if create_topics:
        ensure_topics(settings.kafka, topic_specs(settings.topics, dedup_window=settings.dedup_window),
                      options=kafka_python_options(settings))
    app = make_app(settings, settings.topics.deployment, web=web)
    kafka_options = aiokafka_options(settings)
    publisher = app.add_dependency(Publisher(settings.kafka, kafka_options, loop=app.loop, beacon=app.beacon))
    ctx = Context(app=app, settings=settings, publisher=publisher, kafka_options=kafka_options,
                  registry=Registry(), policy=policy, store=store,
                  metrics=Metrics(), clock=clock or SystemClock())
    app.mimamori = ctx  # type: ignore[attr-defined]
    ctx.follower = app.add_dependency(Follower(settings, failing=ctx.failing, metrics=ctx.metrics,
                                                    loop=app.loop, beacon=app.beacon))
    ctx.registry_follower = register_follower(ctx)
    register_mirrors(ctx)
    detect.register(ctx)
    mail.register(ctx)
    verdicts.register(ctx)
    notices.register(ctx)
    report.register(ctx)
    if store is not None:
        store_side.register(ctx)
        _watch_holder(ctx)
    else:
        ctx.guarded_timer(CLAIM_STORE_EVERY, "claim-store", lambda: _claim_later(ctx))

    _web_pages(ctx)
    app.finalize()
    return app


def _claim_store(settings: Settings) -> Store | None:
    """The store, migrated; None when it is an embedded store another worker holds: then this
    worker runs everything but the store processor (rows wait in Kafka for the one that holds it)."""
    try:  # it migrates the store at start; an embedded one runs in a process of its own (the holder)
        store = open_held_store(settings.clickhouse, create=True)
    except StoreHeld as exc:
        log.warning("%s; this worker leaves the store to it", exc)
        return None
    try:
        apply_migrations(store, str(settings.tz), datetime.now(timezone.utc))
    except BaseException:
        store.close()
        raise
    return store


def _watch_holder(ctx: Context) -> None:
    """The embedded store's process in /metrics (only a worker that holds the embedded store has one)."""
    holder = ctx.store
    if isinstance(holder, HeldStore):
        ctx.metrics.watch_store_holder(lambda: (holder.pid is not None, holder.rss_bytes(), holder.restarts))
        log.info("the embedded store runs in process %s", holder.pid)


CLAIM_STORE_EVERY = 10.0


async def _claim_later(ctx: Context) -> None:
    """A worker without the embedded store takes it over when the one that held it is gone."""
    if ctx.store is not None:
        return
    store = await asyncio.get_running_loop().run_in_executor(ctx.store_executor, _claim_store, ctx.settings)
    if store is not None:
        ctx.store = store
        log.info("this worker now holds the store %s", redact_url(ctx.settings.clickhouse))
        _watch_holder(ctx)
        await store_side.register_now(ctx)


def _web_pages(ctx: Context) -> None:
    app = ctx.app

    @app.page("/metrics")
    async def metrics(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        ctx.metrics.set_consumer_lag({(tp.topic, tp.partition): lag for processor in ctx.processors
                                      for tp, lag in processor.lag().items()})
        return web.bytes(generate_latest(ctx.metrics.registry), content_type=PROMETHEUS_TEXT)

    started = time.time()

    @app.page("/health")
    async def health(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """Liveness: every processor and timer alive, a processor with input waiting makes
        progress, no write is failing."""
        report = health_report(ctx, time.time(), started)
        return web.json(report, status=200 if report["status"] == "ok" else 503)


def health_report(ctx: Context, now: float, started: float) -> dict:
    """What /health shows (it needs no login): each processor's state and a reason code, the
    failing writes and timers with theirs (agents.context), seconds since progress. Never
    exception text, URLs or customers' data: those are in the log, redacted."""
    stalled = {}
    for name, interval in ctx.timers.items():
        last = ctx.progress.get(name, started)
        if now - last > max(STALLED_AFTER, 3 * interval):
            stalled[name] = round(now - last)
    crashed = []
    processors = {}
    for processor in ctx.processors:
        if processor.crashed or (processor.consumer is None and processor.started and not processor.should_stop):
            crashed.append(processor.name)
            processors[processor.name] = {"state": "crashed", "reason": "crashed"}
        elif any(processor.lag().values()) and now - processor.last_progress > STALLED_AFTER:
            stalled[processor.name] = round(now - processor.last_progress)
            processors[processor.name] = {"state": "stalled", "reason": "no_progress"}
        elif processor.failing:
            processors[processor.name] = {"state": "failing", "reason": processor.failing.split(":")[0]}
        else:
            processors[processor.name] = {"state": "running" if processor.started else "starting", "reason": None}
    failing = any(p["state"] == "failing" for p in processors.values())
    status = "stalled" if stalled or crashed or ctx.failing or failing else "ok"
    return {"status": status, "processors": processors, "stalled": stalled, "crashed": crashed,
            "failing": dict(ctx.failing), "progress": {k: round(now - v) for k, v in ctx.progress.items()},
            "partitions": {p.name: sorted(p.partitions) for p in ctx.processors}}
