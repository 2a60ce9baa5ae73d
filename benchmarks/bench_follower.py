"""The follower's catch-up at a worker's start: the registry of `--utms` UTMs (tenants of five UTMs
each) and `--routes` alert routes on a broker of its own, read by agents.runtime.follow.Follower with the
worker's registry books (every record checked against its schema), on one event loop beside a
ticker that measures how long the loop was held at once (in CPU time of the loop's thread).

    .venv/bin/python -m benchmarks.bench_follower [--utms 100000] [--routes 50000]

Prints one JSON line: records, seconds until every book was ready, records/s, the longest and the
99th-percentile hold of the event loop in ms.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson
from kafka import KafkaProducer

from agents.runtime.follow import Follower, Followed
from agents.processors.registry import RegistryBooks
from benchmarks.state_rss import registry_data
from pipeline.config import Settings, Topics
from pipeline.io.kafka_admin import ensure_topics, topic_specs
from pipeline.io.metrics import Metrics
from pipeline.models import Registry
from tests.support.services import kafka_service

TICK = 0.005


def load(bootstrap: str, topics: Topics, utms: int, routes: int) -> int:
    data = registry_data(utms, datetime.now(timezone.utc))
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
    for tenant in data["tenants"]:
        producer.send(topics.tenants, key=tenant["tenant_id"].encode(), value=orjson.dumps(tenant))
    for utm in data["utms"]:
        producer.send(topics.utms, key=utm["utm_id"].encode(), value=orjson.dumps(utm))
    for n in range(routes):
        producer.send(topics.alert_routes, key=f"a-{n:012x}".encode(), value=data["utms"][n % utms]["utm_id"].encode())
    producer.flush()
    producer.close()
    return len(data["tenants"]) + len(data["utms"]) + routes


async def follow(settings: Settings) -> dict[str, float]:
    registry, metrics = Registry(), Metrics()
    books = RegistryBooks(registry, metrics)
    follower = Follower(settings, metrics=metrics)
    topics = settings.topics
    followed = Followed(follower.topic(topics.tenants, apply=books.tenants), follower.topic(topics.utms, apply=books.utms),
                        follower.topic(topics.alert_routes, bytes.decode))
    followed.start()
    holds: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        """CPU time the loop spent between two ticks: what held it (a loaded machine's scheduling
        delays are not counted; wall time would count them)."""
        while not done.is_set():
            before = time.thread_time()
            await asyncio.sleep(TICK)
            holds.append(time.thread_time() - before)

    started = time.perf_counter()
    ticking = asyncio.create_task(ticker())
    await follower.start()
    await followed.wait_ready()
    seconds = time.perf_counter() - started
    done.set()
    await ticking
    await follower.stop()
    holds.sort()
    assert not metrics.registry_refused.labels("utm")._value.get(), "a generated record was refused"
    return {"ready_s": round(seconds, 2), "utms": len(registry.utms), "tenants": len(registry.tenants),
            "loop_held_max_ms": round(holds[-1] * 1000, 1), "loop_held_p99_ms": round(holds[int(len(holds) * 0.99)] * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utms", type=int, default=100_000)
    parser.add_argument("--routes", type=int, default=50_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-follower-") as workdir:
        kafka = kafka_service(Path(workdir))
        kafka.start()
        try:
            topics = Topics().prefixed(f"b{uuid.uuid4().hex[:8]}.")
            ensure_topics(kafka.bootstrap, topic_specs(topics))
            records = load(kafka.bootstrap, topics, args.utms, args.routes)
            result = asyncio.run(follow(Settings(kafka=kafka.bootstrap, topics=topics)))
        finally:
            kafka.stop()
    result = {"records": records, **result, "records_per_s": round(records / result["ready_s"])}
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
