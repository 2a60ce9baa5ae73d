"""Reading and changing UTM credential states on their compacted topic (for `mimamori utm credential`,
the simulator and the demo). The token is derived, never stored or published."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

import orjson

from gateway.credentials import CredentialState, derive_token, issued, revoked, rotated
from pipeline.config import Settings
from pipeline.io.kafka_security import kafka_python_options


def read_credentials(bootstrap: str, topic: str, timeout_s: float = 30.0,
                     options: Mapping[str, Any] | None = None) -> dict[str, CredentialState]:
    """Everything the credential topic holds now (no consumer group)."""
    from mimamori.notice_topic import read_compacted

    states: dict[str, CredentialState] = {}

    def apply(key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            states.pop(key.decode(), None)
            return
        try:
            states[key.decode()] = CredentialState.from_record(orjson.loads(value))
        except (ValueError, KeyError, TypeError):
            pass

    read_compacted(bootstrap, topic, apply, timeout_s, options, client_id="mimamori-credentials")
    return states


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
    from pipeline.io.kafka_admin import ensure_topics, topic_specs

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
