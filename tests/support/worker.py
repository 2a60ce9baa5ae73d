"""A real `mimamori worker` process for integration tests, with its own topics, store and mail."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import orjson
from kafka import KafkaConsumer, KafkaProducer

from pipeline.config import Topics
from pipeline.io.kafka_admin import PARTITIONS, ensure_topics, topic_specs
from tests.support.services import ROOT, free_port

def _report_day_not_due() -> str:
    """A MIMAMORI_REPORT_AT whose monthly reports are not due around now (their catch-up window is 3
    days), so workers of other tests send none; the report's own test sets it and the clock."""
    from datetime import datetime, timezone

    return f"{(datetime.now(timezone.utc).day + 9) % 28 + 1} 08:00"


FAST_TIMINGS = {
    "MIMAMORI_MAIL_GROUP_WAIT": "2s",
    "MIMAMORI_MAIL_GROUP_INTERVAL": "4s",
    "MIMAMORI_MAIL_URGENT_WAIT": "1s",
    "MIMAMORI_REPORT_AT": _report_day_not_due(),
}


PROCESSOR_INPUTS = {"detect": ("events", "heartbeats"), "mail-timing": ("mail_requests",),
                    "mail-sender": ("outbox",), "store": ("store_rows",)}
"""The input topics (Topics attributes) of the worker's processors, by processor (group) name."""


