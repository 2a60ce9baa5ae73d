"""Following a compacted topic whole, without a consumer group, into a dict kept current by a
thread of its own: what every worker needs to know about the whole deployment (alert routes, the
fleet's silence)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger("mimamori")


class CompactedFollower:
    """`values[key]` is the latest decoded value of each key (a null value removes it);
    `read_at` is when the follower last knew it had read everything the topic held."""

    def __init__(self, bootstrap: str, topic: str, decode: Callable[[bytes], Any], name: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.decode = decode
        self.values: dict[str, Any] = {}
        self.read_at = 0.0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        while not self.stopping.is_set():
            try:
                consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), group_id=None,
                                         enable_auto_commit=False, client_id=f"mimamori-{self.thread.name}")
                try:
                    tps = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or ())]
                    consumer.assign(tps)
                    consumer.seek_to_beginning(*tps)
                    while not self.stopping.is_set():
                        asked = time.time()
                        ends = consumer.end_offsets(tps)
                        for records in consumer.poll(timeout_ms=200, max_records=10_000).values():
                            for r in records:
                                self._apply(r.key, r.value)
                        if all(consumer.position(tp) >= ends[tp] for tp in tps):
                            self.read_at = asked
                finally:
                    consumer.close()
            except Exception:
                log.exception("%s failed; reading %s again in 5 s", self.thread.name, self.topic)
                self.stopping.wait(5)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self.values.pop(key.decode(), None)
            return
        try:
            self.values[key.decode()] = self.decode(value)
        except Exception as exc:  # noqa: BLE001 - a bad record of an internal topic is skipped, named
            log.error("%s: record %r refused: %s", self.topic, key, exc)
