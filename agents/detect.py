"""The UTM side of the worker: raw events, heartbeats and routed verdicts in, through the Detector.

One agent takes batches from `utm.events`, `utm.heartbeats` and the internal verdict topic (all
keyed by utm_id, co-partitioned). A batch is acknowledged only after its rows are in the store and
its messages (rejections, alerts, mail requests) are acknowledged by Kafka; its state goes to the
tables after that, and Faust flushes those before it commits offsets. A timer runs the heartbeat
checks over the UTMs of the partitions this worker owns.
"""
from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any, Iterator

import faust
import orjson

from agents.context import PARTITIONS, Context, log
from agents.gaps import GapGuard, guarded_batch, register_guard
from agents.tables import partition_for, route_of, routed_table
from pipeline.config import Settings
from pipeline.dedup import Deduper
from pipeline.engine import Detector, Outputs
from pipeline.models import Rejection, Verdict
from pipeline.sinks import output_rows, unstored_events
from pipeline.store.sink import batch_token

BATCH_SIZE = 10_000
BATCH_WITHIN = 1.0
EXPIRE_INTERVAL = 300.0
MONITOR_KEY = "monitor"
RECOVERY_SECONDS = 60.0


class PendingWrites(MutableMapping[str, Any]):
    """A dict that remembers which keys changed, so they reach a table only once outputs are durable."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changed: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changed.add(key)

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.changed.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def flush_to(self, table: MutableMapping[str, Any]) -> None:
        for key in self.changed:
            if key in self.data:
                table[key] = self.data[key]
            else:
                table.pop(key, None)
        self.changed.clear()


class UtmSide:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        app = ctx.app
        self.dedup_table = routed_table(app, "dedup", PARTITIONS)
        self.correlation_table = routed_table(app, "correlation", PARTITIONS)
        self.life_table = routed_table(app, "utm-life", PARTITIONS)
        self.routes = app.GlobalTable("alert-routes", key_type=str, partitions=PARTITIONS, use_partitioner=True)
        self.finished = app.GlobalTable("finished-alerts", key_type=str, partitions=PARTITIONS, use_partitioner=True)
        self.detector: Detector | None = None
        self.dedup_writes = PendingWrites()
        self.owned: frozenset[int] = frozenset()
        self.recovering_until = 0.0
        self.lock = asyncio.Lock()

    @property
    def recovering(self) -> bool:
        """Just after a (re)start or rebalance the input may repeat what a crashed worker had
        already stored but not committed; for that while, events already stored are skipped."""
        return time.monotonic() < self.recovering_until

    def owned_partitions(self) -> frozenset[int]:
        events = self.ctx.settings.topics.events
        return frozenset(tp.partition for tp in self.ctx.app.assignor.assigned_actives() if tp.topic == events)

    def ready(self, now: datetime) -> Detector:
        """The Detector over the owned partitions; rebuilt from the tables after a rebalance."""
        owned = self.owned_partitions()
        if self.detector is None or owned != self.owned:
            self.detector = self._rebuild(now, owned)
            self.owned = owned
            self.recovering_until = time.monotonic() + RECOVERY_SECONDS
        return self.detector

    def _rebuild(self, now: datetime, owned: frozenset[int]) -> Detector:
        ctx = self.ctx
        self.dedup_writes = PendingWrites()
        self.dedup_writes.data.update(self.dedup_table.items())
        detector = Detector(ctx.settings, ctx.registry, ctx.policy, started_at=now,
                            deduper=Deduper(ctx.settings.dedup_window, store=self.dedup_writes),
                            finished=self.finished)
        mine = lambda key: partition_for(route_of(key), PARTITIONS) in owned  # noqa: E731
        for utm_id, state in self.correlation_table.items():
            if mine(utm_id):
                detector.correlator.load_state(utm_id, state)
        for key, state in self.life_table.items():
            if key.startswith(MONITOR_KEY):
                detector.monitor.load_monitor_state(state)
            elif mine(key):
                detector.monitor.load(key, state)
        detector.correlator.rebuild_index()
        log.info("detector rebuilt for partitions %s: %d UTMs", sorted(owned), detector.monitor.seen_count)
        return detector

    def _persist(self, detector: Detector, utm_ids: set[str], out: Outputs) -> None:
        for utm_id in utm_ids:
            self.correlation_table[utm_id] = detector.correlator.state_for(utm_id)
            state = detector.monitor.state_of(utm_id)
            if state is not None:
                self.life_table[utm_id] = state
        for change in out.alert_changes:
            if change.alert.alert_id not in self.routes:
                self.routes[change.alert.alert_id] = change.alert.utm_id
        self.dedup_writes.flush_to(self.dedup_table)
        if self.owned:
            self.life_table[_monitor_key(min(self.owned))] = detector.monitor.monitor_state()

    async def take_batch(self, events: list[faust.EventT]) -> None:
        ctx = self.ctx
        await ctx.registry_follower.wait_ready()
        started = time.perf_counter()
        async with self.lock:
            now = ctx.clock.now()
            detector = self.ready(now)
            out = Outputs()
            touched: set[str] = set()
            verdicts_topic = ctx.topics.verdicts_by_utm.get_topic_name()
            per_topic: collections.Counter[str] = collections.Counter()
            for event in events:
                message = event.message
                per_topic[message.topic] += 1
                try:
                    if message.topic == verdicts_topic:
                        verdict = Verdict.from_record(orjson.loads(event.value))
                        detector.apply_verdict(verdict, now, out)
                        utm_id = detector.correlator.utm_of(verdict.alert_id)
                        if utm_id:
                            touched.add(utm_id)
                        continue
                    kind = "heartbeat" if message.topic == ctx.settings.topics.heartbeats else "event"
                    accepted = detector.take(event.value or b"", now, out, kind=kind, topic=message.topic,
                                             partition=message.partition, offset=message.offset)
                    if accepted is not None:
                        touched.add(accepted.utm_id)
                except Exception as exc:  # a record must never stop the agent
                    ctx.metrics.agent_errors.labels("detect").inc()
                    log.exception("detect: record %s/%s/%s failed", message.topic, message.partition, message.offset)
                    out.rejections.append(_failure(event, exc, now))
            await self.publish(detector, out, touched, token=_batch_identity(events))
        for topic, count in per_topic.items():
            ctx.metrics.records.labels(topic).inc(count)
        ctx.metrics.batch_seconds.labels("detect").observe(time.perf_counter() - started)
        ctx.progressed("detect")

    async def check(self) -> None:
        ctx = self.ctx
        await ctx.registry_follower.wait_ready()
        async with self.lock:
            now = ctx.clock.now()
            detector = self.ready(now)
            out = Outputs()
            detector.check(now, out)
            touched = _changed_utms(out)
            await self.publish(detector, out, touched, token=None)
            ctx.metrics.mass_outage.set(1 if detector.monitor.mass_outage else 0)
            ctx.metrics.utms.labels("offline").set(detector.monitor.offline_count)
            ctx.metrics.utms.labels("seen").set(detector.monitor.seen_count)
        ctx.progressed("heartbeat-check")

    async def expire(self) -> None:
        async with self.lock:
            if self.detector is not None:
                self.detector.expire(self.ctx.clock.now())

    async def publish(self, detector: Detector, out: Outputs, touched: set[str], token: str | None) -> None:
        """Store rows, then Kafka messages, then state: in that order, so nothing is acknowledged
        before it is durable."""
        ctx = self.ctx
        rows = output_rows(out)
        for table, table_rows in rows.items():
            if table_rows:
                await self._insert(table, table_rows, token)
        await ctx.deliver_all("detect-messages", lambda: self._send_messages(out))
        for rejection in out.rejections:
            ctx.metrics.rejections.labels(rejection.reason).inc()
        for change in _coalesced(out):
            ctx.metrics.alert_changes.labels(str(change.alert.grade)).inc()
        for incident in out.incidents:
            log.warning("incident %s %s: %d UTMs silent at %s", incident.kind, incident.state, incident.utms, incident.at)
        ctx.metrics.duplicates.inc(out.duplicates)
        ctx.metrics.late.inc(out.late)
        self._persist(detector, touched, out)

    async def _send_messages(self, out: Outputs) -> list[Any]:
        """Rejections, alert changes and mail requests of a step; returns their delivery futures."""
        topics = self.ctx.topics
        futures = []
        for rejection in out.rejections:
            futures.append(await topics.rejected.send(
                key=_rejection_key(rejection), value=orjson.dumps(rejection.to_record())))
        for change in _coalesced(out):
            alert = change.alert
            futures.append(await topics.alerts.send(key=alert.utm_id, value=orjson.dumps(alert.to_record())))
            request: dict[str, Any] = {"type": "alert", "alert": alert.to_record()}
            if change.verdict is not None:
                request.update(type="verdict", notice=change.notice, previous_grade=change.previous_grade,
                               verdict=change.verdict.to_record())
            futures.append(await topics.mail_requests.send(key=alert.tenant_id, value=orjson.dumps(request)))
        for notice in out.notices:
            if notice.mailed:
                futures.append(await topics.mail_requests.send(
                    key=notice.tenant_id, value=orjson.dumps({"type": "utm", "notice": notice.to_record()})))
        return futures

    async def _insert(self, table: str, rows: list[dict[str, Any]], token: str | None) -> None:
        ctx = self.ctx
        if table == "events" and self.recovering:
            rows = await ctx.durably("events", lambda: unstored_events(ctx.store, rows))
            if not rows:
                return
        dedup = f"{token}:{table}" if token else batch_token(table, rows)
        started = time.perf_counter()
        await ctx.durably(table, lambda: ctx.store.insert(table, rows, dedup_token=dedup))
        ctx.metrics.store_latency.labels(table).observe(time.perf_counter() - started)
        ctx.metrics.store_rows.labels(table).inc(len(rows))


def _changed_utms(out: Outputs) -> set[str]:
    """UTMs whose saved state a check changed: a reminder or a held-back utm-down changes no status."""
    return {change.utm_id for change in out.status_changes} | {notice.utm_id for notice in out.notices}


def _coalesced(out: Outputs) -> list[Any]:
    """Every significant change, and the last version of each alert when that one only moved counts."""
    last = {change.alert.alert_id: change for change in out.alert_changes}
    kept = [c for c in out.alert_changes if c.significant or last[c.alert.alert_id] is c]
    return kept


def _batch_identity(events: list[faust.EventT]) -> str:
    """The same input records give the same insert token, whatever the clock said."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for event in events:
        m = event.message
        digest.update(f"{m.topic}/{m.partition}/{m.offset};".encode())
    return digest.hexdigest()


