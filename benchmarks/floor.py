"""The floor of the stack (issue 22): what each part the pipeline stands on costs per event on this
machine, each alone, so that the target of 0.30 CPU-seconds per 10,000 events (30 us an event, every
process of the pipeline) can be read against what the parts themselves cost.

    .venv/bin/python -m benchmarks.floor [--events 100000] [--bootstrap HOST:PORT --topic T]

Without --bootstrap it starts a broker of its own (scripts/kafka.sh) and loads the events itself;
`benchmarks.bench_side` runs it against its broker and its pre-loaded events topic. CPU is this
process's (every thread: librdkafka's and chdb's too), per event, after a warm-up:

- Kafka: a plain aiokafka consumer draining the events topic with getmany (read_committed, batches
  of 10,000, as the runtime reads), ConsumerRecord objects included; the same with confluent-kafka
  (librdkafka, as both peers read); a transactional aiokafka producer writing a batch's store rows
  (10,000 rows of ~600 bytes in messages of 2,000) with its offsets, one transaction a batch;
- decoding: the typed decoder alone (msgspec, `pipeline.ingest.typed`), and the whole front door
  (`EventValidator.check_event`: decode, addresses, time, registry, the Event);
- the engine (`Detector.step`: validation, dedup, policy, correlation, UTM status) for reference;
- a store row: built and encoded from the typed event (`pipeline.rows.event_row_json`), and the
  old way (a dict, then orjson);
- the embedded ClickHouse (chdb, in this process), event rows by input format, batches of 10,000:
  into the events table with its roll-ups (materialized views), and parsing only (a Null table).

The sum of one path through them (read, decode, row, produce, the store's read of the rows, insert)
is "the floor": what the pipeline would cost with nothing of its own around the parts.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import orjson

BATCH = 10_000
ROWS_PER_MESSAGE = 2_000


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_event(work: Callable[[], Any], count: int, repeat: int = 2) -> float:
    """Microseconds of this process's CPU per item of `work` (which handles `count` items), the least
    of `repeat` runs (the first warms up)."""
    least = float("inf")
    for _ in range(repeat):
        started = cpu()
        work()
        least = min(least, cpu() - started)
    return least / count * 1e6


# --- the parts in this process ----------------------------------------------------------------


def local_parts(events: int) -> dict[str, float]:
    from benchmarks.worker_load import make_load
    from pipeline.config import Settings
    from pipeline.engine import Detector, InputRecord
    from pipeline.ingest.typed import decode_event
    from pipeline.ingest.validator import EventValidator
    from pipeline.registry_file import registry_from_data
    from pipeline.rows import event_row, event_row_json
    from pipeline.rules import load_policy

    now = datetime.now(timezone.utc)
    load = make_load(events, end=now - timedelta(minutes=1))
    values = [value for _, value in load.events]
    registry = registry_from_data(load.registry)
    validator = EventValidator(registry)
    floor: dict[str, float] = {}
    decode_event(values[0])
    floor["msgspec typed decode"] = per_event(lambda: [decode_event(v) for v in values], len(values))
    floor["front door (check_event)"] = per_event(lambda: [validator.check_event(v, now) for v in values], len(values))
    detector = Detector(Settings(), registry, load_policy(), started_at=now)
    stored: list[Any] = []

    def engine() -> None:
        for first in range(0, len(values), BATCH):
            batch = [InputRecord("event", v, "utm.events", 0, n) for n, v in enumerate(values[first:first + BATCH], first)]
            stored.extend(detector.step(batch, now).outputs.events)

    floor["engine (Detector.step)"] = per_event(engine, len(values), repeat=1)  # a second run: all duplicates
    rows = [event_row_json(s.event, s.signal, s.alert_id) for s in stored]
    floor["store row, typed -> JSON"] = per_event(
        lambda: [event_row_json(s.event, s.signal, s.alert_id) for s in stored], len(stored))
    floor["store row, dict -> orjson"] = per_event(
        lambda: [orjson.dumps(event_row(s.event, None if s.signal < 0 else s.signal, s.alert_id),
                              option=orjson.OPT_UTC_Z) for s in stored], len(stored))
    floor.update(chdb_parts(rows, now))
    return floor


def chdb_parts(rows: list[bytes], now: datetime) -> dict[str, float]:
    """The embedded engine's CPU per event row by input format (every thread of this process: the
    insert, the roll-ups, the merges it starts meanwhile)."""
    from pipeline.io.store.backends import open_store
    from pipeline.io.store.migrate import apply_migrations

    with tempfile.TemporaryDirectory(prefix="floor-chdb-") as path:
        store = open_store(f"chdb://{path}", create=True)
        apply_migrations(store, "Asia/Tokyo", now)
        session = store._session  # type: ignore[attr-defined]
        columns = [row["name"] for row in store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'events' ORDER BY position")]
        store.execute("CREATE TABLE events_parse_only AS events ENGINE = Null")
        batches = [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]
        as_objects = [b"[" + b",".join(batch) + b"]" for batch in batches]
        as_arrays = [b"\n".join(orjson.dumps([row[c] for c in columns]) for row in map(orjson.loads, batch))
                     for batch in batches]

        def insert(table: str, fmt: str, bodies: list[bytes], settings: str) -> Callable[[], None]:
            def run() -> None:
                for body in bodies:
                    token = uuid.uuid4().hex
                    inserting = session.send_insert(
                        f"INSERT INTO {table} SETTINGS {settings}insert_deduplication_token = '{token}'", fmt)
                    inserting.append(body)
                    inserting.finish()
            return run

        best = "date_time_input_format = 'best_effort', "
        cases = [("JSONEachRow (as now)", "JSONEachRow", as_objects, best),
                 ("JSONCompactEachRow", "JSONCompactEachRow", as_arrays, best)]
        floor: dict[str, float] = {}
        insert("events", "JSONEachRow", as_objects[:1], best)()  # warm-up
        for label, fmt, bodies, settings in cases:
            floor[f"chdb insert {label}, parse only"] = per_event(
                insert("events_parse_only", fmt, bodies, settings), len(rows))
            floor[f"chdb insert {label}, with roll-ups"] = per_event(insert("events", fmt, bodies, settings), len(rows))
        store.close()
    return floor


# --- Kafka ------------------------------------------------------------------------------------


async def _aiokafka_read(bootstrap: str, topic: str, count: int) -> tuple[int, float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed",
                                fetch_max_bytes=32 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        got, started, deadline = 0, cpu(), time.monotonic() + 120
        while got < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            got += sum(len(records) for records in batch.values())
        return got, cpu() - started
    finally:
        await consumer.stop()


def _confluent_read(bootstrap: str, topic: str, count: int) -> tuple[int, float]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"floor-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    try:
        got, started, deadline = 0, cpu(), time.monotonic() + 120
        while got < count and time.monotonic() < deadline:
            got += sum(1 for m in consumer.consume(BATCH, timeout=0.5) if m.error() is None)
        return got, cpu() - started
    finally:
        consumer.close()


async def _aiokafka_produce(bootstrap: str, batches: int) -> tuple[int, float]:
    """A batch's store rows (10,000 rows of ~600 bytes, 2,000 a message) in a transaction of their own."""
    from aiokafka import AIOKafkaProducer

    from pipeline.io.kafka_admin import TopicSpec, ensure_topics

    topic = f"floor-rows-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [TopicSpec(topic, 1, max_message_bytes=8 * 1024 * 1024)])
    row = b'{"event_id":"utm-004-02-0000001",' + b'"x":"' + b"y" * 540 + b'"}'
    value = b'{"table":"events","rows":[' + b",".join([row] * ROWS_PER_MESSAGE) + b'],"recheck":false}'
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2,
                                transactional_id=f"floor-{uuid.uuid4().hex[:8]}", max_request_size=8 * 1024 * 1024,
                                max_batch_size=1024 * 1024)
    await producer.start()
    try:
        async with producer.transaction():
            await (await producer.send(topic, b"warm-up"))
        started = cpu()
        for _ in range(batches):
            async with producer.transaction():
                sent = [await producer.send(topic, value, key=b"events") for _ in range(BATCH // ROWS_PER_MESSAGE)]
            await asyncio.gather(*sent)
        return batches * BATCH, cpu() - started
    finally:
        await producer.stop()


def kafka_parts(bootstrap: str, topic: str, count: int) -> dict[str, float]:
    floor: dict[str, float] = {}
    got, spent = asyncio.run(_aiokafka_read(bootstrap, topic, count))
    floor["aiokafka getmany, a record"] = spent / max(got, 1) * 1e6
    got, spent = _confluent_read(bootstrap, topic, count)
    floor["confluent-kafka consume, a record"] = spent / max(got, 1) * 1e6
    done, spent = asyncio.run(_aiokafka_produce(bootstrap, 5))
    floor["aiokafka produce of a batch's rows in a transaction, a row"] = spent / done * 1e6
    return floor


def preload_events(bootstrap: str, count: int) -> str:
    from benchmarks.bench_side import fast_producer, produce_all
    from benchmarks.worker_load import make_load

    from pipeline.io.kafka_admin import PARTITIONS, TopicSpec, ensure_topics

    topic = f"floor-events-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS)])
    load = make_load(count, end=datetime.now(timezone.utc) - timedelta(minutes=1))
    produce_all(fast_producer(bootstrap), [(topic, key, value) for key, value in load.events])
    return topic


# --- the table --------------------------------------------------------------------------------

PATH = ("aiokafka getmany, a record", "msgspec typed decode", "store row, typed -> JSON",
        "aiokafka produce of a batch's rows in a transaction, a row", "chdb insert JSONEachRow (as now), with roll-ups")
"""One event's way through the parts: read, decode, its row, the row produced, inserted (the store
processor's read of the rows is in messages of 2,000 rows: nothing per row beside the insert)."""


def table(floor: dict[str, float]) -> list[str]:
    lines = ["floor of the stack: CPU per event of each part alone on this machine (us; 30 us = the target "
             "of 0.30 CPU-s per 10,000 events)"]
    lines += [f"  {value:7.2f} us  {name}{'  [path]' if name in PATH else ''}" for name, value in floor.items()]
    if all(name in floor for name in PATH):
        total = sum(floor[name] for name in PATH)
        lines.append(f"  {total:7.2f} us  the floor: one event's path through the parts marked [path] "
                     f"({total * 1e-6 * 10_000:.2f} CPU-s per 10,000 events)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bootstrap", help="a broker (default: start one)")
    parser.add_argument("--topic", help="an events topic on it with at least --events events (default: load one)")
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    floor: dict[str, float] = {}
    kafka = None
    if not args.skip_kafka:
        bootstrap = args.bootstrap
        if bootstrap is None:
            from tests.support.services import kafka_service

            kafka = kafka_service(Path(tempfile.mkdtemp(prefix="floor-")))
            kafka.start()
            bootstrap = kafka.bootstrap
        try:
            topic = args.topic or preload_events(bootstrap, args.events)
            floor.update(kafka_parts(bootstrap, topic, args.events))
        finally:
            if kafka is not None:
                kafka.stop()
    floor.update(local_parts(args.events))
    ordered = {name: floor[name] for name in sorted(floor, key=lambda n: (n not in PATH, list(floor).index(n)))}
    print("\n".join(table(ordered)), flush=True)
    if args.json:
        print("FLOOR " + orjson.dumps(ordered).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
