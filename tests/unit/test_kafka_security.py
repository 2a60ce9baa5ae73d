"""MIMAMORI_KAFKA_SECURITY and its companions: read and checked at start, turned into the options of
both Kafka client libraries (Faust runs no Kafka client), the password never in a repr."""
from __future__ import annotations

import logging
import ssl
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.config import ConfigError, Settings, load_settings
from pipeline.io import kafka_security
from pipeline.io.kafka_security import (KafkaRefused, RefusalWatch, aiokafka_options, describe, kafka_python_options,
                                        ssl_context, unless_refused)

SASL = {"MIMAMORI_KAFKA_SECURITY": "sasl_ssl", "MIMAMORI_KAFKA_USERNAME": "worker",
        "MIMAMORI_KAFKA_PASSWORD": "Pa55-word:@/"}


def test_plaintext_by_default_and_no_tls_options() -> None:
    settings = load_settings({})
    assert settings.kafka_security == "plaintext" and ssl_context(settings) is None
    assert kafka_python_options(settings) == aiokafka_options(settings) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_gives_both_libraries_the_mechanism_user_password_and_a_verifying_context() -> None:
    settings = load_settings({**SASL, "MIMAMORI_KAFKA_SASL_MECHANISM": "scram-sha-256"})
    for options in (kafka_python_options(settings), aiokafka_options(settings)):
        context = options.pop("ssl_context")
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                           "sasl_plain_username": "worker", "sasl_plain_password": "Pa55-word:@/"}
    assert load_settings(SASL).kafka_sasl_mechanism == "SCRAM-SHA-512"  # the default mechanism
    assert describe(settings) == "sasl_ssl SCRAM-SHA-256 as worker"


def test_the_password_is_in_no_repr_of_the_settings() -> None:
    settings = load_settings(SASL)
    assert "Pa55-word" not in repr(settings) and "Pa55-word" not in str(settings)


def test_a_ca_file_is_read_and_one_that_is_no_certificate_is_refused(tmp_path: Path) -> None:
    not_a_ca = tmp_path / "ca.pem"
    not_a_ca.write_text("not a certificate\n")
    settings = load_settings({**SASL, "MIMAMORI_KAFKA_CA_FILE": str(not_a_ca)})
    assert settings.kafka_ca_file == not_a_ca
    with pytest.raises(ConfigError, match="^MIMAMORI_KAFKA_CA_FILE: "):
        kafka_python_options(settings)


@pytest.mark.parametrize("environ, variable", [
    ({"MIMAMORI_KAFKA_SECURITY": "tls"}, "MIMAMORI_KAFKA_SECURITY"),
    ({**SASL, "MIMAMORI_KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"}, "MIMAMORI_KAFKA_SASL_MECHANISM"),
    ({"MIMAMORI_KAFKA_SECURITY": "sasl_ssl", "MIMAMORI_KAFKA_PASSWORD": "x"}, "MIMAMORI_KAFKA_USERNAME"),
    ({"MIMAMORI_KAFKA_SECURITY": "sasl_ssl", "MIMAMORI_KAFKA_USERNAME": "u"}, "MIMAMORI_KAFKA_PASSWORD"),
    ({"MIMAMORI_KAFKA_SECURITY": "ssl", "MIMAMORI_KAFKA_PASSWORD": "x"}, "MIMAMORI_KAFKA_PASSWORD"),
    ({"MIMAMORI_KAFKA_USERNAME": "u"}, "MIMAMORI_KAFKA_USERNAME"),
    ({"MIMAMORI_KAFKA_CA_FILE": "/etc/hosts"}, "MIMAMORI_KAFKA_CA_FILE"),
    ({**SASL, "MIMAMORI_KAFKA_CA_FILE": "/no/such/ca.pem"}, "MIMAMORI_KAFKA_CA_FILE"),
    ({**SASL, "MIMAMORI_KAFKA_USERNAME": " worker"}, "MIMAMORI_KAFKA_USERNAME"),
])
def test_a_bad_or_lonely_value_is_refused_naming_its_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert str(caught.value).startswith(f"{variable}: ")
    assert "Pa55-word" not in str(caught.value) and "'x'" not in str(caught.value)


def test_empty_optional_values_count_as_unset() -> None:
    """A chart or compose file may set them empty."""
    assert load_settings({"MIMAMORI_KAFKA_USERNAME": "", "MIMAMORI_KAFKA_PASSWORD": "",
                          "MIMAMORI_KAFKA_CA_FILE": ""}) == Settings()


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[RefusalWatch]:
    """A fresh refusal watch on the kafka loggers (the process's own is once per process and sticky)."""
    fresh = RefusalWatch()
    monkeypatch.setattr(kafka_security, "_watch", fresh)
    logger = logging.getLogger("kafka")
    logger.addHandler(fresh)
    yield fresh
    logger.removeHandler(fresh)


def client_log(message: str) -> None:
    logging.getLogger("kafka.net.manager").warning(message)


def test_a_client_still_bootstrapping_is_given_up_at_the_first_refused_login(watch: RefusalWatch) -> None:
    """kafka-python's constructors retry a refused login until their 30 s bootstrap timeout; the
    command stops at the first refusal the client logs."""
    release = threading.Event()

    def retrying_client() -> str:
        client_log("Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: "
                   "Authentication failed during authentication due to invalid credentials (backoff 0.05 secs)")
        release.wait(30)
        return "client"

    started = time.monotonic()
    try:
        with pytest.raises(KafkaRefused):
            unless_refused(retrying_client)
        assert time.monotonic() - started < 10
    finally:
        release.set()


def test_without_a_refusal_the_client_or_its_own_error_is_what_comes_back(watch: RefusalWatch) -> None:
    def slow_client() -> str:
        client_log("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: socket disconnected")
        time.sleep(0.3)  # a broker not up yet: the client's own retries, several polls of the watch long
        return "client"

    def failing_client() -> str:
        raise TimeoutError("Unable to bootstrap from 127.0.0.1:9")

    assert unless_refused(slow_client, every_s=0.01) == "client"
    with pytest.raises(TimeoutError, match="Unable to bootstrap"):
        unless_refused(failing_client)
    assert watch.refusal is None
