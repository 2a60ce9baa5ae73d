"""Producing JSON lines and registry records to Kafka: the checks and counting are plain code, the send is given."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, TextIO

import orjson

from pipeline.clock import Clock
from pipeline.config import Topics
from pipeline.ingest import wire_refusal
from pipeline.io.kafka_security import unless_refused
from pipeline.models import Registry

Send = Callable[[str, "bytes | None", "bytes | None"], None]


@dataclass
class ProduceReport:
    read: int = 0
    sent: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"read {self.read}, sent {self.sent}, refused {self.refused}"


def numbered_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its end) of each non-blank line."""
    for number, line in enumerate(stream, start=1):
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield number, line


def utm_key(value: bytes) -> bytes | None:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    utm_id = data.get("utm_id") if isinstance(data, dict) else None
    return utm_id.encode("utf-8") if isinstance(utm_id, str) else None


def topic_for(value: bytes, topics: Topics) -> str:
    """A line with a `type` key is an event, anything else a heartbeat (the rule replay follows)."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return topics.events
    return topics.events if not isinstance(data, dict) or "type" in data else topics.heartbeats


def produce_lines(lines: Iterable[tuple[int, bytes]], send: Send | None, clock: Clock, *, topics: Topics,
                  topic: str | None = None, validate: bool = True,
                  report_problem: Callable[[str], None] | None = None) -> ProduceReport:
    """Check each line (unless `validate` is off) and send the good ones; `send=None` only checks.

    Without `topic` each line goes to the events or heartbeats topic by its kind.
    """
    report = ProduceReport()
    for number, value in lines:
        report.read += 1
        target = topic or topic_for(value, topics)
        if validate:
            refusal = wire_refusal(value, clock.now(), heartbeat=target == topics.heartbeats)
            if refusal:
                report.refused += 1
                problem = f"line {number}: {refusal.reason}: {refusal.detail}"
                report.problems.append(problem)
                if report_problem:
                    report_problem(problem)
                continue
        if send is not None:
            send(target, utm_key(value), value)
            report.sent += 1
    return report


def registry_records(registry: Registry, topics: Topics) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of every tenant, then every UTM, as the compacted registry topics hold them."""
    out = [(topics.tenants, t.tenant_id.encode(), orjson.dumps(t.to_record())) for t in registry.tenants.values()]
    out += [(topics.utms, u.utm_id.encode(), orjson.dumps(u.to_record())) for u in registry.utms.values()]
    return out


def open_kafka_producer(bootstrap: str, options: Mapping[str, Any] | None = None) -> Any:
    """`options`: the connection's security (pipeline.io.kafka_security.kafka_python_options)."""
    from kafka import KafkaProducer

    return unless_refused(lambda: KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, compression_type="gzip",
        linger_ms=20, client_id="mimamori-produce", max_block_ms=15000,
        **(options or {}),
    ))


class KafkaSender:
    """A `Send` onto a kafka-python producer that counts failed deliveries."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.failures: list[str] = []

    def __call__(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        future = self.producer.send(topic, key=key, value=value)
        future.add_errback(lambda exc: self.failures.append(f"{topic}: {type(exc).__name__}: {exc}"))

    def close(self, timeout_s: float = 60.0) -> None:
        self.producer.flush(timeout=timeout_s)
        self.producer.close(timeout=timeout_s)


def read_input(path: str, stdin: TextIO) -> Iterable[bytes]:
    if path == "-":
        return stdin.buffer
    return open(path, "rb")
