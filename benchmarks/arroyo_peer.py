"""The benchmark's second peer: the worker's event job as a Snuba-style batch consumer on Sentry's Arroyo.

    .venv/bin/python -m benchmarks.arroyo_peer --bootstrap HOST:PORT --topic T --group G \
        --registry REGISTRY.json --store DIR

The shape of a Snuba consumer: Arroyo's `StreamProcessor` over a `KafkaConsumer` (librdkafka,
one message a poll) and a chain of strategies built per assignment:

    RunTask(validate) -> FilterStep(accepted) -> RunTask(judge) -> Reduce(rows, 10,000 or 1 s)
        -> RunTaskInThreads(insert, one thread) -> CommitOffsets   (commit policy: once a second)

`validate` is this project's `EventValidator`; `judge` drops a copy with this project's `Deduper`
and correlates and grades with its `Policy` and `Correlator`, and turns the event and its alert
changes into the same rows as the worker (`pipeline.rows`); `Reduce` gathers the rows of up to
10,000 messages or one second; the insert writes them into an embedded ClickHouse (chdb), one
insert per table with a deduplication token, in a thread as Snuba's writer does, so that the next
batch is judged meanwhile; offsets are committed only after their batch's insert, so the group's
committed offsets count events processed and stored: that is how the benchmark follows it.

Arroyo has no state store: the dedup memory and the correlation state live in this process only
(a restart forgets them), where the worker saves both transactionally and the Quix peer in its
changelogged state store. Not done here, and done by the worker: heartbeats and UTM status,
rejections to a topic, alert and mail-request messages. The comparison is in the peer's favour.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import orjson
from arroyo.backends.kafka import KafkaConsumer, KafkaPayload
from arroyo.backends.kafka.configuration import build_kafka_consumer_configuration
from arroyo.commit import ONCE_PER_SECOND
from arroyo.processing import StreamProcessor
from arroyo.processing.strategies import (CommitOffsets, FilterStep, ProcessingStrategy,
                                          ProcessingStrategyFactory, Reduce, RunTask, RunTaskInThreads)
from arroyo.types import BaseValue, Commit, Message, Partition, Topic

from pipeline.config import Settings
from pipeline.correlate import Correlator
from pipeline.dedup import Deduper
from pipeline.ingest import EventValidator
from pipeline.io.store.backends import Store, open_store
from pipeline.io.store.migrate import apply_migrations
from pipeline.models import Event
from pipeline.registry_file import registry_from_data
from pipeline.rows import alert_row, event_row
from pipeline.rules import load_policy

Rows = dict[str, list[dict[str, Any]]]


class Batch:
    """The rows of the messages `Reduce` gathered, by table, and where the batch started (its
    insert's deduplication token)."""

    __slots__ = ("tables", "first")

    def __init__(self) -> None:
        self.tables: Rows = defaultdict(list)
        self.first: tuple[int, int] | None = None

    def add(self, value: BaseValue[Rows]) -> "Batch":
        if self.first is None:
            for partition, offset in value.committable.items():
                self.first = (partition.index, offset)
        for table, rows in value.payload.items():
            self.tables[table].extend(rows)
        return self


class Job:
    """The worker's event job, step by step as Arroyo's strategies call it (one thread: the
    validator, dedup and correlator run in the consumer's loop, in offset order)."""

    def __init__(self, registry: Any, store: Store, topic: str) -> None:
        settings = Settings()
        self.topic = topic
        self.policy = load_policy()
        self.validator = EventValidator(registry)
        self.deduper = Deduper(settings.dedup_window)
        self.correlator = Correlator(self.policy, window=settings.correlation_window, tz=settings.tz,
                                     tenant_of=registry.tenant_of)
        self.store = store
        self.stored: dict[str, int] = defaultdict(int)

    def validate(self, message: Message[KafkaPayload]) -> Event | None:
        checked = self.validator.check_event(message.payload.value, datetime.now(timezone.utc), topic=self.topic)
        return checked if isinstance(checked, Event) else None  # a rejection would go to a DLQ topic

    def judge(self, message: Message[Event]) -> Rows:
        event = message.payload
        now = datetime.now(timezone.utc)
        if self.deduper.is_duplicate(event.utm_id, event.event_id, now):
            return {}
        signal = self.policy.signal(event)
        changes = self.correlator.process(event, now, signal)
        alert_id = changes[-1].alert.alert_id if changes else ""
        return {"events": [event_row(event, signal.level if signal else None, alert_id)],
                "alerts": [alert_row(change.alert) for change in changes]}

    def insert(self, message: Message[Batch]) -> None:
        batch = message.payload
        partition, offset = batch.first or (0, 0)
        for table, rows in batch.tables.items():
            if rows:
                self.store.insert(table, rows, dedup_token=f"arroyo:{self.topic}:{partition}:{offset}:{table}")
                self.stored[table] += len(rows)


class JobFactory(ProcessingStrategyFactory[KafkaPayload]):
    def __init__(self, job: Job, batch_size: int, batch_time: float) -> None:
        self.job = job
        self.batch_size = batch_size
        self.batch_time = batch_time

    def create_with_partitions(self, commit: Commit, partitions: Mapping[Partition, int]) -> ProcessingStrategy[KafkaPayload]:
        insert = RunTaskInThreads(self.job.insert, concurrency=1, max_pending_futures=2, next_step=CommitOffsets(commit))
        batch: Reduce[Rows, Batch] = Reduce(self.batch_size, self.batch_time, Batch.add, Batch, insert)
        judge = RunTask(self.job.judge, batch)
        accepted = FilterStep(lambda message: message.payload is not None, judge)
        return RunTask(self.job.validate, accepted)


def build(args: argparse.Namespace) -> tuple[StreamProcessor[KafkaPayload], Job]:
    settings = Settings()
    registry = registry_from_data(orjson.loads(Path(args.registry).read_bytes()))
    store = open_store(f"chdb://{args.store}", create=True)
    apply_migrations(store, str(settings.tz), datetime.now(timezone.utc))
    job = Job(registry, store, args.topic)
    consumer = KafkaConsumer(build_kafka_consumer_configuration(
        {}, group_id=args.group, auto_offset_reset="earliest", bootstrap_servers=[args.bootstrap]))
    processor = StreamProcessor(consumer, Topic(args.topic), JobFactory(job, args.batch_size, args.batch_time),
                                commit_policy=ONCE_PER_SECOND)
    return processor, job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--registry", required=True, help="registry file (JSON)")
    parser.add_argument("--store", required=True, help="chdb directory")
    parser.add_argument("--batch-size", type=int, default=10_000, help="messages a batch at most")
    parser.add_argument("--batch-time", type=float, default=1.0, help="seconds a batch at most")
    parser.add_argument("--report", help="write the rows stored per table here (JSON) when stopped")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    processor, job = build(args)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: processor.signal_shutdown())
    processor.run()
    if args.report:
        Path(args.report).write_bytes(orjson.dumps(dict(job.stored)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
