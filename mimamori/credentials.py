"""Reading and changing UTM credential states on their compacted topic (for `mimamori utm credential`,
the simulator and the demo). The token is derived, never stored or published."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

import orjson

from gateway.credentials import CredentialState, derive_token, issued, revoked, rotated
from pipeline.config import Settings
from pipeline.kafka_security import kafka_python_options


def read_credentials(bootstrap: str, topic: str, timeout_s: float = 30.0,
                     options: Mapping[str, Any] | None = None) -> dict[str, CredentialState]:
    """Everything the credential topic holds now (no consumer group)."""
    from kafka import KafkaConsumer, TopicPartition

    states: dict[str, CredentialState] = {}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                             client_id="mimamori-credentials", **(options or {}))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return states
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took more than {timeout_s:.0f}s")
            for messages in consumer.poll(timeout_ms=500, max_records=5000).values():
                for message in messages:
                    if message.key is None:
                        continue
                    if message.value is None:
                        states.pop(message.key.decode(), None)
                        continue
                    try:
                        states[message.key.decode()] = CredentialState.from_record(orjson.loads(message.value))
                    except (ValueError, KeyError, TypeError):
                        continue
        return states
    finally:
        consumer.close()


def publish_states(bootstrap: str, topic: str, states: Iterable[CredentialState],
                   options: Mapping[str, Any] | None = None) -> None:
    from mimamori.producer import KafkaSender, open_kafka_producer

    sender = KafkaSender(open_kafka_producer(bootstrap, options))
    try:
        for state in states:
            sender(topic, state.utm_id.encode(), orjson.dumps(state.to_record()))
    finally:
        sender.close()
    if sender.failures:
        raise RuntimeError(f"publishing a credential state failed: {sender.failures[0]}")


def change_credential(bootstrap: str, settings: Settings, utm_id: str, action: str, now: datetime, *,
                      overlap: timedelta = timedelta(hours=24)) -> tuple[str | None, CredentialState]:
    """`issue`, `rotate` or `revoke`: the token to hand to the UTM (None after a revocation) and its state."""
    from pipeline.kafka_admin import ensure_topics, topic_specs

    assert settings.gateway_key
    topic = settings.topics.credentials
    options = kafka_python_options(settings)
    ensure_topics(bootstrap, [s for s in topic_specs(settings.topics) if s.name == topic], options=options)
    current = read_credentials(bootstrap, topic, options=options).get(utm_id)
    if action == "revoke":
        state = revoked(current, utm_id, now)
    elif action == "rotate":
        state = rotated(current, utm_id, now, overlap)
    else:
        state = issued(current, utm_id, now)
    if state is not current:
        publish_states(bootstrap, topic, [state], options)
    return (None if state.revoked else derive_token(settings.gateway_key, utm_id, state.version)), state


def tokens_for(settings: Settings, utm_ids: Iterable[str], bootstrap: str | None = None) -> dict[str, str]:
    """The current token of each UTM (issuing any that has none, or was revoked): what an operator
    hands to each appliance; the simulator and the demo upload with them."""
    assert settings.gateway_key
    bootstrap = bootstrap or settings.kafka
    topic = settings.topics.credentials
    options = kafka_python_options(settings)
    states = read_credentials(bootstrap, topic, options=options)
    now = datetime.now().astimezone()
    changed, tokens = [], {}
    for utm_id in utm_ids:
        state = issued(states.get(utm_id), utm_id, now)
        if state is not states.get(utm_id):
            changed.append(state)
        tokens[utm_id] = derive_token(settings.gateway_key, utm_id, state.version)
    if changed:
        publish_states(bootstrap, topic, changed, options)
    return tokens
