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
            time.sleep(0.5)
        raise RuntimeError(f"worker not ready within {wait}s:\n{self.log_tail()}")

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


def wait_for(predicate, timeout: float = 60.0, every: float = 0.5, message: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"{message} not met within {timeout}s")


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
