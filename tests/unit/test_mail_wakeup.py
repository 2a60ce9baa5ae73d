"""The mail timing's wake-up: a due alert mail goes at its due time, not at a timer's next tick. A
real MailHandler over a stand-in for its processor (`transact` runs the action at once and keeps its
output), on the system clock with an urgent wait of 0.3 s."""
from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import faust
import orjson
import pytest

from agents.context import Context
from agents.processors.mail import DUE_INTERVAL, MailHandler
from agents.runtime.processor import Output, SavedState
from pipeline.clock import SystemClock
from pipeline.config import Settings
from pipeline.correlate import AlertChange
from pipeline.io.metrics import Metrics
from pipeline.mail.requests import MailRequest
from pipeline.models import Alert, Registry, Tenant

pytestmark = pytest.mark.unit

URGENT = 0.3


class Ready:
    async def wait_ready(self) -> None:
        return None


class Record:
    def __init__(self, value: bytes) -> None:
        self.value, self.topic, self.partition, self.offset = value, "requests", 0, 0


class Processor:
    """`transact` as the runtime's, without Kafka: the action's output is what was committed."""

    def __init__(self) -> None:
        self.committed: list[tuple[float, Output]] = []

    async def transact(self, partition: int, action: Callable[[], Awaitable[Output]]) -> bool:
        output = await action()
        if output:
            self.committed.append((time.monotonic(), output))
        return True


def handler() -> tuple[MailHandler, Processor]:
    app = faust.App("wakeup-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    settings = dataclasses.replace(Settings(), mail_urgent_wait=timedelta(seconds=URGENT))
    registry = Registry()
    registry.tenants["t-1"] = Tenant("t-1", "Alpha", ("a@alpha.example",), service_start=date(2026, 1, 1))
    ctx = Context(app=app, settings=settings, publisher=None, registry=registry, policy=None,  # type: ignore[arg-type]
                  store=None, metrics=Metrics(), clock=SystemClock())
    ctx.registry_follower = Ready()
    mail = MailHandler(ctx)
    processor = Processor()
    mail.processor = processor  # type: ignore[assignment]
    return mail, processor


def request(alert_id: str, judged: datetime) -> bytes:
    at = datetime.now(timezone.utc)
    alert = Alert(alert_id, "t-1", "utm-1", "192.168.1.2", None, 3, "r", "Malware", at, at, 1, ("malware",),
                  "full_scan", "open", None, 1, at)
    return orjson.dumps(dataclasses.replace(MailRequest.for_change(AlertChange(alert, None, None)), at=judged).to_record())


def mails(output: Output) -> list[dict[str, Any]]:
    return [orjson.loads(value) for _, _, value, _ in output.messages if value is not None]


def test_an_urgent_mail_goes_at_its_due_time_without_a_timer() -> None:
    async def run() -> None:
        mail, processor = handler()
        await mail.assigned(0, SavedState())
        judged = datetime.now(timezone.utc)
        started = time.monotonic()
        await mail.handle(0, [Record(request("a-1", judged))])  # type: ignore[list-item]
        assert mail.next_due[0] == judged + timedelta(seconds=URGENT)
        deadline = started + URGENT + DUE_INTERVAL
        while not processor.committed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert processor.committed, "no mail within the urgent wait and the timer's interval"
        at, output = processor.committed[0]
        [sent] = mails(output)
        assert sent["alert_ids"] == ["a-1"] and sent["grade"] == 3
        # on time: not before its due time, and well within the timer's interval after it
        assert URGENT - 0.05 <= at - started < URGENT + 0.2
        assert 0 not in mail.next_due  # nothing pending: no wake-up left

    asyncio.run(run())


def test_a_request_judged_long_ago_goes_at_once_and_a_later_one_moves_the_wakeup_forward() -> None:
    async def run() -> None:
        mail, processor = handler()
        await mail.assigned(0, SavedState())
        now = datetime.now(timezone.utc)
        await mail.handle(0, [Record(request("a-late", now + timedelta(hours=1)))])  # ahead of the clock: now
        first = mail.next_due[0]
        assert first <= datetime.now(timezone.utc) + timedelta(seconds=URGENT)
        started = time.monotonic()
        await mail.handle(0, [Record(request("a-old", now - timedelta(seconds=5)))])  # due already
        assert mail.next_due[0] < first
        while not processor.committed and time.monotonic() < started + 0.2:
            await asyncio.sleep(0.005)
        assert processor.committed and processor.committed[0][0] - started < 0.1
        [sent] = mails(processor.committed[0][1])
        assert set(sent["alert_ids"]) == {"a-old", "a-late"}  # every pending alert of the tenant at that moment
        await mail.revoked(0)
        assert not mail.wakeups and not mail.next_due

    asyncio.run(run())
