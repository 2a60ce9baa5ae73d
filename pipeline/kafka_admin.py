"""Creates the contract's topics (idempotent): `python -m pipeline.kafka_admin --bootstrap HOST:PORT`."""
from __future__ import annotations

import argparse
from datetime import timedelta
import time
from dataclasses import dataclass
from typing import Any, Mapping

from pipeline.config import Topics, load_settings
from pipeline.kafka_security import kafka_python_options


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None
    max_message_bytes: int | None = None


def topic_specs(topics: Topics, partitions: int = 6, *, dedup_window: timedelta = timedelta(hours=24)) -> list[TopicSpec]:
    """Inputs keyed by utm_id share one partition count so a UTM's events and heartbeats meet;
    the worker's own topics (alert changes and notices re-keyed by tenant, verdicts re-keyed by
    UTM, mails a server refused for good) are partitioned alike. Service notices have one partition,
so one worker owns each broadcast and reads the notices in publication order. The dedup log keeps
pairs for the dedup window and an hour more (restore skips those past the window itself)."""
    return [
        TopicSpec(topics.events, partitions),
        TopicSpec(topics.heartbeats, partitions),
        TopicSpec(topics.tenants, 1, compacted=True),
        TopicSpec(topics.utms, 1, compacted=True),
        TopicSpec(topics.rejected, partitions),
        TopicSpec(topics.alerts, partitions),
        TopicSpec(topics.verdicts, partitions),
        TopicSpec(topics.outbox, partitions),
        TopicSpec(topics.mail_requests, partitions),
        TopicSpec(topics.verdicts_by_utm, partitions),
        TopicSpec(topics.failed_mails, partitions),
        TopicSpec(topics.notices, 1, compacted=True),
        TopicSpec(topics.alert_routes, partitions, compacted=True),
        TopicSpec(topics.detect_state, partitions, compacted=True),
        TopicSpec(topics.detect_seen, partitions, retention_ms=seen_retention_ms(dedup_window)),
        TopicSpec(topics.mail_state, partitions, compacted=True),
        TopicSpec(topics.mail_ledger, partitions, compacted=True),
        TopicSpec(topics.store_rows, partitions, retention_ms=STORE_ROWS_RETENTION_MS, max_message_bytes=16 * 1024 * 1024),
        TopicSpec(topics.store_state, partitions, compacted=True),
        TopicSpec(topics.notice_state, 1, compacted=True),
        TopicSpec(topics.fleet, 1, compacted=True),
        TopicSpec(topics.credentials, 1, compacted=True),
    ]


STORE_ROWS_RETENTION_MS = 7 * 24 * 3600 * 1000
"""Rows wait here while ClickHouse is down: a week of outage is covered."""
def seen_retention_ms(dedup_window: timedelta) -> int:
    """The dedup log's retention follows the dedup window: the window and an hour of slack."""
    return int((dedup_window + timedelta(hours=1)).total_seconds() * 1000)


def _configs(spec: TopicSpec) -> dict[str, str]:
    configs = {"cleanup.policy": "compact"} if spec.compacted else {}
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    if spec.max_message_bytes is not None:
        configs["max.message.bytes"] = str(spec.max_message_bytes)
    return configs


def ensure_topics(bootstrap: str, specs: list[TopicSpec], timeout_s: float = 60.0, *,
                  options: Mapping[str, Any] | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the names created. `options`: the
    connection's security (pipeline.kafka_security.kafka_python_options)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="mimamori-admin", **(options or {}))
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        _check_partitions(admin, [s for s in specs if s.name in existing])
        missing = [s for s in specs if s.name not in existing]
        new = [
            NewTopic(s.name, s.partitions, 1, topic_configs=_configs(s))
            for s in missing
        ]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        return [s.name for s in missing]
    finally:
        admin.close()


class TopicMismatch(RuntimeError):
    """An existing topic does not have the partitions the worker's co-partitioning needs."""


def _check_partitions(admin: object, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    found = {d["name"]: len(d["partitions"]) for d in admin.describe_topics([s.name for s in specs])}  # type: ignore[attr-defined]
    wrong = [f"{s.name} has {found.get(s.name)} partitions, expected {s.partitions}"
             for s in specs if found.get(s.name) != s.partitions]
    if wrong:
        raise TopicMismatch("; ".join(wrong) + " (topics keyed alike must be co-partitioned; recreate them)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    settings = load_settings()
    created = ensure_topics(args.bootstrap or settings.kafka, topic_specs(settings.topics, args.partitions),
                            options=kafka_python_options(settings))
    print(f"kafka: topics ready ({len(created)} created)")


if __name__ == "__main__":
    main()
