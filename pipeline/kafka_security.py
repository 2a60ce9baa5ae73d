"""How every Kafka client of mimamori connects: TLS, SASL and the CA file of the contract's
`MIMAMORI_KAFKA_SECURITY` settings, as options for the two client libraries the project uses.

Every place that builds a Kafka client passes `**aiokafka_options(settings)` (aiokafka, the
worker's runtime) or `**kafka_python_options(settings)` (kafka-python: the CLI, the admin, the
followers). The password lives only in these options: it is never logged (the settings' repr
leaves it out) and never part of a URL.
"""
from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, Settings


@lru_cache(maxsize=8)
def _context(ca_file: Path | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"MIMAMORI_KAFKA_CA_FILE: {ca_file} holds no usable CA certificate ({exc})") from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the brokers' connections (server certificate checked against the CA file,
    or the system's CAs without one; host name checked), or None for `plaintext`."""
    if settings.kafka_security == "plaintext":
        return None
    return _context(settings.kafka_ca_file)


def _common(settings: Settings) -> dict[str, Any]:
    context = ssl_context(settings)
    if context is None:
        return {"security_protocol": "PLAINTEXT"}
    options: dict[str, Any] = {"security_protocol": settings.kafka_security.upper(), "ssl_context": context}
    if settings.kafka_security == "sasl_ssl":
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_username,
                       sasl_plain_password=settings.kafka_password)
    return options


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
    return _common(settings)


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's KafkaProducer / KafkaConsumer / KafkaAdminClient."""
    return _common(settings)


def describe(settings: Settings) -> str:
    """One line for logs and errors, without the password: `sasl_ssl SCRAM-SHA-512 as USER`."""
    if settings.kafka_security == "sasl_ssl":
        return f"sasl_ssl {settings.kafka_sasl_mechanism} as {settings.kafka_username}"
    return settings.kafka_security
