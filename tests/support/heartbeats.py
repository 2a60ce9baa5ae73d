"""A fleet of UTMs beating once a second from a thread, for tests of UTM status through a worker."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import orjson

from tests.support.worker import WorkerProcess


class Heartbeats:
    """A heartbeat for every UTM of `utms` not in `silent`, once a second; `sent` counts them."""

    def __init__(self, worker: WorkerProcess, utms: list[str], **fields: Any) -> None:
        self.worker = worker
        self.utms = utms
        self.fields = fields
        self.silent: set[str] = set()
        self.sent: dict[str, int] = {utm_id: 0 for utm_id in utms}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.worker.bootstrap, acks="all", linger_ms=5)
        topic = self.worker.topics.heartbeats
        try:
            while not self.stopping.is_set():
                ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
                for utm_id in self.utms:
                    if utm_id not in self.silent:
                        beat = {"v": 1, "utm_id": utm_id, "ts": ts, **self.fields}
                        producer.send(topic, key=utm_id.encode(), value=orjson.dumps(beat))
                        self.sent[utm_id] += 1
                producer.flush()
                self.stopping.wait(1.0)
        finally:
            producer.close()

    def __enter__(self) -> "Heartbeats":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
