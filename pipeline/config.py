"""Settings of a mimamori process, read once from the environment (CONTRACT.md, "Configuration")."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from datetime import time, timedelta
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.redact import redact_url


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`500ms`, `30s`, `5m`, `1h`, `24h` -> timedelta; anything else raises ValueError."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"expected a duration such as 500ms, 30s, 5m, 1h, 24h, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        if seconds >= _UNIT_SECONDS[unit] and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{int(seconds // _UNIT_SECONDS[unit])}{unit}"
    return f"{int(seconds * 1000)}ms"


def _parse_daily_time(text: str) -> time:
    match = re.match(r"^([01]\d|2[0-3]):([0-5]\d)$", text.strip())
    if not match:
        raise ValueError(f"expected a local time HH:MM, got {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class ReportAt:
    """When the monthly report goes: a day of the month (1-28, so every month has it) and a local time."""

    day: int = 1
    at: time = time(8, 0)

    def __str__(self) -> str:
        return f"{self.day} {self.at:%H:%M}"


def _parse_report_at(text: str) -> ReportAt:
    match = re.match(r"^(\d{1,2}) +(\S+)$", text.strip())
    if not match or not 1 <= int(match.group(1)) <= 28:
        raise ValueError(f"expected a day of the month 1-28 and a local time HH:MM, such as '1 08:00', got {text!r}")
    return ReportAt(int(match.group(1)), _parse_daily_time(match.group(2)))


def _parse_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 100_000:
        raise ValueError(f"expected mails per second, a number above 0, got {text!r}")
    return value


def _parse_zone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"expected an IANA time zone such as Asia/Tokyo, got {text!r}") from exc


def _parse_port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"expected a TCP port 1-65535, got {text!r}")
    return int(text)


def _parse_url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not any(text.startswith(s + "://") for s in schemes):
            raise ValueError(f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}, "
                             f"got {redact_url(text)!r}")
        return text
    return parse


def url_flag(url: str, name: str) -> bool:
    """A yes/no query parameter of a URL (`?starttls=1`, `?insecure=true`)."""
    return parse_qs(urlsplit(url).query).get(name, ["0"])[-1].lower() in ("1", "true", "yes")


SMTP_CLEAR_TEXT_LOGIN = ("a password is sent only over TLS: use smtps:// or ?starttls=1 "
                         "(?insecure=1 allows it in clear, for a relay on the same host)")


def smtp_clear_text_login(url: str) -> bool:
    """True when an SMTP URL would send its password without TLS: a user on `smtp://` with neither
    `?starttls=1` nor `?insecure=1` (the contract allows a clear-text login only when asked for)."""
    parts = urlsplit(url)
    return (parts.scheme == "smtp" and bool(parts.username or parts.password)
            and not url_flag(url, "starttls") and not url_flag(url, "insecure"))


def _parse_smtp(text: str) -> str:
    url = _parse_url(("smtp", "smtps", "maildir"))(text)
    if smtp_clear_text_login(url):
        raise ValueError(f"{redact_url(url)}: {SMTP_CLEAR_TEXT_LOGIN}")
    return url


def _parse_servers(text: str) -> str:
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not re.match(r"^[\w.\-\[\]:]+:\d+$", p) for p in parts):
        raise ValueError(f"expected HOST:PORT[,HOST:PORT...], got {text!r}")
    return ",".join(parts)


KAFKA_SECURITY_PROTOCOLS = ("plaintext", "ssl", "sasl_ssl")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


def _parse_kafka_security(text: str) -> str:
    value = text.strip().lower()
    if value not in KAFKA_SECURITY_PROTOCOLS:
        raise ValueError(f"expected {', '.join(KAFKA_SECURITY_PROTOCOLS)}, got {text!r}")
    return value


def _parse_sasl_mechanism(text: str) -> str:
    value = text.strip().upper()
    if value not in KAFKA_SASL_MECHANISMS:
        raise ValueError(f"expected {', '.join(KAFKA_SASL_MECHANISMS)}, got {text!r}")
    return value


def _parse_username(text: str) -> str:
    if not text or text != text.strip() or any(ord(c) < 32 for c in text):
        raise ValueError("expected a user name without spaces around it or control characters")
    return text


def _parse_password(text: str) -> str:
    if not text:
        raise ValueError("expected a password, got an empty value")
    return text  # never echoed: the message names the variable only


def _parse_ca_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"expected a readable PEM file of CA certificates, {text!r} is not a file")
    return path


def _parse_log_format(text: str) -> str:
    if text.strip() not in ("text", "json"):
        raise ValueError(f"expected text or json, got {text!r}")
    return text.strip()


def _parse_optional_path(text: str) -> Path | None:
    return Path(text) if text else None


_SIZE = re.compile(r"^(\d+)(|B|KiB|MiB)$")
_SIZE_UNITS = {"": 1, "B": 1, "KiB": 1024, "MiB": 1024 * 1024}


def parse_size(text: str) -> int:
    """`4194304`, `512KiB`, `4MiB` -> bytes (at least 64 KiB, a record's own limit)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"expected a size such as 4MiB, 512KiB or a number of bytes, got {text!r}")
    value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if not 64 * 1024 <= value <= 1024 * 1024 * 1024:
        raise ValueError(f"expected a size from 64KiB to 1024MiB, got {text!r}")
    return value


def _parse_secret(text: str) -> str:
    if len(text) < 16:
        raise ValueError("expected a secret of at least 16 characters (it is not shown)")
    return text


def _parse_positive_duration(text: str) -> timedelta:
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError(f"expected a duration above 0, got {text!r}")
    return value


@dataclass(frozen=True)
class Topics:
    """Topic names: the contract's defaults, and the worker's own re-keyed topics."""

    events: str = "utm.events"
    heartbeats: str = "utm.heartbeats"
    tenants: str = "registry.tenants"
    utms: str = "registry.utms"
    rejected: str = "utm.events.rejected"
    alerts: str = "alerts"
    verdicts: str = "verdicts"
    outbox: str = "mail.outbox"
    mail_requests: str = "mimamori-mail-requests"
    verdicts_by_utm: str = "mimamori-verdicts-by-utm"
    failed_mails: str = "mimamori-mail-failed"
    notices: str = "service.notices"
    alert_routes: str = "mimamori-alert-routes"
    detect_state: str = "mimamori-detect-state"
    detect_seen: str = "mimamori-detect-seen"
    mail_state: str = "mimamori-mail-state"
    mail_ledger: str = "mimamori-mail-ledger"
    store_rows: str = "mimamori-store-rows"
    fleet: str = "mimamori-fleet"
    credentials: str = "mimamori-utm-credentials"
    """Compacted, key utm_id: each UTM's credential version, rotation overlap and revocation (never a token)."""
    store_state: str = "mimamori-store-state"
    notice_state: str = "mimamori-notice-state"
    deployment: str = "mimamori"
    """Not a topic: the deployment's name, prefixed like the topics; consumer groups derive from it."""

    def group(self, name: str) -> str:
        """The consumer group of one processor: one prefix isolates topics, groups and state alike."""
        return f"{self.deployment}-{name}"

    def prefixed(self, prefix: str) -> "Topics":
        """Every name with a prefix, for several deployments (or test runs) on one cluster."""
        return Topics(**{f.name: prefix + getattr(self, f.name) for f in fields(self)})


def _parse_prefix(text: str) -> Topics:
    if not re.match(r"^[A-Za-z0-9._-]*$", text):
        raise ValueError(f"expected letters, digits, '.', '_' or '-', got {text!r}")
    return Topics().prefixed(text)


@dataclass(frozen=True)
class Settings:
    kafka: str = "localhost:9092"
    clickhouse: str = "chdb://./var/clickhouse"
    smtp: str = "maildir://./var/mail"
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Tokyo"))
    dedup_window: timedelta = timedelta(hours=24)
    correlation_window: timedelta = timedelta(hours=1)
    mail_group_wait: timedelta = timedelta(seconds=30)
    mail_group_interval: timedelta = timedelta(minutes=5)
    mail_urgent_wait: timedelta = timedelta(seconds=10)
    heartbeat_timeout: timedelta = timedelta(minutes=10)
    heartbeat_daily_at: time = time(9, 0)
    web_port: int = 6066
    log_format: str = "text"
    report_at: ReportAt = field(default_factory=ReportAt)
    report_mail_rate: float = 5.0
    """Monthly reports put into the outbox per second at most, so the broadcast does not flood the relay."""
    rules_file: Path | None = None
    notice_mail_rate: float = 20.0
    max_poll_interval: timedelta = timedelta(minutes=5)
    """Kafka's max.poll.interval.ms of the worker's processors; a partition's step that runs longer
    than half of it is cut short and the partition read again (no handler holds the poll loop)."""
    """Notice mails put into the outbox per second at most, so a broadcast does not flood the relay."""
    mail_give_up: timedelta = timedelta(days=3)
    """How long a mail that keeps failing temporarily is retried before it is dead-lettered."""
    topics: Topics = field(default_factory=Topics)
    gateway_port: int = 8443
    gateway_max_body: int = 4 * 1024 * 1024
    """The most a request body may hold (after gzip decoding); a larger request is answered 413 whole."""
    gateway_key: str | None = field(default=None, repr=False)
    """The deployment key UTM tokens are derived from (`mimamori utm credential`); never printed."""
    gateway_tls_cert: Path | None = None
    gateway_tls_key: Path | None = None
    gateway_ack_timeout: timedelta = timedelta(seconds=10)
    """How long a request waits for the broker's acknowledgement before it is answered 503."""
    kafka_security: str = "plaintext"
    """`plaintext`, `ssl` or `sasl_ssl`: how every Kafka client of the process connects
    (pipeline.io.kafka_security turns these into client options)."""
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: str = field(default="", repr=False)
    kafka_ca_file: Path | None = None
    portal_port: int = 8080
    portal_key: str | None = field(default=None, repr=False)
    """The portal's secret: signs its session cookies and encrypts the TOTP secrets; never printed."""

    def with_overrides(self, **changes: object) -> "Settings":
        return replace(self, **changes)


# variable -> (Settings field, parser). Order is the order of CONTRACT.md.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "MIMAMORI_KAFKA": ("kafka", _parse_servers),
    "MIMAMORI_KAFKA_SECURITY": ("kafka_security", _parse_kafka_security),
    "MIMAMORI_KAFKA_SASL_MECHANISM": ("kafka_sasl_mechanism", _parse_sasl_mechanism),
    "MIMAMORI_KAFKA_USERNAME": ("kafka_username", _parse_username),
    "MIMAMORI_KAFKA_PASSWORD": ("kafka_password", _parse_password),
    "MIMAMORI_KAFKA_CA_FILE": ("kafka_ca_file", _parse_ca_file),
    "MIMAMORI_CLICKHOUSE": ("clickhouse", _parse_url(("chdb", "clickhouse"))),
    "MIMAMORI_SMTP": ("smtp", _parse_smtp),
    "MIMAMORI_TZ": ("tz", _parse_zone),
    "MIMAMORI_DEDUP_WINDOW": ("dedup_window", parse_duration),
    "MIMAMORI_CORRELATION_WINDOW": ("correlation_window", parse_duration),
    "MIMAMORI_MAIL_GROUP_WAIT": ("mail_group_wait", parse_duration),
    "MIMAMORI_MAIL_GROUP_INTERVAL": ("mail_group_interval", parse_duration),
    "MIMAMORI_MAIL_URGENT_WAIT": ("mail_urgent_wait", parse_duration),
    "MIMAMORI_HEARTBEAT_TIMEOUT": ("heartbeat_timeout", parse_duration),
    "MIMAMORI_HEARTBEAT_DAILY_AT": ("heartbeat_daily_at", _parse_daily_time),
    "MIMAMORI_WEB_PORT": ("web_port", _parse_port),
    "MIMAMORI_REPORT_AT": ("report_at", _parse_report_at),
    "MIMAMORI_REPORT_MAIL_RATE": ("report_mail_rate", _parse_rate),
    "MIMAMORI_LOG_FORMAT": ("log_format", _parse_log_format),
    "MIMAMORI_RULES": ("rules_file", _parse_optional_path),
    "MIMAMORI_NOTICE_MAIL_RATE": ("notice_mail_rate", _parse_rate),
    "MIMAMORI_MAX_POLL_INTERVAL": ("max_poll_interval", parse_duration),
    "MIMAMORI_MAIL_GIVE_UP": ("mail_give_up", parse_duration),
    "MIMAMORI_TOPIC_PREFIX": ("topics", _parse_prefix),
    "MIMAMORI_GATEWAY_PORT": ("gateway_port", _parse_port),
    "MIMAMORI_GATEWAY_MAX_BODY": ("gateway_max_body", parse_size),
    "MIMAMORI_GATEWAY_KEY": ("gateway_key", _parse_secret),
    "MIMAMORI_GATEWAY_TLS_CERT": ("gateway_tls_cert", _parse_optional_path),
    "MIMAMORI_GATEWAY_TLS_KEY": ("gateway_tls_key", _parse_optional_path),
    "MIMAMORI_GATEWAY_ACK_TIMEOUT": ("gateway_ack_timeout", _parse_positive_duration),
    "MIMAMORI_PORTAL_PORT": ("portal_port", _parse_port),
    "MIMAMORI_PORTAL_KEY": ("portal_key", _parse_secret),
}


