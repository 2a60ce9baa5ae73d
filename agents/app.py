"""The Faust application factory. No module-level app: each worker or test builds its own,
on its own event loop, from the settings it was given."""
from __future__ import annotations

import faust

from pipeline.config import Settings
from pipeline.kafka_security import ssl_context


def make_app(settings: Settings, app_id: str = "mimamori", *, web: bool = False) -> faust.App:
    """A bare Faust app bound to the configured broker; `agents.worker` adds the agents."""
    return faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in settings.kafka.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        topic_partitions=6,
        topic_allow_declare=True,
        web_enabled=web,
        web_port=settings.web_port,
        web_bind="0.0.0.0",
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,
        broker_max_poll_records=5000,
        stream_buffer_maxsize=16384,
        consumer_max_fetch_size=16 * 1024 * 1024,
        broker_heartbeat_interval=3.0,
        producer_acks=-1,
        timezone=settings.tz,
    )


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's form of MIMAMORI_KAFKA_SECURITY (pipeline.kafka_security holds the TLS context)."""
    context = ssl_context(settings)
    if context is None:
        return None
    if settings.kafka_security == "ssl":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(username=settings.kafka_username, password=settings.kafka_password,
                                 ssl_context=context, mechanism=settings.kafka_sasl_mechanism)
