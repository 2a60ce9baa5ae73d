"""The detect handler judges a batch a slice at a time and hands the event loop back between slices
(agents/processors/detect.py SLICE): a batch of 10,000 records judged at once held the loop for
seconds under load, and with it the mail timers and the consumers' heartbeats. A real handler on a
real (never connected) Faust app, a real Detector; no Kafka: the handler is called as the runtime
calls it, with the partition's records."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import faust
import orjson
import pytest
from aiokafka import ConsumerRecord

from agents.context import Context
from agents.processors.detect import SLICE, DetectHandler
from agents.runtime.follow import Follower
from agents.runtime.processor import SavedState
from pipeline.clock import ManualClock
from pipeline.config import Settings
from pipeline.io.metrics import Metrics
from pipeline.registry_file import registry_from_data
from pipeline.rules import load_policy
from pipeline.simulate import JST, simulate

pytestmark = pytest.mark.unit


def test_a_big_batch_lets_other_tasks_run_between_its_slices() -> None:
    start = datetime(2026, 11, 20, 9, 0, tzinfo=JST)
    sim = simulate(tenants=2, utms_per_tenant=2, rate=8.0, duration=timedelta(minutes=10), start=start, seed=5)
    settings = Settings()
    ready = asyncio.Event()
    ready.set()

    class Registry:
        async def wait_ready(self) -> None:
            await ready.wait()

    async def scenario() -> tuple[int, int, int]:
        app = faust.App("slices-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
        ctx = Context(app=app, settings=settings, publisher=None, registry=registry_from_data(sim.registry),  # type: ignore[arg-type]
                      policy=load_policy(settings.rules_file), store=None, metrics=Metrics(),
                      clock=ManualClock(start + timedelta(minutes=11)))
        ctx.follower = Follower(settings)
        ctx.registry_follower = Registry()
        handler = DetectHandler(ctx)
        await handler.assigned(0, SavedState())
        topic = settings.topics.events
        records = [ConsumerRecord(topic, 0, offset, 0, 0, None, line, None, len(line), -1, [])
                   for offset, line in enumerate(sim.lines) if b'"type"' in line]
        assert len(records) > 3 * SLICE
        turns = 0
        stop = False

        async def other() -> None:
            nonlocal turns
            while not stop:
                turns += 1
                await asyncio.sleep(0)

        other_task = asyncio.create_task(other())
        await asyncio.sleep(0)
        before = turns
        output = await handler.handle(0, records)
        during = turns - before
        stop = True
        await other_task
        rows = sum(1 for m in output.messages if m[0] == settings.topics.store_rows)
        return len(records), during, rows

    count, during, rows = asyncio.run(scenario())
    assert during >= max(2, count // SLICE - 1), f"the loop ran other work {during} times in a batch of {count}"
    assert rows >= 1
