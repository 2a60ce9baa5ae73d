"""How every Kafka client of mimamori connects: TLS, SASL and the CA file of the contract's
`MIMAMORI_KAFKA_SECURITY` settings, as options for the two client libraries the project uses.

Every place that builds a Kafka client passes `**aiokafka_options(settings)` (aiokafka: the
worker's processors, publisher and follower, the gateway) or `**kafka_python_options(settings)`
(kafka-python: the CLI's producers and topic readers, the topic admin). The password lives only in these options: it is never logged (the settings' repr
leaves it out) and never part of a URL.
"""
from __future__ import annotations

import logging
import re
import ssl
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, TypeVar

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


class KafkaRefused(RuntimeError):
    """The brokers refused this process: its login (SASL) or its trust in their certificate (TLS)."""


_REFUSALS = (
    (re.compile(r"SaslAuthenticationFailed|Authentication failed", re.I),
     "Kafka refused the login of {user} ({mechanism}) at {servers}: check MIMAMORI_KAFKA_USERNAME, "
     "MIMAMORI_KAFKA_PASSWORD and MIMAMORI_KAFKA_SASL_MECHANISM"),
    (re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", re.I),
     "the Kafka brokers' certificate at {servers} is not trusted (or not for that host name): check "
     "MIMAMORI_KAFKA_CA_FILE and the addresses in MIMAMORI_KAFKA"),
    (re.compile(r"UnsupportedSaslMechanism|IllegalSaslState", re.I),
     "the Kafka brokers at {servers} do not offer {mechanism}: check MIMAMORI_KAFKA_SASL_MECHANISM"),
)


class RefusalWatch(logging.Handler):
    """The Kafka client libraries log a refused login or an untrusted certificate and keep retrying
    until a timeout that then only says "unable to bootstrap". This handler, on their loggers,
    notes the first such refusal so that a command or the worker's start can stop at once and say
    what to fix (no password in it: the libraries' messages carry none)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.refusal: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.refusal is not None:
            return
        text = record.getMessage()
        for index, (pattern, _) in enumerate(_REFUSALS):
            if pattern.search(text):
                self.refusal = index
                return


_watch = RefusalWatch()


def watch_refusals() -> None:
    """Put the watch on the Kafka clients' loggers (once per process)."""
    for name in ("kafka", "aiokafka"):
        logger = logging.getLogger(name)
        if _watch not in logger.handlers:
            logger.addHandler(_watch)


def refused() -> bool:
    """Whether the brokers refused this process's login or it refused their certificate (watch_refusals)."""
    return _watch.refusal is not None


T = TypeVar("T")


def unless_refused(build: Callable[[], T], *, every_s: float = 0.05) -> T:
    """A kafka-python client, built by `build`, or KafkaRefused as soon as the brokers refuse this
    process's login or it refuses their certificate (watch_refusals), whichever comes first.

    kafka-python's constructors bootstrap (connect, read the cluster's metadata) and retry a refused
    login or an untrusted certificate like any broken connection until `bootstrap_timeout_ms`
    (30 s), then say only "Unable to bootstrap". A refusal does not pass by retrying: the command
    (or the worker's start) stops at once and says what to fix (cli prints `refusal`). The client
    is built in a daemon thread; on a refusal it is left there to its own timeout, unused (the
    process is about to end: a refusal ends its use of Kafka). Without the watch on (a library
    caller), this is `build()` with its own timeout."""
    done = threading.Event()
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, build()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="kafka-open", daemon=True).start()
    while not done.wait(every_s):
        if refused():
            raise KafkaRefused("the Kafka brokers refused this process")
    built, value = outcome[0]
    if not built:
        raise value
    return value  # type: ignore[no-any-return]


def refusal(settings: Settings) -> KafkaRefused | None:
    """What the brokers refused so far in this process, as a clear error, or None."""
    if _watch.refusal is None:
        return None
    template = _REFUSALS[_watch.refusal][1]
    return KafkaRefused(template.format(user=settings.kafka_username or "(none)",
                                        mechanism=settings.kafka_sasl_mechanism, servers=settings.kafka))