EMPTY_IS_UNSET = frozenset({"MIMAMORI_KAFKA_SASL_MECHANISM", "MIMAMORI_KAFKA_USERNAME", "MIMAMORI_KAFKA_PASSWORD",
                            "MIMAMORI_KAFKA_CA_FILE"})
"""Optional settings a chart or a compose file may set empty: empty means not set."""


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment; the first bad value raises ConfigError naming it."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for variable, (name, parse) in ENVIRONMENT.items():
        raw = environ.get(variable)
        if raw is None or (raw == "" and variable in EMPTY_IS_UNSET):
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{variable}: {exc}") from None
    _check_kafka_security(values)
    return Settings(**values)  # type: ignore[arg-type]


def _check_kafka_security(values: Mapping[str, object]) -> None:
    """SASL needs a user and a password, and credentials make sense only with SASL: a password
    set while the protocol says `plaintext` or `ssl` would silently not be used."""
    security = values.get("kafka_security", "plaintext")
    sasl = {"MIMAMORI_KAFKA_SASL_MECHANISM": "kafka_sasl_mechanism", "MIMAMORI_KAFKA_USERNAME": "kafka_username",
            "MIMAMORI_KAFKA_PASSWORD": "kafka_password"}
    if security == "sasl_ssl":
        for variable, name in sasl.items():
            if name != "kafka_sasl_mechanism" and name not in values:
                raise ConfigError(f"{variable}: required when MIMAMORI_KAFKA_SECURITY is sasl_ssl")
        return
    for variable, name in sasl.items():
        if name in values:
            raise ConfigError(f"{variable}: used only with MIMAMORI_KAFKA_SECURITY=sasl_ssl, which is {security} here")
    if security == "plaintext" and "kafka_ca_file" in values:
        raise ConfigError("MIMAMORI_KAFKA_CA_FILE: used only with MIMAMORI_KAFKA_SECURITY ssl or sasl_ssl, "
                          "which is plaintext here")
