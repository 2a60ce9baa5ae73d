from datetime import time, timedelta

import pytest

from pipeline.config import ConfigError, Settings, format_duration, load_settings, parse_duration


@pytest.mark.parametrize("text,expected", [
    ("500ms", timedelta(milliseconds=500)), ("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)),
    ("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)),
])
def test_durations_of_the_contract(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["abc", "", "5", "-5m", "1.5h", "5 minutes", "m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults_are_the_contract() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.kafka == "localhost:9092"
    assert settings.clickhouse == "chdb://./var/clickhouse"
    assert settings.smtp == "maildir://./var/mail"
    assert str(settings.tz) == "Asia/Tokyo"
    assert settings.dedup_window == timedelta(hours=24)
    assert settings.correlation_window == timedelta(hours=1)
    assert settings.mail_group_wait == timedelta(seconds=30)
    assert settings.mail_group_interval == timedelta(minutes=5)
    assert settings.mail_urgent_wait == timedelta(seconds=10)
    assert settings.heartbeat_timeout == timedelta(minutes=10)
    assert settings.heartbeat_daily_at == time(9, 0)
    assert settings.web_port == 6066


def test_values_from_the_environment() -> None:
    settings = load_settings({
        "MIMAMORI_KAFKA": "127.0.0.1:19092,127.0.0.1:19093", "MIMAMORI_TZ": "UTC",
        "MIMAMORI_MAIL_GROUP_WAIT": "1m", "MIMAMORI_HEARTBEAT_DAILY_AT": "07:30",
        "MIMAMORI_SMTP": "smtps://u:p@mail.example:465", "MIMAMORI_WEB_PORT": "8080",
    })
    assert settings.kafka == "127.0.0.1:19092,127.0.0.1:19093"
    assert settings.mail_group_wait == timedelta(minutes=1)
    assert settings.heartbeat_daily_at == time(7, 30)
    assert settings.web_port == 8080


@pytest.mark.parametrize("variable,value", [
    ("MIMAMORI_MAIL_GROUP_WAIT", "abc"), ("MIMAMORI_TZ", "Mars/Olympus"), ("MIMAMORI_HEARTBEAT_DAILY_AT", "25:00"),
    ("MIMAMORI_WEB_PORT", "0"), ("MIMAMORI_CLICKHOUSE", "postgres://x"), ("MIMAMORI_SMTP", "http://x"),
    ("MIMAMORI_KAFKA", "nohostport"), ("MIMAMORI_DEDUP_WINDOW", "1y"),
])
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert str(caught.value).startswith(variable + ":")


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().kafka = "x"  # type: ignore[misc]


def test_topic_prefix_moves_every_topic() -> None:
    topics = load_settings({"MIMAMORI_TOPIC_PREFIX": "staging."}).topics
    assert topics.events == "staging.utm.events"
    assert topics.mail_requests == "staging.mimamori-mail-requests"
    assert load_settings({}).topics.events == "utm.events"
    with pytest.raises(ConfigError, match="^MIMAMORI_TOPIC_PREFIX:"):
        load_settings({"MIMAMORI_TOPIC_PREFIX": "bad prefix/"})
