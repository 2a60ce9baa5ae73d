"""What every processor and timer of one worker shares: settings, topics, the registry, the store, metrics."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

import faust
import orjson

from agents.runtime.processor import Message, PartitionedProcessor, Publisher
from agents.runtime.reasons import KAFKA_SEND_FAILED, STORE_UNAVAILABLE, TIMER_ERROR
from pipeline.clock import Clock
from pipeline.config import Settings
from pipeline.io.metrics import Metrics
from pipeline.models import Registry
from pipeline.redact import redact
from pipeline.rules import Policy
from pipeline.io.store.backends import Store, StoreError, StoreUnavailable

log = logging.getLogger("mimamori")
T = TypeVar("T")


@dataclass
class Context:
    app: faust.App
    settings: Settings
    publisher: Publisher
    registry: Registry
    policy: Policy
    store: Store | None
    metrics: Metrics
    clock: Clock
    progress: dict[str, float] = field(default_factory=dict)
    failing: dict[str, str] = field(default_factory=dict)
    """What is failing now -> its reason code (STORE_UNAVAILABLE...), as /health shows it."""
    store_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="store"))
    registry_follower: Any = None
    follower: Any = None
    """agents.runtime.follow.Follower: the compacted topics every worker reads whole, on the event loop."""
    processors: list[PartitionedProcessor] = field(default_factory=list)
    timers: dict[str, float] = field(default_factory=dict)
    kafka_options: dict[str, Any] = field(default_factory=dict)

    def add_processor(self, processor: PartitionedProcessor) -> None:
        """Started and stopped with the app."""
        self.processors.append(processor)
        self.app.add_dependency(processor)

    async def add_processor_now(self, processor: PartitionedProcessor) -> None:
        """Started at once, with the app already running."""
        self.processors.append(processor)
        await self.app.add_runtime_dependency(processor)

    def guarded_timer(self, interval: float, name: str,
                      action: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        """A Faust timer that never dies of an exception: it is counted, logged, kept in /health
        as failing until the next run succeeds, and /health also sees a timer that stops running.
        Returns the guarded run (what the timer calls)."""
        self.timers[name] = interval

        async def tick() -> None:
            try:
                await action()
                self.failing.pop(f"timer:{name}", None)
            except Exception as exc:  # noqa: BLE001 - the guard is the point
                self.metrics.agent_errors.labels(name).inc()
                self.failing[f"timer:{name}"] = TIMER_ERROR
                log.exception("timer %s failed", name)
            self.progressed(name)

        self.app.timer(interval, name=name)(tick)
        return tick

    async def publish_outbox(self, mails: list[Any]) -> None:
        """Rendered mails into the outbox (key tenant_id) outside any partition's transaction (the
        monthly report), acknowledged by Kafka before this returns."""
        messages = self.outbox_messages(mails)
        await self.deliver_all("mail-outbox", lambda: self.publisher.send_all(messages))

    def outbox_messages(self, mails: list[Any]) -> list[Message]:
        """Rendered mails as outbox messages (key tenant_id), counted."""
        topic = self.settings.topics.outbox
        for mail in mails:
            self.metrics.mails.labels(mail.kind).inc()
        return [(topic, m.tenant_id.encode(), orjson.dumps(m.to_record()), None) for m in mails]

    def processor_options(self) -> dict[str, Any]:
        """What every partitioned processor of this worker shares."""
        return {"bootstrap": self.settings.kafka, "dead_letters": self.settings.topics.rejected,
                "metrics": self.metrics, "loop": self.app.loop, "beacon": self.app.beacon,
                "client_options": dict(self.kafka_options),
                "max_poll_interval_ms": int(self.settings.max_poll_interval.total_seconds() * 1000)}

    def processor(self, name: str) -> PartitionedProcessor:
        return next(p for p in self.processors if p.name == name)

    @property
    def topics(self) -> Any:
        return self.settings.topics

    def dead_letter(self, agent: str, record: Any, exc: Exception) -> Message:
        """A record that can never succeed, as a message for the rejection topic with the reason and
        its original bytes (reason `internal_error`), counted and logged; written in the partition's
        transaction, and the partition goes on."""
        from pipeline.ingest.validator import rejected

        self.metrics.agent_errors.labels(agent).inc()
        log.error("%s: record %s/%s/%s dead-lettered: %s", agent, record.topic, record.partition, record.offset, exc,
                  extra={"topic": record.topic, "partition": record.partition, "offset": record.offset})
        rejection = rejected("internal_error", redact(f"{agent}: {type(exc).__name__}: {exc}")[:500], record.value or b"",
                             self.clock.now(), record.topic, record.partition, record.offset)
        key = f"{record.topic}/{record.partition}/{record.offset}".encode()
        return (self.settings.topics.rejected, key, orjson.dumps(rejection.to_record()), None)

    def progressed(self, agent: str) -> None:
        now = time.time()
        self.progress[agent] = now
        self.metrics.agent_last_progress.labels(agent).set(now)

    async def durably(self, what: str, action: Callable[[], T], *, first_delay: float = 0.5,
                      max_delay: float = 30.0) -> T:
        """Run a blocking store call in a thread until it succeeds. The caller's batch is not
        committed meanwhile: that is the backpressure. An unavailable store is waited for
        (transient: retried with backoff, shown in /health and the failure metric); any other
        `StoreError` means retrying cannot help (permanent) and is raised for the caller to
        dead-letter what it was writing."""
        delay = first_delay
        while True:
            try:
                result = await asyncio.get_running_loop().run_in_executor(self.store_executor, action)
                self.failing.pop(what, None)
                return result
            except StoreUnavailable as exc:
                self.metrics.store_failures.labels(what).inc()
                log.warning("store unavailable for %s, retrying in %.1fs: %s", what, delay, exc)
                self.failing[what] = STORE_UNAVAILABLE
            except StoreError:
                self.metrics.store_failures.labels(what).inc()
                self.failing.pop(what, None)
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)

    async def deliver_all(self, what: str, send: Callable[[], Awaitable[None]], *,
                          max_delay: float = 30.0) -> None:
        """Send messages that belong to no partition's transaction (the monthly report's mails) and
        wait for their acknowledgement, again until it works: the caller goes on only once Kafka has
        them. A mail sent twice is harmless (the sender's ledger knows its Message-ID)."""
        delay = 0.5
        while True:
            try:
                await send()
                self.failing.pop(what, None)
                return
            except Exception as exc:
                self.failing[what] = KAFKA_SEND_FAILED
                self.metrics.agent_errors.labels(what).inc()
                log.error("sending %s failed, retrying in %.1fs: %s", what, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)

