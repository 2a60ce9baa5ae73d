"""The runtime's overlap (issue 22): a partition's next batch is fetched and judged while the last
batch's transaction is in flight. On the real broker, with the real `PartitionedProcessor` and a
handler of the test's own that numbers every record it takes in its saved state:

- the commits of the test are slowed, so that batches are judged while the one before commits;
- one commit's answer is lost after the broker committed it, another's before: in both the
  batch judged meanwhile took state that Kafka may not have. The partition is read again from
  Kafka as a new owner would, and a `read_committed` reader sees every input record's output once,
  numbered 1..n in the input's order (the state restored from Kafka numbers on where the
  committed output ended).
"""
from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError
from kafka import KafkaProducer

from agents.runtime.processor import Output, PartitionedProcessor, SavedState, StateWrite
from pipeline.io.kafka_admin import TopicSpec, ensure_topics
from tests.support.runtime import committed_output
from tests.support.services import KafkaService

RECORDS = 300


class Numbering:
    """Each record gives one output: its value, numbered by a counter kept in saved state."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.count: dict[int, int] = {}
        self.processor: PartitionedProcessor | None = None
        self.restores = 0
        self.judged_in_flight = 0

    async def assigned(self, partition: int, saved: SavedState) -> None:
        self.restores += 1
        self.count[partition] = int(saved.keyed[partition].get("count", 0))

    async def revoked(self, partition: int) -> None:
        self.count.pop(partition, None)

    async def handle(self, partition: int, records: list[ConsumerRecord]) -> Output:
        assert self.processor is not None
        tail = self.processor.slots[partition].tail
        if tail is not None and not tail.done():
            self.judged_in_flight += 1  # the batch before this one is still being committed
        messages = []
        for record in records:
            self.count[partition] += 1
            messages.append((self.out, record.value, str(self.count[partition]).encode(), None))
        return Output(messages, [StateWrite(partition, "count", self.count[partition])])


class SlowFlakyCommits(PartitionedProcessor):
    """Every commit waits a little (a busy broker); commit number n in `lose` loses its answer:
    'after' once the broker committed it, 'before' without sending it."""

    def __init__(self, *, lose: dict[int, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lose = lose
        self.commits = 0

    async def _producer(self, partition: int) -> Any:
        producer = await super()._producer(partition)
        commit = producer.commit_transaction

        async def slow_flaky_commit() -> None:
            self.commits += 1
            how = self.lose.get(self.commits)
            await asyncio.sleep(0.05)
            if how == "before":
                raise KafkaConnectionError("test: the commit request was lost")
            await commit()
            if how == "after":
                raise KafkaConnectionError("test: the commit's answer was lost")

        producer.commit_transaction = slow_flaky_commit
        return producer


def test_overlapped_batches_keep_order_and_exactly_once_when_a_commit_fails(kafka: KafkaService) -> None:
    run = uuid.uuid4().hex[:8]
    source, out, state = f"overlap-{run}-in", f"overlap-{run}-out", f"overlap-{run}-state"
    ensure_topics(kafka.bootstrap, [TopicSpec(source, 1), TopicSpec(out, 1), TopicSpec(state, 1, compacted=True)])
    values = [f"r{i:04d}" for i in range(RECORDS)]
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for value in values:
        producer.send(source, value=value.encode())
    producer.flush()
    producer.close()

    handler = Numbering(out)
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    async def member() -> None:
        processor = SlowFlakyCommits(name="overlap", group=f"overlap-{run}", bootstrap=kafka.bootstrap,
                                     inputs=[source], handler=handler, state_topic=state, max_records=10,
                                     lose={6: "after", 14: "before"})
        handler.processor = processor
        await processor.start()
        try:
            while not stop.is_set():
                await asyncio.sleep(0.1)
        finally:
            outcome["commits"] = processor.commits
            await processor.stop()

    thread = threading.Thread(target=lambda: asyncio.run(member()), daemon=True)
    thread.start()
    try:
        found = committed_output(kafka, out, RECORDS, timeout=120)
    finally:
        stop.set()
        thread.join(timeout=30)

    assert outcome.get("commits", 0) >= 14, "the failing commits were never reached"
    assert handler.judged_in_flight > 0, "no batch was judged while the one before it was committed"
    assert handler.restores >= 3, "the partition was not read again after each lost commit"
    assert [key for key, _ in found] == values, "each record's output once, in the input's order"
    assert [number for _, number in found] == [str(n) for n in range(1, RECORDS + 1)]