def _rejection_key(rejection: Rejection) -> str:
    return f"{rejection.topic}/{rejection.partition}/{rejection.offset}"


def _failure(event: faust.EventT, exc: Exception, now: datetime) -> Rejection:
    from pipeline.ingest.validator import original_value

    message = event.message
    text, b64 = original_value(event.value or b"")
    return Rejection("internal_error", f"{type(exc).__name__}: {exc}"[:500], message.topic, message.partition,
                     message.offset, now, text, b64)


def _monitor_key(partition: int) -> str:
    """A key of the life table that routes to `partition`, holding the monitor-wide state."""
    n = 0
    while partition_for(f"{MONITOR_KEY}-{n}", PARTITIONS) != partition:
        n += 1
    return f"{MONITOR_KEY}-{n}"


def check_interval(settings: Settings) -> float:
    """At least once a minute (the contract), and often enough that a UTM goes offline within a
    small part of its timeout after it."""
    return max(1.0, min(15.0, settings.heartbeat_timeout.total_seconds() / 10))


def register(ctx: Context) -> UtmSide:
    side = UtmSide(ctx)
    app, topics = ctx.app, ctx.topics
    channel = app.topic(topics.events.get_topic_name(), topics.heartbeats.get_topic_name(),
                        topics.verdicts_by_utm.get_topic_name(), key_type=str, key_serializer="raw",
                        value_serializer="raw")

    guard = register_guard(ctx, GapGuard(ctx, "detect", {
        topics.events.get_topic_name(), topics.heartbeats.get_topic_name(), topics.verdicts_by_utm.get_topic_name()}))

    @app.agent(channel, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            await guarded_batch(guard, side.take_batch, list(events))

    @app.agent(topics.verdicts, name="route-verdicts")
    async def route_verdicts(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                record = orjson.loads(event.value)
                verdict = Verdict.from_record(record)
                utm_id = side.routes.get(verdict.alert_id)
                if utm_id is None and side.detector is not None:
                    utm_id = side.detector.correlator.utm_of(verdict.alert_id)
                if utm_id is None:
                    ctx.metrics.agent_errors.labels("route-verdicts").inc()
                    log.warning("verdict for unknown alert %s dropped", verdict.alert_id)
                    continue
                await topics.verdicts_by_utm.send(key=utm_id, value=event.value)
            except Exception:
                ctx.metrics.agent_errors.labels("route-verdicts").inc()
                log.exception("verdict %r could not be routed", event.value[:200] if event.value else None)
            ctx.progressed("route-verdicts")

    @app.timer(check_interval(ctx.settings), name="heartbeat-check")
    async def heartbeat_check() -> None:
        try:
            await side.check()
        except Exception:
            ctx.metrics.agent_errors.labels("heartbeat-check").inc()
            log.exception("heartbeat check failed")

    @app.timer(EXPIRE_INTERVAL, name="expire-state")
    async def expire_state() -> None:
        await side.expire()

    return side
