"""SMTP AUTH only over TLS (contract, MIMAMORI_SMTP): against a real aiosmtpd relay that would take
a login in clear, `smtp://USER:PASS@` is refused before connecting, `?starttls=1` to a relay that
offers no STARTTLS fails before any AUTH, and only `?insecure=1` logs in without TLS."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from pipeline.mail.render import render_utm_mail
from pipeline.io.smtp import MailError, open_transport
from pipeline.models import Tenant
from tests.support.services import SmtpSink, free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]  # the point of the relay

PASSWORD = "Relay-Pa55-4b2d"
T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
TENANT = Tenant("t-auth", "Auth Co", ("sec@auth.example",), locale="en")


class Accounts:
    """Accepts mimamori/PASSWORD and remembers every login attempt the relay saw."""

    def __init__(self) -> None:
        self.attempts: list[tuple[bytes, bytes]] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if isinstance(auth_data, LoginPassword):
            self.attempts.append((auth_data.login, auth_data.password))
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mimamori", PASSWORD.encode())
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def clear_relay() -> Iterator[tuple[SmtpSink, Accounts]]:
    """A relay without TLS that would take AUTH in clear (auth_require_tls off)."""
    from aiosmtpd.controller import Controller

    sink, accounts = SmtpSink(port=free_port()), Accounts()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port, authenticator=accounts,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    try:
        yield sink, accounts
    finally:
        controller.stop()


def mail() -> Any:
    return render_utm_mail("utm-down", TENANT, "utm-1", T0, T0, ZoneInfo("Asia/Tokyo"))


def test_a_login_on_plain_smtp_is_refused_before_connecting(clear_relay: tuple[SmtpSink, Accounts]) -> None:
    sink, accounts = clear_relay
    with pytest.raises(ValueError, match="only over TLS") as refused:
        open_transport(f"smtp://mimamori:{PASSWORD}@127.0.0.1:{sink.port}")
    assert PASSWORD not in str(refused.value) and "mimamori:***@" in str(refused.value)
    assert accounts.attempts == [] and sink.received() == []


def test_starttls_that_the_relay_does_not_offer_fails_before_any_login(clear_relay: tuple[SmtpSink, Accounts]) -> None:
    sink, accounts = clear_relay
    transport = open_transport(f"smtp://mimamori:{PASSWORD}@127.0.0.1:{sink.port}?starttls=1", timeout=10)
    try:
        with pytest.raises(MailError):
            transport.send(mail())
    finally:
        transport.close()
    assert accounts.attempts == [] and sink.received() == []


def test_insecure_1_logs_in_without_tls_when_asked(clear_relay: tuple[SmtpSink, Accounts]) -> None:
    sink, accounts = clear_relay
    transport = open_transport(f"smtp://mimamori:{PASSWORD}@127.0.0.1:{sink.port}?insecure=1", timeout=10)
    sent = mail()
    try:
        transport.send(sent)
    finally:
        transport.close()
    assert accounts.attempts == [(b"mimamori", PASSWORD.encode())]
    assert [m["Message-ID"] for m in sink.received()] == [sent.message_id]
