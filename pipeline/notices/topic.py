"""Reading the compacted `service.notices` topic whole: the current version of every notice."""
from __future__ import annotations

import logging
from typing import Any, Callable

from pipeline.notices.check import NoticeError, notice_from_wire
from pipeline.notices.model import ServiceNotice

log = logging.getLogger("mimamori")


class NoticeBook:
    """notice_id -> its current version, applying records in topic order (a null value removes)."""

    def __init__(self) -> None:
        self.notices: dict[str, ServiceNotice] = {}
        self.refused = 0

    def apply(self, key: bytes | None, value: bytes | None) -> ServiceNotice | None:
        """The notice the record carries (None for a removal or a refused record)."""
        if key is None:
            log.warning("notice record without key ignored")
            return None
        notice_id = key.decode(errors="replace")
        if value is None:
            self.notices.pop(notice_id, None)
            return None
        try:
            notice = notice_from_wire(value)
        except NoticeError as exc:
            self.refused += 1
            log.error("notice record %r refused: %s", notice_id, exc)
            return None
        current = self.notices.get(notice_id)
        if current is None or notice.version >= current.version:
            self.notices[notice_id] = notice
        return notice


def read_notices(bootstrap: str, topic: str, on_record: Callable[[bytes | None, bytes | None], Any] | None = None,
                 timeout_s: float = 30.0) -> NoticeBook:
    """Everything the topic holds now (no consumer group, nothing committed)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    book = NoticeBook()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                             client_id="mimamori-notices")
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
