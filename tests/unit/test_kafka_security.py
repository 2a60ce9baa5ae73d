"""MIMAMORI_KAFKA_SECURITY and its companions: read and checked at start, turned into the options of
both Kafka client libraries (Faust runs no Kafka client), the password never in a repr."""
from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from pipeline.config import ConfigError, Settings, load_settings
from pipeline.io.kafka_security import aiokafka_options, describe, kafka_python_options, ssl_context

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
