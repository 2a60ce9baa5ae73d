"""What every agent of one worker shares: settings, topics, the registry, the store, metrics."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

import faust
import orjson

from pipeline.clock import Clock
from pipeline.config import Settings
from pipeline.metrics import Metrics
from pipeline.models import Registry
from pipeline.rules import Policy
from pipeline.store.backends import Store, StoreError, StoreUnavailable

log = logging.getLogger("mimamori")
T = TypeVar("T")

PARTITIONS = 6


@dataclass
class Channels:
    events: faust.TopicT
    heartbeats: faust.TopicT
    rejected: faust.TopicT
    alerts: faust.TopicT
    verdicts: faust.TopicT
    outbox: faust.TopicT
    mail_requests: faust.TopicT
    verdicts_by_utm: faust.TopicT
    failed_mails: faust.TopicT

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> "Channels":
        def topic(name: str, **options: Any) -> faust.TopicT:
            return app.topic(name, key_type=str, key_serializer="raw", value_serializer="raw",
                             partitions=PARTITIONS, **options)

        names = settings.topics
        return cls(
            events=topic(names.events), heartbeats=topic(names.heartbeats), rejected=topic(names.rejected),
            alerts=topic(names.alerts), verdicts=topic(names.verdicts), outbox=topic(names.outbox),
            mail_requests=topic(names.mail_requests), verdicts_by_utm=topic(names.verdicts_by_utm),
            failed_mails=topic(names.failed_mails),
        )


@dataclass
class Context:
    app: faust.App
    settings: Settings
    topics: Channels
    registry: Registry
    policy: Policy
    store: Store
    metrics: Metrics
    clock: Clock
    progress: dict[str, float] = field(default_factory=dict)
    failing: dict[str, str] = field(default_factory=dict)
    store_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="store"))
    utm_side: Any = None
    registry_follower: Any = None
    mail_side: Any = None

    def progressed(self, agent: str) -> None:
        now = time.time()
        self.progress[agent] = now
        self.metrics.agent_last_progress.labels(agent).set(now)

    async def durably(self, what: str, action: Callable[[], T], *, first_delay: float = 0.5,
                      max_delay: float = 30.0) -> T:
        """Run a blocking store call in a thread until it succeeds. The input of the batch is not
        acknowledged meanwhile: that is the backpressure. An unavailable store is waited for; any
        other store error is logged as an error and retried too (a batch given up would be acknowledged
        and lost), and /health reports the failing write until it succeeds."""
        delay = first_delay
        while True:
            try:
                result = await asyncio.get_running_loop().run_in_executor(self.store_executor, action)
                self.failing.pop(what, None)
                return result
            except StoreUnavailable as exc:
                self.metrics.store_failures.labels(what).inc()
                log.warning("store unavailable for %s, retrying in %.1fs: %s", what, delay, exc)
            except StoreError as exc:
                self.metrics.store_failures.labels(what).inc()
                self.failing[what] = str(exc)[:300]
                log.error("store write %s failed, retrying in %.1fs: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)

    async def publish_outbox(self, mails: list[Any]) -> None:
        """Put rendered mails (pipeline.models.Mail) into the mail outbox, keyed by tenant_id, and
        wait until Kafka acknowledged them (retried like every batch's messages)."""
        if not mails:
            return

        async def send() -> list[Any]:
            return [await self.topics.outbox.send(key=mail.tenant_id, value=orjson.dumps(mail.to_record()))
                    for mail in mails]

        await self.deliver_all("mail-outbox", send)
        for mail in mails:
            self.metrics.mails.labels(mail.kind).inc()

    async def deliver_all(self, what: str, send: Callable[[], Awaitable[list[Any]]], *,
                          max_delay: float = 30.0) -> None:
        """Send a batch's Kafka messages and wait for their acknowledgement, again until it works:
        a batch whose messages failed must not be acknowledged. Messages sent twice are harmless
        downstream (same alert versions, same mails by Message-ID)."""
        delay = 0.5
        while True:
            try:
                await wait_all(await send())
                self.failing.pop(what, None)
                return
            except Exception as exc:
                self.failing[what] = str(exc)[:300]
                self.metrics.agent_errors.labels(what).inc()
                log.error("sending %s failed, retrying in %.1fs: %s", what, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)


async def wait_all(futures: list[Awaitable[Any]]) -> None:
    """Wait until Kafka acknowledged every message sent for a batch."""
    if futures:
        await asyncio.gather(*futures)
