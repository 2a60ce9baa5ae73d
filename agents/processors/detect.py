"""The UTM side of the worker: raw events, heartbeats and routed verdicts in, through a Detector per
input partition.

One partitioned processor (`agents.runtime.processor`) takes batches from `utm.events`, `utm.heartbeats` and
the internal verdict topic (all keyed by utm_id, co-partitioned). Each partition has a Detector of
its own, restored from that partition's saved state; a partition's batch gives its messages
(rejections, alert versions, mail requests, alert routes and the rows for the store, inserted by the
store processor off this path) and its state changes, written with the batch's offsets in the
partition's transaction. The heartbeat check runs per partition through the same transactions,
judging silence only up to the time the partition's input has been read.
"""
from __future__ import annotations

import asyncio
import collections
import ctypes
import dataclasses
import time
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from aiokafka import ConsumerRecord

from agents.context import Context, log
from agents.runtime.follow import CompactedFollower
from agents.runtime.processor import Message, Output, PartitionedProcessor, SavedState, StateWrite
from pipeline.bounds import SEEN_MESSAGE_BYTES, chunks_by_size
from pipeline.dedup import Deduper, encode_pairs, pair_bytes
from pipeline.config import Settings
from pipeline.internal import SilenceReport
from pipeline.engine import Detector, DetectorStep, InputRecord
from pipeline.heartbeat import Share, together
from agents.processors.store import row_text_messages

BATCH_SIZE = 10_000
SLICE = 1_000
"""Records judged between two returns to the event loop (a few tens of ms): a batch of 10,000 judged
at once held the loop up to 2.8 s under load, the mail timers, the consumers' heartbeats and the
other processors with it."""
EXPIRE_INTERVAL = 300.0
NOTHING_READ = datetime.min.replace(tzinfo=timezone.utc)


class DetectHandler:
    """The handler of the detect processor: a Detector per owned input partition."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.detectors: dict[int, Detector] = {}
        self.restoring: dict[int, Deduper] = {}
        self.kinds = {ctx.settings.topics.events: "event", ctx.settings.topics.heartbeats: "heartbeat",
                      ctx.settings.topics.verdicts_by_utm: "verdict"}
        self.processor: PartitionedProcessor | None = None
        self.fleet: CompactedFollower = ctx.follower.topic(
            ctx.settings.topics.fleet, lambda v: SilenceReport.from_record(orjson.loads(v)), "fleet-book")

    @property
    def detector(self) -> Detector | None:
        """One of this worker's detectors (tests and the demo look at one)."""
        return next(iter(self.detectors.values()), None)

    def elsewhere(self, partition: int) -> Share:
        """The share of every other partition: this worker's other detectors as of their last
        check, and the others as their owner last reported them (a partition being restored here
        by its previous owner). However old a report, it stands with the time it was counted up
        to: a paused or lagging owner holds the guard's judgement back (pipeline/heartbeat/fleet.py);
        dropping its report would make the guard judge part of the fleet as the whole."""
        shares = [Share(d.monitor.silent_count, d.monitor.seen_count, d.monitor.counted_until)
                  for p, d in list(self.detectors.items()) if p != partition]
        for key, report in list(self.fleet.values.items()):
            if int(key) not in self.detectors:
                counted = report.counted_until
                shares.append(Share(report.silent, report.seen,
                                    None if counted is None else datetime.fromtimestamp(counted, timezone.utc)))
        return together(shares)

    def log_reader(self, partition: int) -> Callable[[bytes], None]:
        """The runtime hands the dedup log's values here as it reads them: each goes into the
        partition's new Deduper at once (in blocks, not pair by pair), none is kept decoded."""
        deduper = self.restoring[partition] = Deduper(self.ctx.settings.dedup_window)
        horizon = self.ctx.clock.now().timestamp() - deduper.window
        return lambda value: deduper.load_value(value, horizon)

    async def assigned(self, partition: int, saved: SavedState) -> None:
        await self.ctx.registry_follower.wait_ready()
        now = self.ctx.clock.now()
        deduper = self.restoring.pop(partition, None)
        detector = Detector(self.ctx.settings, self.ctx.registry, self.ctx.policy, started_at=now,
                            deduper=deduper, elsewhere=lambda: self.elsewhere(partition))
        keyed = list(saved.keyed.get(partition, {}).items())
        detector.restore(keyed, saved.logged.get(partition, []), now)
        _give_back_freed_memory()
        self.detectors[partition] = detector
        log.info("detector restored for partition %d: %d UTMs", partition, detector.utm_counts["seen"])

    async def revoked(self, partition: int) -> None:
        self.detectors.pop(partition, None)
        self.restoring.pop(partition, None)

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output:
        ctx = self.ctx
        detector = self.detectors[partition]
        now = ctx.clock.now()
        kinds = self.kinds
        per_topic = collections.Counter(r.topic for r in records)
        inputs = [InputRecord(kinds[r.topic], r.value or b"", r.topic, r.partition, r.offset) for r in records]
        stepping = detector.stepping(now)
        for start in range(0, len(inputs), SLICE):
            if start:
                await asyncio.sleep(0)  # the partition's lock is held: only other work runs meanwhile
            stepping.take(inputs[start:start + SLICE])
        step = stepping.done()
        output = self.output(step, now)
        versions = step.alert_versions
        if versions:
            arrived = [r.timestamp for r in records if r.timestamp and r.timestamp > 0]
            if arrived:
                since = time.time() - min(arrived) / 1000  # the batch's oldest record to its alerts (before the commit)
                for _ in versions:
                    ctx.metrics.event_to_alert.observe(max(0.0, since))
        for topic, count in per_topic.items():
            ctx.metrics.records.labels(topic).inc(count)
        ctx.progressed("detect")
        return output

    async def check(self, partition: int) -> Output:
        """The heartbeat check of one partition, judged up to the time its input has been read."""
        ctx = self.ctx
        detector = self.detectors.get(partition)
        if detector is None or self.processor is None:
            return Output()
        read = self.processor.read_until(partition)
        now = ctx.clock.now()
        read_until = NOTHING_READ if read is None else min(now, datetime.fromtimestamp(read, timezone.utc))
        step = detector.tick(now, read_until)
        output = self.output(step, now)
        monitor = detector.monitor
        counted = None if monitor.counted_until is None else monitor.counted_until.timestamp()
        report = SilenceReport(monitor.silent_count, monitor.seen_count, now.timestamp(), counted)
        output.messages.append((ctx.settings.topics.fleet, str(partition).encode(),
                                orjson.dumps(report.to_record()), None))
        return output

    async def check_all(self) -> None:
        assert self.processor is not None
        await self.processor.each_partition(self.check)
        ctx = self.ctx
        ctx.metrics.mass_outage.set(1 if any(d.mass_outage for d in self.detectors.values()) else 0)
        seen = sum(d.utm_counts["seen"] for d in self.detectors.values())
        offline = sum(d.utm_counts["offline"] for d in self.detectors.values())
        ctx.metrics.set_utms({"online": seen - offline, "offline": offline})
        ctx.progressed("heartbeat-check")

    async def upkeep(self, partition: int) -> Output:
        detector = self.detectors.get(partition)
        if detector is None:
            return Output()
        now = self.ctx.clock.now()
        return self.output(detector.upkeep(now), now)

    async def upkeep_all(self) -> None:
        assert self.processor is not None
        await self.processor.each_partition(self.upkeep)
        self.ctx.progressed("expire-state")

    def output(self, step: DetectorStep, now: datetime) -> Output:
        """Every message of a step (rejections, alert versions, mail requests stamped with `now`, the
        step's clock, alert routes, the rows for the store) and its state changes."""
        ctx = self.ctx
        out = step.outputs
        messages = _messages(ctx, step, now) + row_text_messages(ctx.settings.topics.store_rows, step.row_texts)
        for rejection in out.rejections:
            ctx.metrics.rejections.labels(rejection.reason).inc()
        for change in step.alert_versions:
            ctx.metrics.alert_changes.labels(str(change.alert.grade)).inc()
        for incident in out.incidents:
            log.warning("incident %s %s: %d UTMs silent at %s", incident.kind, incident.state, incident.utms, incident.at)
        ctx.metrics.duplicates.inc(out.duplicates)
        ctx.metrics.late.inc(out.late)
        return Output(messages, _state_writes(step))


