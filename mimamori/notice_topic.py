"""Reading the compacted `service.notices` topic whole, for `mimamori notice` (no consumer group)."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from pipeline.notices.topic import NoticeBook


def read_notices(bootstrap: str, topic: str, on_record: Callable[[bytes | None, bytes | None], Any] | None = None,
                 timeout_s: float = 30.0, options: Mapping[str, Any] | None = None) -> NoticeBook:
    """Everything the topic holds now (no consumer group, nothing committed)."""
    from kafka import KafkaConsumer, TopicPartition

    book = NoticeBook()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                             client_id="mimamori-notices", **(options or {}))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return book
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took more than {timeout_s:.0f}s")
            for messages in consumer.poll(timeout_ms=500, max_records=5000).values():
                for message in messages:
                    book.apply(message.key, message.value)
                    if on_record:
                        on_record(message.key, message.value)
        return book
    finally:
        consumer.close()
