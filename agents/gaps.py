"""A guard against input Faust never hands to an agent.

Faust 0.15.3 clears the agents' queues when the recovery after a rebalance ends, after it already
resumed and fetched the input partitions (faust-streaming issue #596). Records fetched then are never
given to the agent by this process, and since they are never acknowledged the partition's offset is
never committed past them: they would wait for the next restart. Each guarded agent reports every
offset it takes; when the agent has been idle a while, the guard seeks each partition back to the
first record it did not see. Records seen twice are harmless downstream (dedup, ledger, tokens).
"""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from agents.context import Context, log

IDLE_BEFORE_CATCH_UP = 5.0


class GapGuard:
    def __init__(self, ctx: Context, name: str, topics: set[str]) -> None:
        self.ctx = ctx
        self.name = name
        self.topics = topics
        self.next_offset: dict[Any, int] = {}
        self.gap_from: dict[Any, int] = {}
        self.busy = False
        self.last_taken = time.monotonic()

    def _committed(self, tp: Any) -> int | None:
        return getattr(self.ctx.app.consumer, "_committed_offset", {}).get(tp)

    def took(self, tp: Any, offset: int) -> None:
        expected = self.next_offset.get(tp, self._committed(tp))
        if expected is not None and offset > expected:
            self.gap_from[tp] = min(self.gap_from.get(tp, expected), expected)
        self.next_offset[tp] = offset + 1
        self.last_taken = time.monotonic()

    async def catch_up(self) -> None:
        if self.busy or time.monotonic() - self.last_taken < IDLE_BEFORE_CATCH_UP:
            return
        consumer = self.ctx.app.consumer
        for tp in [tp for tp in consumer.assignment() if tp.topic in self.topics]:
            start = self.gap_from.pop(tp, None)
            if start is None:
                seen = self.next_offset.get(tp, self._committed(tp))
                high = consumer.highwater(tp)
                if seen is not None and high is not None and high > seen:
                    start = seen
            if start is not None:
                log.warning("%s: records of %s from offset %d were not given to the agent; reading them again",
                            self.name, tp, start)
                self.ctx.metrics.input_gaps.labels(self.name).inc()
                self.next_offset[tp] = start
                await consumer.seek(tp, start)


def register_guard(ctx: Context, guard: GapGuard) -> GapGuard:
    @ctx.app.timer(IDLE_BEFORE_CATCH_UP, name=f"{guard.name}-catch-up")
    async def catch_up() -> None:
        try:
            await guard.catch_up()
        except Exception:
            ctx.metrics.agent_errors.labels(f"{guard.name}-catch-up").inc()
            log.exception("%s: catch-up failed", guard.name)

    return guard


async def guarded_batch(guard: GapGuard, take: Callable[[list[Any]], Awaitable[None]], events: list[Any]) -> None:
    """Run an agent's batch with the guard told of its offsets and kept from seeking meanwhile."""
    for event in events:
        guard.took(event.message.tp, event.message.offset)
    guard.busy = True
    try:
        await take(events)
    finally:
        guard.busy = False