def _messages(ctx: Context, step: DetectorStep, now: datetime) -> list[Message]:
    topics = ctx.settings.topics
    messages: list[Message] = []
    for rejection in step.outputs.rejections:
        key = f"{rejection.topic}/{rejection.partition}/{rejection.offset}".encode()
        messages.append((topics.rejected, key, orjson.dumps(rejection.to_record()), None))
    for change in step.alert_versions:
        alert = change.alert
        messages.append((topics.alerts, alert.utm_id.encode(), orjson.dumps(alert.to_record()), None))
        if change.alert.version == 1:
            messages.append((topics.alert_routes, alert.alert_id.encode(), alert.utm_id.encode(), None))
    for request in step.mail_requests:
        if request.change is not None:  # judged now: the alert's arrival at the mail timing
            request = dataclasses.replace(request, at=now)
        messages.append((topics.mail_requests, request.tenant_id.encode(), orjson.dumps(request.to_record()), None))
    return messages


def _state_writes(step: DetectorStep) -> list[StateWrite]:
    """The step's state changes; the runtime writes them to the state partition of the input
    partition whose transaction carries them."""
    writes = [StateWrite(-1, key, value) for key, value in step.state.keyed.items()]
    if step.state.seen:
        seen = list(step.state.seen)
        writes.extend(StateWrite(-1, None, encode_pairs(run))
                      for run in chunks_by_size(seen, pair_bytes, SEEN_MESSAGE_BYTES, len(seen)))
    return writes


def _give_back_freed_memory() -> None:
    """A restore frees hundreds of MB of short-lived objects (the saved state decoded, an hour of
    dedup records at a time while sealing) that glibc would otherwise keep in the process (a day of
    pairs: RSS 384 MiB, 251 MiB after this)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def check_interval(settings: Settings) -> float:
    """At least once a minute (the contract), and often enough that a UTM goes offline within a
    small part of its timeout after it."""
    return max(1.0, min(15.0, settings.heartbeat_timeout.total_seconds() / 10))


def register(ctx: Context) -> DetectHandler:
    handler = DetectHandler(ctx)
    topics = ctx.settings.topics
    handler.processor = processor = PartitionedProcessor(
        name="detect", group=topics.group("detect"),
        inputs=[topics.events, topics.heartbeats, topics.verdicts_by_utm], handler=handler,
        state_topic=topics.detect_state, log_topic=topics.detect_seen, max_records=BATCH_SIZE,
        on_batch=lambda n, s: ctx.metrics.batch_seconds.labels("detect").observe(s),
        **ctx.processor_options(),
    )
    ctx.add_processor(processor)
    handler.fleet.start()
    ctx.guarded_timer(check_interval(ctx.settings), "heartbeat-check", handler.check_all)
    ctx.guarded_timer(EXPIRE_INTERVAL, "expire-state", handler.upkeep_all)
    return handler
