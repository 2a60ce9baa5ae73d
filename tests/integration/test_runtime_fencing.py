"""The runtime's two guards against a slow handler (issue 19), on the real broker with the real
`PartitionedProcessor` and a handler of the test's own:

- a handler that awaits longer than its share of `max.poll.interval.ms` is cut short: the poll
  loop goes on, the step writes nothing, the partition is read again and each record gives its
  output once;
- a handler that blocks its event loop past the session timeout (a GC pause does the same) loses
  its partition to another member; when it wakes up, its transaction is fenced: nothing it
  computed is ever visible to a `read_committed` reader, and the new owner's output is, once.
"""
from __future__ import annotations

import asyncio
import collections
import threading
import time
import uuid
from typing import Any

from aiokafka import ConsumerRecord
from kafka import KafkaProducer

from agents.runtime.processor import Output, PartitionedProcessor, SavedState
from pipeline.io.kafka_admin import TopicSpec, ensure_topics
from tests.support.runtime import committed_output
from tests.support.services import KafkaService


class Echo:
    """Each input record gives one output record naming it and the member that wrote it. With
    `stall`, its first call awaits that long; with `block`, its first call blocks its whole event
    loop (heartbeats included, as a GC pause does) until the test sets `block` (at most 120 s)."""

    def __init__(self, name: str, out: str, stall: float = 0.0, block: threading.Event | None = None) -> None:
        self.name, self.out, self.stall, self.block = name, out, stall, block
        self.calls = 0
        self.woke = threading.Event()

    async def assigned(self, partition: int, saved: SavedState) -> None:
        return None

    async def revoked(self, partition: int) -> None:
        return None

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output:
        self.calls += 1
        if self.calls == 1 and self.stall:
            await asyncio.sleep(self.stall)
        if self.calls == 1 and self.block is not None:
            self.block.wait(timeout=120)  # the whole event loop stops, heartbeats included
            self.woke.set()
        return Output([(self.out, r.value, f"{self.name}:{r.value.decode()}".encode(), None) for r in records])


def _member(kafka: KafkaService, group: str, source: str, handler: Echo, stop: threading.Event,
            poll_ms: int = 10_000) -> threading.Thread:
    async def run() -> None:
        processor = PartitionedProcessor(name=handler.name, group=group, bootstrap=kafka.bootstrap,
                                         inputs=[source], handler=handler, max_records=100,
                                         max_poll_interval_ms=poll_ms, session_timeout_ms=6_000)
        await processor.start()
        try:
            while not stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            await processor.stop()

    thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    return thread


def _topics(kafka: KafkaService) -> tuple[str, str, str]:
    run = uuid.uuid4().hex[:8]
    source, out = f"fence-{run}-in", f"fence-{run}-out"
    ensure_topics(kafka.bootstrap, [TopicSpec(source, 1), TopicSpec(out, 1)])
    return source, out, f"fence-{run}"


def _send(kafka: KafkaService, topic: str, values: list[str]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for value in values:
        producer.send(topic, value=value.encode())
    producer.flush()
    producer.close()



def test_a_handler_slower_than_its_poll_share_is_cut_and_its_records_read_again(kafka: KafkaService) -> None:
    source, out, group = _topics(kafka)
    values = [f"r{i}" for i in range(30)]
    _send(kafka, source, values)
    stop = threading.Event()
    handler = Echo("slow", out, stall=60.0)
    thread = _member(kafka, group, source, handler, stop, poll_ms=8_000)
    try:
        found = committed_output(kafka, out, len(values), timeout=90)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert handler.calls >= 2
    assert collections.Counter(key for key, _ in found) == collections.Counter(values)


def test_a_member_that_blocks_past_the_session_timeout_is_fenced(kafka: KafkaService) -> None:
    source, out, group = _topics(kafka)
    values = [f"r{i}" for i in range(30)]
    stop, release = threading.Event(), threading.Event()
    zombie = Echo("zombie", out, block=release)
    first = _member(kafka, group, source, zombie, stop)
    _send(kafka, source, values)
    deadline = time.monotonic() + 60
    while zombie.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # the first member took the records and is now blocked
    heir = Echo("heir", out)
    second = _member(kafka, group, source, heir, stop)
    try:
        found = committed_output(kafka, out, len(values), timeout=120)
        release.set()  # the zombie wakes up, after the heir took its partition over, and tries to commit
        assert zombie.woke.wait(timeout=30), "the first member never woke up"
        found += committed_output(kafka, out, 10 ** 6, timeout=5)[len(found):]
    finally:
        release.set()
        stop.set()
        first.join(timeout=30)
        second.join(timeout=30)
    assert zombie.calls >= 1, "the first member never took the records"
    writers: dict[str, Any] = collections.Counter(value.split(":")[0] for _, value in found)
    assert writers.get("zombie", 0) == 0, f"a fenced member's output is visible: {writers}"
    assert collections.Counter(key for key, _ in found) == collections.Counter(values)