@dataclass
class WorkerProcess:
    """One worker, on a topic prefix of its own so tests never see each other's records."""

    bootstrap: str
    workdir: Path
    smtp: str
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}.")
    web_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def topics(self) -> Topics:
        return Topics().prefixed(self.prefix)

    @property
    def store_url(self) -> str:
        return f"chdb://{self.workdir / 'clickhouse'}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ, **FAST_TIMINGS,
            "MIMAMORI_KAFKA": self.bootstrap, "MIMAMORI_TOPIC_PREFIX": self.prefix,
            "MIMAMORI_CLICKHOUSE": self.store_url, "MIMAMORI_SMTP": self.smtp,
            "MIMAMORI_WEB_PORT": str(self.web_port), **self.extra_env,
        }

    def create_topics(self) -> None:
        ensure_topics(self.bootstrap, topic_specs(self.topics))

    def start(self, wait: float = 90.0) -> None:
        self.create_topics()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = open(self.workdir / f"worker-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mimamori.cli", "worker", "--loglevel", "info",
             *self.extra_args],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if "detect" in self.health().get("progress", {}) or self._assigned():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready within {wait}s:\n{self.log_tail()}")

    def caught_up(self, *processors: str, timeout: float = 120.0) -> None:
        """Wait until each named processor (by default the four of an event's way, in its order:
        detect, mail timing, sender, store) has committed its input topics up to their ends as they
        are when its turn comes: everything sent to the worker before the call has been taken, and
        what it made is on its topics. Input that goes on arriving (heartbeats) does not hold it."""
        topics = self.topics
        for name in processors or tuple(PROCESSOR_INPUTS):
            inputs = [getattr(topics, t) for t in PROCESSOR_INPUTS[name]]
            ends = end_offsets(self.bootstrap, inputs)
            wait_for(lambda: committed_up_to(self.bootstrap, topics.group(name), ends), timeout=timeout,
                     every=0.25, message=f"{name} at the end of {', '.join(inputs)}")

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` with these labels in /metrics (0 when there is none)."""
        from prometheus_client.parser import text_string_to_metric_families

        return sum(s.value for family in text_string_to_metric_families(self.metrics()) for s in family.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def _assigned(self) -> bool:
        text = self.log_text()
        return "Ready" in text or "[^Worker]: Ready" in text

    def health(self) -> dict:
        """The /health report, whether it answers 200 or 503; {} while the worker does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/health", timeout=2) as answer:
                return orjson.loads(answer.read())
        except urllib.error.HTTPError as refused:
            try:
                return orjson.loads(refused.read())
            except Exception:
                return {}
        except Exception:
            return {}

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5) as answer:
            return answer.read().decode()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_text(self) -> str:
        path = self.workdir / f"worker-{self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    count = 0
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush()
    producer.close()
    return count


def read_topic(bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 60.0,
               idle: float = 5.0) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of a topic, from the start: until `expect` records were read, or until nothing
    new came for `idle` seconds (after at least one), or `timeout`."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=500)
    found: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                found.extend((r.key, r.value) for r in records)
                last_new = time.monotonic()
            if expect is not None and len(found) >= expect:
                break
            if expect is None and found and time.monotonic() - last_new > idle:
                break
    finally:
        consumer.close()
    return found


def read_to_end(bootstrap: str, topic: str, timeout: float = 60.0) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record the topic holds now (up to its end offsets at the call), in
    partition order: for a topic whose writers are done (their processor committed its inputs)."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: dict[TopicPartition, list[tuple[bytes | None, bytes | None]]] = {tp: [] for tp in tps}
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"reading {topic} took more than {timeout}s"
            for tp, messages in consumer.poll(timeout_ms=500, max_records=20_000).items():
                out[tp] += [(m.key, m.value) for m in messages]
        return [kv for tp in tps for kv in out[tp]]
    finally:
        consumer.close()


def wait_for(predicate, timeout: float = 60.0, every: float = 0.5, message: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"{message} not met within {timeout}s")



MAIL_HOLD = float(FAST_TIMINGS["MIMAMORI_MAIL_GROUP_INTERVAL"].removesuffix("s"))
"""The longest the mail timing keeps a made alert in its state before the mail (the group interval)."""


def settle(*workers: WorkerProcess, timeout: float = 120.0) -> None:
    """Before a check that something did not happen (no second mail, no wrong one): wait until the
    workers took everything sent before and their senders have no mail waiting, then for what the
    mail timing may still hold (MAIL_HOLD, a configured duration), then again: whatever the input
    made has come out by then."""
    alive = [w for w in workers if w.proc is not None and w.proc.poll() is None]
    for _ in range(2):
        for worker in alive:
            worker.caught_up(timeout=timeout)
        for worker in alive:
            wait_for(lambda: worker.metric("mimamori_mail_oldest_undelivered_age_seconds") == 0, timeout=timeout,
                     every=0.25, message="no mail waiting in the sender")
        if _ == 0:
            time.sleep(MAIL_HOLD)


def one_tenant_registry(tenant_id: str, name: str, emails: list[str], utm_ids: list[str], *,
                        industry: str = "retail", region: str = "kanto", size_band: str = "10-49") -> dict:
    """A registry file of one active tenant, in service for 100 days, with its UTMs."""
    from datetime import datetime, timedelta, timezone

    start = (datetime.now(timezone.utc) - timedelta(days=100)).date().isoformat()
    return {
        "tenants": [{
            "tenant_id": tenant_id, "name": name, "notify_emails": emails, "locale": "ja",
            "service_start": start, "contract_end": None, "industry": industry, "region": region,
            "size_band": size_band, "active": True,
        }],
        "utms": [{"utm_id": utm_id, "tenant_id": tenant_id, "model": "ZA-SA3500G",
                  "registered_at": f"{start}T00:00:00Z", "active": True} for utm_id in utm_ids],
    }


def end_offsets(bootstrap: str, topics: list[str], partitions: int = PARTITIONS) -> dict[tuple[str, int], int]:
    """(topic, partition) -> its end offset now."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        ends = consumer.end_offsets([TopicPartition(t, p) for t in topics for p in range(partitions)])
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}
    finally:
        consumer.close()


def committed_up_to(bootstrap: str, group: str, ends: dict[tuple[str, int], int]) -> bool:
    """Whether `group` committed each (topic, partition) of `ends` up to its offset there."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return all((consumer.committed(TopicPartition(t, p)) or 0) >= end for (t, p), end in ends.items())
    finally:
        consumer.close()


def committed_everything(bootstrap: str, group: str, topics: list[str], partitions: int = PARTITIONS) -> bool:
    """Whether `group` committed every partition of `topics` up to its end."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        ends = consumer.end_offsets(tps)
        return all((consumer.committed(tp) or 0) >= ends[tp] for tp in tps)
    finally:
        consumer.close()


def group_names(bootstrap: str) -> set[str]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {g["group_id"] if isinstance(g, dict) else g[0] for g in admin.list_groups()}
    finally:
        admin.close()
