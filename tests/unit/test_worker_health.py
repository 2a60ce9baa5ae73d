"""`/health` of a worker: a timer whose run raises, or that stops running, turns it to 503 (the
report's status is what the page answers with). Built on a real Faust app that never connects."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
import pytest

from agents.context import Context
from agents.worker import STALLED_AFTER, health_report
from pipeline.clock import SystemClock
from pipeline.config import Settings
from pipeline.io.metrics import Metrics
from pipeline.models import Registry

pytestmark = pytest.mark.unit


def context() -> Context:
    app = faust.App("health-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    return Context(app=app, settings=Settings(), publisher=None, registry=Registry(), policy=None,  # type: ignore[arg-type]
                   store=None, metrics=Metrics(), clock=SystemClock())


def test_an_exception_in_a_timer_turns_health_to_503_until_a_run_succeeds() -> None:
    ctx = context()
    fail = {"now": True}

    async def upkeep() -> Any:
        if fail["now"]:
            raise RuntimeError("state expiry broke for boss@tenant.example")

    tick = ctx.guarded_timer(300.0, "expire-state", upkeep)
    started = time.time()
    asyncio.run(tick())
    report = health_report(ctx, time.time(), started)
    assert report["status"] == "stalled"
    assert report["failing"] == {"timer:expire-state": "timer_error"}  # a code: no exception text, no address
    assert "tenant.example" not in str(report)
    assert ctx.metrics.agent_errors.labels("expire-state")._value.get() == 1
    fail["now"] = False
    asyncio.run(tick())
    assert health_report(ctx, time.time(), started)["status"] == "ok"


def test_a_timer_that_stops_running_turns_health_to_503() -> None:
    ctx = context()

    async def nothing() -> None:
        return None

    tick = ctx.guarded_timer(1.0, "mail-due", nothing)
    asyncio.run(tick())
    now = time.time()
    assert health_report(ctx, now, now)["status"] == "ok"
    later = now + STALLED_AFTER + 1
    report = health_report(ctx, later, now)
    assert report["status"] == "stalled" and "mail-due" in report["stalled"]


def test_every_timer_of_a_worker_goes_through_the_guard() -> None:
    """No bare app.timer in agents/: a timer outside the guard could die unseen."""
    import pathlib

    bare = [str(p) for p in pathlib.Path("agents").glob("*.py")
            if ".timer(" in p.read_text() and p.name != "context.py"]
    assert bare == []
