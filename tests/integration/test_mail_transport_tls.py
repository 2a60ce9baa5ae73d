"""STARTTLS with login, and implicit TLS (smtps), against a real aiosmtpd server with a throw-away certificate."""
from __future__ import annotations

import shutil
import ssl
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from pipeline.mail.render import render_utm_mail
from pipeline.io.smtp import RelayUnreachable, SmtpTransport, open_transport
from pipeline.models import Tenant
from tests.support.services import SmtpSink, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate"),
]

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
TENANT = Tenant("t-tls", "TLS Co", ("sec@example.co.jp",), locale="en")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


class Accounts:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (self.user, self.password)
        return AuthResult(success=ok, handled=False)


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def starttls_sink(certificate: tuple[Path, Path]) -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink(port=free_port())
    controller = Controller(
        sink, hostname="127.0.0.1", port=sink.port, tls_context=server_context(certificate), require_starttls=True,
        authenticator=Accounts("mimamori", "s3cret:pw"), auth_require_tls=True, auth_required=True,
    )
    controller.start()
    yield sink
    controller.stop()


def test_starttls_with_login(starttls_sink: SmtpSink, certificate: tuple[Path, Path]) -> None:
    transport = open_transport(
        f"smtp://mimamori:s3cret%3Apw@127.0.0.1:{starttls_sink.port}?starttls=1", timeout=10,
        ssl_context=client_context(certificate),
    )
    assert isinstance(transport, SmtpTransport) and transport.starttls
    mail = render_utm_mail("utm-down", TENANT, "utm-1", T0, T0, ZoneInfo("Asia/Tokyo"))
    try:
        transport.send(mail)
    finally:
        transport.close()
    assert [m["Message-ID"] for m in starttls_sink.received()] == [mail.message_id]


def test_wrong_password_stops_every_mail_but_dead_letters_none(starttls_sink: SmtpSink, certificate: tuple[Path, Path]) -> None:
    """A password the relay refuses is ours to fix (the SMTP Secret), not the customers' addresses:
    the relay counts as unreachable (retried, visible in /health), no mail is refused for good."""
    transport = open_transport(
        f"smtp://mimamori:wrong@127.0.0.1:{starttls_sink.port}?starttls=1", timeout=10,
        ssl_context=client_context(certificate),
    )
    assert isinstance(transport, SmtpTransport)
    with pytest.raises(RelayUnreachable):
        transport.send(render_utm_mail("utm-down", TENANT, "utm-1", T0, T0, ZoneInfo("Asia/Tokyo")))
    transport.close()
    assert starttls_sink.received() == []


def test_smtps(certificate: tuple[Path, Path]) -> None:
    from aiosmtpd.controller import Controller

    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port, ssl_context=server_context(certificate))
    controller.start()
    transport = open_transport(f"smtps://127.0.0.1:{sink.port}", timeout=10, ssl_context=client_context(certificate))
    assert isinstance(transport, SmtpTransport) and transport.tls
    mail = render_utm_mail("utm-recovered", TENANT, "utm-1", T0, T0, ZoneInfo("Asia/Tokyo"))
    try:
        transport.send(mail)
    finally:
        transport.close()
        controller.stop()
    assert [m["Message-ID"] for m in sink.received()] == [mail.message_id]
