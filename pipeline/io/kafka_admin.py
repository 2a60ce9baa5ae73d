"""Creates the contract's topics (idempotent): `python -m pipeline.io.kafka_admin --bootstrap HOST:PORT`."""
from __future__ import annotations

import argparse
from datetime import timedelta
import time
from dataclasses import dataclass
from typing import Any, Mapping

from aiokafka.partitioner import murmur2

from pipeline.config import Topics, load_settings
from pipeline.io.kafka_security import kafka_python_options, refused, unless_refused


MIB = 1024 * 1024

PRODUCER_MAX_REQUEST_BYTES = 8 * MIB
"""The worker's producer (agents.runtime.processor.Publisher, max_request_size) sends nothing larger: no
topic needs a larger limit than this."""

MESSAGE_BYTES = 1 * MIB
"""Kafka's own default, set explicitly so that a cluster with another default behaves the same.
Every record the worker writes to a topic with this limit is bounded far below it:
- inputs (`utm.events`, `utm.heartbeats`): the contract refuses records above 64 KiB with a
  rejection; the topic takes up to 1 MiB so that such a record (an 800 kB one, say) reaches the
  worker and is rejected with its reason, rather than failing at a third-party producer without
  trace (`produce` and the gateway refuse above 64 KiB before sending);
- rejections: at most 64 KiB of the original, escaped at most ~400 KiB, and a bounded detail
  (pipeline.bounds);
- alert versions, mail requests, live and finished alerts in the detect state: one alert with
  bounded evidence, categories and signature ids, ~40 KB at worst (pipeline.correlate); a UTM's
  state head, its life record, the monitor's record: under 1 KB;
- the dedup log: each batch's pairs cut into messages of at most 512 KiB (pipeline.bounds);
- registry records, notices, routed verdicts, alert routes,
  the store's insert intents, the fleet book, credentials: small records written by the project's own tools."""

VERDICT_BYTES = 256 * 1024
"""`verdicts`: an analyst's note is a few lines. A verdict travels on inside a mail request with
its alert (~40 KB at worst), which must stay below the requests' 1 MiB; so a verdict may be 256
KiB (its routed copy on `mimamori-verdicts-by-utm` is the same bytes)."""

LARGE_MESSAGE_BYTES = PRODUCER_MAX_REQUEST_BYTES
"""Topics whose records may legitimately be large:
- `mimamori-store-rows`: a batch's rows, cut into messages of at most 4 MiB
  (pipeline.bounds, agents.processors.store.row_messages), plus one row at most (an event row is at most ~4 times its
  64 KiB record: its unknown fields are escaped twice);
- `mail.outbox` and `mimamori-mail-failed`: one rendered mail (at most 100 alerts, each with
  bounded evidence, text and HTML parts: ~650 KB at worst, measured);
- `mimamori-mail-ledger`: a mail's ledger entry keeps the mail itself until it is finished;
- `mimamori-mail-state`: one record per pending alert (~2 KB), and a tenant's head, which lists
  the grades mailed in the last 3 days (~60 bytes an alert: 8 MiB is ~140,000 alerts mailed to one
  tenant in 3 days).
"""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None
    max_message_bytes: int = MESSAGE_BYTES
    """Set on every topic (MESSAGE_BYTES unless said): what the project may write there."""


PARTITIONS = 6
"""Partitions of every topic the worker's members share (inputs keyed by UTM, its own topics keyed
by UTM or tenant): at most this many workers have work. The one place this number is written."""


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """Where a keyed record lives: the Java client's default partitioner (murmur2), which every
    producer of the inputs uses (the gateway, the CLI, aiokafka's and kafka-python's defaults)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def topic_specs(topics: Topics, partitions: int = PARTITIONS, *, dedup_window: timedelta = timedelta(hours=24)) -> list[TopicSpec]:
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
        TopicSpec(topics.verdicts, partitions, max_message_bytes=VERDICT_BYTES),
        TopicSpec(topics.outbox, partitions, max_message_bytes=LARGE_MESSAGE_BYTES),
        TopicSpec(topics.mail_requests, partitions),
        TopicSpec(topics.verdicts_by_utm, partitions),
        TopicSpec(topics.failed_mails, partitions, max_message_bytes=LARGE_MESSAGE_BYTES),
        TopicSpec(topics.notices, 1, compacted=True),
        TopicSpec(topics.alert_routes, partitions, compacted=True),
        TopicSpec(topics.detect_state, partitions, compacted=True),
        TopicSpec(topics.detect_seen, partitions, retention_ms=seen_retention_ms(dedup_window)),
        TopicSpec(topics.mail_state, partitions, compacted=True, max_message_bytes=LARGE_MESSAGE_BYTES),
        TopicSpec(topics.mail_ledger, partitions, compacted=True, max_message_bytes=LARGE_MESSAGE_BYTES),
        TopicSpec(topics.store_rows, partitions, retention_ms=STORE_ROWS_RETENTION_MS,
                  max_message_bytes=LARGE_MESSAGE_BYTES),
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
    configs["max.message.bytes"] = str(spec.max_message_bytes)
    return configs


def ensure_topics(bootstrap: str, specs: list[TopicSpec], timeout_s: float = 60.0, *,
                  options: Mapping[str, Any] | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the names created. `options`: the
    connection's security (pipeline.io.kafka_security.kafka_python_options)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = unless_refused(lambda: KafkaAdminClient(bootstrap_servers=bootstrap, client_id="mimamori-admin",
                                                            **(options or {})))
            break
        except KafkaError:
            if refused() or time.monotonic() > deadline:  # a refused login does not pass by retrying
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        _check_partitions(admin, [s for s in specs if s.name in existing])
        _set_message_limits(admin, [s for s in specs if s.name in existing])
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


def _set_message_limits(admin: Any, specs: list[TopicSpec]) -> None:
    """Topics created before their limit was set (or changed by hand) get it: only that key is
    set (incremental), the topic's other settings stay."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not specs:
        return
    wanted = {s.name: str(s.max_message_bytes) for s in specs}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=["max.message.bytes"]) for name in wanted]
    current = topic_configs(admin.describe_configs(resources, config_filter="all"))
    changes = [ConfigResource(ConfigResourceType.TOPIC, name, configs={"max.message.bytes": limit})
               for name, limit in wanted.items() if current.get(name, {}).get("max.message.bytes") != limit]
    if changes:
        admin.alter_configs(changes)


def topic_configs(described: Any) -> dict[str, dict[str, str]]:
    """{topic: {key: value}} from kafka-python's describe_configs answer
    ({"topic": {name: {key: {"value": ...}}}})."""
    return {name: {key: entry.get("value") for key, entry in entries.items()}
            for name, entries in (described.get("topic") or {}).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    args = parser.parse_args()
    settings = load_settings()
    created = ensure_topics(args.bootstrap or settings.kafka, topic_specs(settings.topics, args.partitions),
                            options=kafka_python_options(settings))
    print(f"kafka: topics ready ({len(created)} created)")


if __name__ == "__main__":
    main()
