"""No password printed: pipeline.redact masks URL passwords and remembered secrets in any text, the
log formatters and the command line's streams go through it, the errors that name a URL use it,
and an SMTP URL that would log in without TLS is refused at start."""
from __future__ import annotations

import io
import logging

import orjson
import pytest

from pipeline import redact as redaction
from pipeline.config import ConfigError, load_settings
from pipeline.logs import JsonFormatter, TextFormatter
from pipeline.io.smtp import SmtpTransport, open_transport
from pipeline.redact import RedactingStream, redact, redact_url, remember_secrets, url_secrets
from pipeline.io.store.backends import StoreError, open_store


@pytest.fixture(autouse=True)
def no_remembered_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_secrets", set())


@pytest.mark.parametrize("text, shown", [
    ("clickhouse://mimamori:Hunter2-pw@db:9000/mimamori", "clickhouse://mimamori:***@db:9000/mimamori"),
    ("store unavailable: clickhouse://u:p%40ss@h:9000/db: Connection refused",
     "store unavailable: clickhouse://u:***@h:9000/db: Connection refused"),
    ("smtp://relay-user:s3cret%3Apw@relay:587?starttls=1", "smtp://relay-user:***@relay:587?starttls=1"),
    ("smtps://:only-a-password@relay:465", "smtps://:***@relay:465"),
    ("'smtp://a:b@h:25' and 'clickhouse://c:d@e:9000/f'", "'smtp://a:***@h:25' and 'clickhouse://c:***@e:9000/f'"),
    ("clickhouse://db:9000/x?user=u&password=Pw0rd&secure=1", "clickhouse://db:9000/x?user=u&password=***&secure=1"),
    ("kafka://localhost:9092 and http://host:8080/path", "kafka://localhost:9092 and http://host:8080/path"),
    ("chdb:///var/lib/mimamori/clickhouse", "chdb:///var/lib/mimamori/clickhouse"),
    ("noc@tenant.example wrote", "noc@tenant.example wrote"),
])
def test_a_url_shows_its_user_and_never_its_password(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_remembered_secrets_are_masked_anywhere_short_ones_only_in_urls() -> None:
    remember_secrets(["Kafka-Pa55word", None, "", "abc", "p%40ssw0rd-x"])
    assert redact("SASL login Kafka-Pa55word refused") == "SASL login *** refused"
    assert redact("decoded p@ssw0rd-x and encoded p%40ssw0rd-x") == "decoded *** and encoded ***"
    assert redact("abc stays") == "abc stays"
    assert url_secrets("smtp://u:p%3Aw@h:25?starttls=1") == ["p%3Aw"]
    assert url_secrets("clickhouse://h:9000/d?password=x1") == ["x1"]


def test_log_lines_text_and_json_are_redacted() -> None:
    remember_secrets(["Kafka-Pa55word"])
    try:
        raise ConnectionError("clickhouse://u:Store-Pa55@h:9000/db unreachable; Kafka-Pa55word")
    except ConnectionError:
        record = logging.LogRecord("mimamori", logging.ERROR, __file__, 1, "store %s failed", ("clickhouse://u:Store-Pa55@h/db",),
                                   __import__("sys").exc_info())
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "Store-Pa55" not in line and "Kafka-Pa55word" not in line and "u:***@h" in line
    assert "exception" in orjson.loads(JsonFormatter().format(record))


def test_the_command_lines_streams_redact_what_passes_through() -> None:
    remember_secrets(["Kafka-Pa55word"])
    target = io.StringIO()
    stream = RedactingStream(target)
    print("store clickhouse://u:Store-Pa55@h:9000/db and Kafka-Pa55word", file=stream)  # type: ignore[arg-type]
    assert target.getvalue() == "store clickhouse://u:***@h:9000/db and ***\n"
    assert stream.getvalue() == target.getvalue()  # anything else is the wrapped stream's


def test_store_errors_name_the_url_without_its_password() -> None:
    with pytest.raises(StoreError) as unknown:
        open_store("clickhous://u:Store-Pa55@h:9000/db")
    assert "Store-Pa55" not in str(unknown.value) and "u:***@h" in str(unknown.value)


def test_a_bad_url_setting_is_refused_without_echoing_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"MIMAMORI_CLICKHOUSE": "postgres://u:Store-Pa55@h/db"})
    assert str(caught.value).startswith("MIMAMORI_CLICKHOUSE: ") and "Store-Pa55" not in str(caught.value)
    assert redact_url("postgres://u:Store-Pa55@h/db") == "postgres://u:***@h/db"


@pytest.mark.parametrize("url", [
    "smtp://mimamori:Mail-Pa55@relay:587",
    "smtp://mimamori@relay:25",
    "smtp://mimamori:Mail-Pa55@relay:587?starttls=0",
])
def test_an_smtp_login_without_tls_is_refused_at_start(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"MIMAMORI_SMTP": url})
    message = str(caught.value)
    assert message.startswith("MIMAMORI_SMTP: ") and "only over TLS" in message and "insecure=1" in message
    assert "Mail-Pa55" not in message
    with pytest.raises(ValueError, match="only over TLS"):
        open_transport(url)
    with pytest.raises(ValueError, match="only over TLS"):
        SmtpTransport("relay", 25, user="mimamori", password="Mail-Pa55")


@pytest.mark.parametrize("url", [
    "smtp://mimamori:Mail-Pa55@relay:587?starttls=1",
    "smtps://mimamori:Mail-Pa55@relay:465",
    "smtp://mimamori:Mail-Pa55@127.0.0.1:25?insecure=1",
    "smtp://relay:25",
    "maildir:///var/mail",
])
def test_an_smtp_login_over_tls_or_asked_in_clear_is_accepted(url: str) -> None:
    assert load_settings({"MIMAMORI_SMTP": url}).smtp == url
    open_transport(url).close()
