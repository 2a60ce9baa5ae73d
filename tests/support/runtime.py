"""Helpers of the tests that drive the runtime (agents.runtime.processor) with a handler of their own."""
from __future__ import annotations

import time

from kafka import KafkaConsumer

from tests.support.services import KafkaService


def committed_output(kafka: KafkaService, topic: str, expect: int, timeout: float) -> list[tuple[str, str]]:
    """(key, value) of every record of `topic` a read_committed reader sees: read until `expect`
    came or `timeout`, then 3 s more, so that anything beyond what was expected shows up too."""
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest",
                             group_id=None, isolation_level="read_committed", consumer_timeout_ms=500)
    found: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < expect:
            for records in consumer.poll(timeout_ms=500).values():
                found.extend((r.key.decode(), r.value.decode()) for r in records)
        end = time.monotonic() + 3  # anything more than expected would show up now
        while time.monotonic() < end:
            for records in consumer.poll(timeout_ms=500).values():
                found.extend((r.key.decode(), r.value.decode()) for r in records)
    finally:
        consumer.close()
    return found
