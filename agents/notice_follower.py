"""Every worker follows the compacted `service.notices` topic, whole and without a consumer group,
into `Registry.maintenance`: the maintenance windows during which (and one heartbeat timeout
after which) the UTM monitor judges no silence a stop. Like the registry follower, in a thread."""
from __future__ import annotations

import logging
import threading
from typing import Any

from agents.context import Context, log
from pipeline.config import Settings
from pipeline.kafka_security import kafka_python_options
from pipeline.models import Registry
from pipeline.notices.topic import NoticeBook
from pipeline.notices.windows import apply_notice


class NoticeFollower:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.book = NoticeBook()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="notice-follower", daemon=True)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        notice = self.book.apply(key, value)
        notice_id = key.decode(errors="replace")
        if value is not None and notice is None:
            return  # refused (logged): the window it may have declared before stays
        apply_notice(self.registry.maintenance, notice_id, self.book.notices.get(notice_id))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
        topic = self.settings.topics.notices
        while not self.stopping.is_set():
            try:
                consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka.split(","), group_id=None,
                                         enable_auto_commit=False, client_id="mimamori-notice-follower",
                                         **kafka_python_options(self.settings))
                try:
                    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
                    consumer.assign(partitions)
                    consumer.seek_to_beginning(*partitions)
                    ends = consumer.end_offsets(partitions)
                    while not self.stopping.is_set():
                        if not self.ready.is_set() and all(consumer.position(tp) >= e for tp, e in ends.items()):
                            log.info("notices read: %d maintenance window(s)", len(self.registry.maintenance))
                            self.ready.set()
                        for messages in consumer.poll(timeout_ms=500, max_records=1000).values():
                            for message in messages:
                                self.apply(message.key, message.value)
                finally:
                    consumer.close()
            except Exception:
                log.exception("notice follower failed; reading the notices again in 5 s")
                self.stopping.wait(5)


def register_follower(ctx: Context) -> NoticeFollower:
    follower = NoticeFollower(ctx.settings, ctx.registry)
    follower.start()

    @ctx.app.on_before_shutdown.connect
    def stop_following(app: Any, **kwargs: Any) -> None:
        follower.stop()

    return follower
