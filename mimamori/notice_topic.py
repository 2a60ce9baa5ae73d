"""Reading the compacted `service.notices` topic whole, for `mimamori notice` (no consumer group)."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from pipeline.io.kafka_security import unless_refused
from pipeline.notices.topic import NoticeBook


def read_notices(bootstrap: str, topic: str, on_record: Callable[[bytes | None, bytes | None], Any] | None = None,
                 timeout_s: float = 30.0, options: Mapping[str, Any] | None = None) -> NoticeBook:
    """Everything the topic holds now (no consumer group, nothing committed)."""
    book = NoticeBook()

    def apply(key: bytes | None, value: bytes | None) -> None:
        book.apply(key, value)
        if on_record:
            on_record(key, value)

    read_compacted(bootstrap, topic, apply, timeout_s, options)
    return book


def read_registry_tenants(bootstrap: str, topic: str, timeout_s: float = 30.0,
                          options: Mapping[str, Any] | None = None) -> set[str]:
    """The tenant ids the compacted registry topic holds now (a null value removes one)."""
    known: set[str] = set()

    def apply(key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        tenant_id = key.decode("utf-8", "replace")
        if value is None:
            known.discard(tenant_id)
        else:
            known.add(tenant_id)

    read_compacted(bootstrap, topic, apply, timeout_s, options)
    return known


def read_compacted(bootstrap: str, topic: str, on_record: Callable[[bytes | None, bytes | None], Any],
                   timeout_s: float = 30.0, options: Mapping[str, Any] | None = None, *,
                   client_id: str = "mimamori-notices") -> None:
    """Hand every record a topic holds now to `on_record`, in order (no consumer group)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = unless_refused(lambda: KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None,
                                                    enable_auto_commit=False, client_id=client_id, **(options or {})))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took more than {timeout_s:.0f}s")
            for messages in consumer.poll(timeout_ms=500, max_records=5000).values():
                for message in messages:
                    on_record(message.key, message.value)
    finally:
        consumer.close()
