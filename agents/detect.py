"""The UTM side of the worker: raw events, heartbeats and routed verdicts in, through the Detector.

One partitioned processor (`agents.runtime`) takes batches from `utm.events`, `utm.heartbeats` and
the internal verdict topic (all keyed by utm_id, co-partitioned). For each batch, in this order:
a marker of the batch's offsets (so that a restart knows which of its records it may have
published already); the Kafka messages (rejections, alert versions, mail requests, alert routes, and
the rows for the store, inserted by the store processor off this path); the state changes; then
the runtime commits. A timer runs the heartbeat checks.
"""
from __future__ import annotations

import collections
import time
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from agents.context import PARTITIONS, Context, log
from agents.follow import CompactedFollower
from agents.runtime import PartitionedProcessor, SavedState, StateWrite
from agents.partitioning import partition_for
from pipeline.config import Settings
from pipeline.internal import SilenceReport
from pipeline.engine import MONITOR_KEY, Detector, DetectorStep, InputRecord
from agents.store import row_messages
from pipeline.step import route_of

BATCH_SIZE = 10_000
EXPIRE_INTERVAL = 300.0
INFLIGHT_KEY = "\x1finflight"
"""State key (per partition) of the offsets a batch reached before it published anything."""


class UtmSide:
    """The handler of the detect processor: owns the Detector of this worker's partitions."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.detector: Detector | None = None
        self.kinds = {ctx.settings.topics.events: "event", ctx.settings.topics.heartbeats: "heartbeat",
                      ctx.settings.topics.verdicts_by_utm: "verdict"}
        self.inflight: dict[tuple[str, int], int] = {}
        self.processor: PartitionedProcessor | None = None
        self.fleet: CompactedFollower = ctx.follower.topic(
            ctx.settings.topics.fleet, lambda v: SilenceReport.from_record(orjson.loads(v)), "fleet-book")

    def elsewhere(self) -> tuple[int, int]:
        """(silent, seen) UTMs of the partitions other workers own, as they last reported them
        (fresh reports only: a partition that moved is reported by its new owner)."""
        owned = self.processor.partitions if self.processor else set()
        fresh_after = self.ctx.clock.now().timestamp() - 3 * check_interval(self.ctx.settings)
        silent = seen = 0
        for key, report in list(self.fleet.values.items()):
            if int(key) not in owned and report.reported_at >= fresh_after:
                silent += report.silent
                seen += report.seen
        return silent, seen

    async def assigned(self, partitions: set[int], saved: SavedState) -> None:
        await self.ctx.registry_follower.wait_ready()
        now = self.ctx.clock.now()
        detector = Detector(self.ctx.settings, self.ctx.registry, self.ctx.policy, started_at=now,
                            elsewhere=self.elsewhere)
        keyed: list[tuple[str, Any]] = []
        monitor: dict[str, Any] | None = None
        for partition in partitions:
            for key, value in saved.keyed.get(partition, {}).items():
                if key == INFLIGHT_KEY:
                    for topic, end in value.items():
                        self.inflight[(topic, partition)] = end
                elif key == MONITOR_KEY:
                    if monitor is None or (value.get("last_daily_check") or "") > (monitor.get("last_daily_check") or ""):
                        monitor = value
                else:
                    keyed.append((key, value))
        if monitor is not None:
            keyed.append((MONITOR_KEY, monitor))
        seen = (tuple(pair) for partition in partitions for batch in saved.logged.get(partition, []) for pair in batch)
        detector.restore(keyed, seen, now)
        self.detector = detector
        log.info("detector restored for partitions %s: %d UTMs", sorted(partitions), detector.utm_counts["seen"])

    async def revoked(self, partitions: set[int]) -> None:
        self.detector = None
        self.inflight = {k: v for k, v in self.inflight.items() if k[1] not in partitions}

    async def process(self, records: list[ConsumerRecord]) -> list[StateWrite]:
        ctx = self.ctx
        assert self.detector is not None, "records before the partitions' state was restored"
        now = ctx.clock.now()
        per_topic: collections.Counter[str] = collections.Counter()
        inputs = []
        ends: dict[int, dict[str, int]] = collections.defaultdict(dict)
        for r in records:
            per_topic[r.topic] += 1
            inputs.append(InputRecord(self.kinds[r.topic], r.value or b"", r.topic, r.partition, r.offset))
            ends[r.partition][r.topic] = r.offset + 1
        step = self.detector.step(inputs, now)
        replayed = any(r.offset < self.inflight.get((r.topic, r.partition), -1) for r in records)
        markers = [StateWrite(p, INFLIGHT_KEY, topics) for p, topics in ends.items()]
        await self.publish(step, markers, replayed)
        arrived = [r.timestamp / 1000 for r in records if r.timestamp and r.timestamp > 0]
        if arrived and step.alert_versions:
            since = time.time() - min(arrived)  # the batch's oldest record to its alerts acknowledged
            for _ in step.alert_versions:
                ctx.metrics.event_to_alert.observe(max(0.0, since))
        for (topic, partition), end in list(self.inflight.items()):
            if ends.get(partition, {}).get(topic, -1) >= end:
                del self.inflight[(topic, partition)]
        for topic, count in per_topic.items():
            ctx.metrics.records.labels(topic).inc(count)
        ctx.progressed("detect")
        return _state_writes(step)

    async def check(self) -> list[StateWrite]:
        ctx = self.ctx
        if self.detector is None:
            return []
        step = self.detector.tick(ctx.clock.now())
        await self.publish(step, [], replayed=False)
        await self.report_silence()
        ctx.metrics.mass_outage.set(1 if self.detector.mass_outage else 0)
        counts = self.detector.utm_counts  # this worker's partitions only: the sum over workers is the fleet
        ctx.metrics.set_utms({"online": counts["seen"] - counts["offline"], "offline": counts["offline"]})
        ctx.progressed("heartbeat-check")
        return _state_writes(step, partitions=self.processor.partitions if self.processor else set())

    async def report_silence(self) -> None:
        """This worker's share of the fleet, per owned partition, for the other workers' guards."""
        assert self.detector is not None and self.processor is not None
        counts = self.detector.silence_by(lambda utm_id: partition_for(utm_id, PARTITIONS))
        at = self.ctx.clock.now().timestamp()
        topic = self.ctx.settings.topics.fleet
        messages = [(topic, str(p).encode(), orjson.dumps(SilenceReport(*counts.get(p, (0, 0)), at).to_record()), None)
                    for p in self.processor.partitions]
        await self.ctx.deliver_all("fleet", lambda: self.ctx.publisher.send_all(messages))

    async def upkeep(self) -> list[StateWrite]:
        if self.detector is None:
            return []
        step = self.detector.upkeep(self.ctx.clock.now())
        self.ctx.progressed("expire-state")
        return _state_writes(step)

    async def publish(self, step: DetectorStep, markers: list[StateWrite], replayed: bool) -> None:
        """The batch's offsets first (so that a restart knows which records it may have published
        already), then every message: rejections, alert versions, mail requests, alert routes and
        the rows for the store, which a store processor inserts off this path."""
        ctx = self.ctx
        out = step.outputs
        if markers:
            state_topic = ctx.settings.topics.detect_state
            await ctx.deliver_all("detect-messages", lambda: ctx.publisher.send_all(
                (state_topic, m.key.encode(), orjson.dumps(m.value), m.partition) for m in markers if m.key))
        messages = _messages(ctx, step) + row_messages(ctx.settings.topics.store_rows, step.rows, recheck=replayed)
        await ctx.deliver_all("detect-messages", lambda: ctx.publisher.send_all(messages))
        for rejection in out.rejections:
            ctx.metrics.rejections.labels(rejection.reason).inc()
        for change in step.alert_versions:
            ctx.metrics.alert_changes.labels(str(change.alert.grade)).inc()
        for incident in out.incidents:
            log.warning("incident %s %s: %d UTMs silent at %s", incident.kind, incident.state, incident.utms, incident.at)
        ctx.metrics.duplicates.inc(out.duplicates)
        ctx.metrics.late.inc(out.late)


def _messages(ctx: Context, step: DetectorStep) -> list[tuple[str, bytes | None, bytes | None, int | None]]:
    topics = ctx.settings.topics
    messages: list[tuple[str, bytes | None, bytes | None, int | None]] = []
    for rejection in step.outputs.rejections:
        key = f"{rejection.topic}/{rejection.partition}/{rejection.offset}".encode()
        messages.append((topics.rejected, key, orjson.dumps(rejection.to_record()), None))
    for change in step.alert_versions:
        alert = change.alert
        messages.append((topics.alerts, alert.utm_id.encode(), orjson.dumps(alert.to_record()), None))
        if change.alert.version == 1:
            messages.append((topics.alert_routes, alert.alert_id.encode(), alert.utm_id.encode(), None))
    for request in step.mail_requests:
        messages.append((topics.mail_requests, request.tenant_id.encode(), orjson.dumps(request.to_record()), None))
    return messages


def _state_writes(step: DetectorStep, partitions: set[int] | frozenset[int] = frozenset()) -> list[StateWrite]:
    writes = []
    for key, value in step.state.keyed.items():
        if key == MONITOR_KEY:
            writes.extend(StateWrite(p, key, value) for p in partitions)
        else:
            writes.append(StateWrite(partition_for(route_of(key), PARTITIONS), key, value))
    if step.state.seen:
        by_partition: dict[int, list[tuple[str, float]]] = collections.defaultdict(list)
        for pair in step.state.seen:
            by_partition[partition_for(route_of(pair[0]), PARTITIONS)].append(pair)
        writes.extend(StateWrite(p, None, pairs) for p, pairs in by_partition.items())
    return writes


def check_interval(settings: Settings) -> float:
    """At least once a minute (the contract), and often enough that a UTM goes offline within a
    small part of its timeout after it."""
    return max(1.0, min(15.0, settings.heartbeat_timeout.total_seconds() / 10))


def register(ctx: Context) -> UtmSide:
    side = UtmSide(ctx)
    topics = ctx.settings.topics
    side.processor = processor = PartitionedProcessor(
        name="detect", group=topics.group("detect"), bootstrap=ctx.settings.kafka,
        inputs=[topics.events, topics.heartbeats, topics.verdicts_by_utm], handler=side,
        publisher=ctx.publisher, state_topic=topics.detect_state, log_topic=topics.detect_seen,
        max_records=BATCH_SIZE, on_batch=lambda n, s: ctx.metrics.batch_seconds.labels("detect").observe(s),
        loop=ctx.app.loop, beacon=ctx.app.beacon,
    )
    ctx.add_processor(processor)
    side.fleet.start()
    ctx.guarded_timer(check_interval(ctx.settings), "heartbeat-check", lambda: processor.exclusive(side.check))
    ctx.guarded_timer(EXPIRE_INTERVAL, "expire-state", lambda: processor.exclusive(side.upkeep))
    return side

