"""Mail through a real SMTP server (aiosmtpd on loopback): what arrives, and what a stopped or refusing server does."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from pipeline.mail.render import render_alert_mail, render_utm_mail
from pipeline.io.smtp import PermanentMailError, TransientMailError, open_transport
from pipeline.models import Alert, Event, Tenant
from tests.support.services import SmtpSink

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, 0, 30, tzinfo=timezone.utc)
TOKYO = ZoneInfo("Asia/Tokyo")
TENANT = Tenant("t-mail", "株式会社みまもり", ("sec@example.co.jp", "it@example.co.jp", "boss@example.co.jp", "x@example.co.jp"))


def alert(alert_id: str, grade: int) -> Alert:
    return Alert(
        alert_id=alert_id, tenant_id=TENANT.tenant_id, utm_id="utm-9", host_ip="192.168.1.20", host_mac=None,
        grade=grade, rule="default", title="マルウェア感染の疑い", first_seen=T0, last_seen=T0, event_count=2,
        categories=("malware",), recommended_action="full_scan", status="open",
        insurance_eligible_until=date(2024, 5, 31) if grade == 3 else None,
    )


def test_alert_mail_arrives_with_recipients_headers_and_body(smtp_server: SmtpSink) -> None:
    event = Event(
        event_id="e1", utm_id="utm-9", tenant_id=TENANT.tenant_id, ts=T0, type="av", action="detected",
        direction="outbound", src_ip="192.168.1.20", dst_ip="203.0.113.9", received_at=T0,
        url="http://evil.example.com/payload.exe", file_name="payload.exe",
    )
    mail = render_alert_mail(TENANT, [alert("al-1", 3), alert("al-2", 1)], {"al-1": [event]}, T0, TOKYO,
                             sender="noreply@mimamori.example")
    transport = open_transport(smtp_server.url)
    try:
        transport.send(mail)
    finally:
        transport.close()
    received = [m for m in smtp_server.received() if m["Message-ID"] == mail.message_id]
    assert len(received) == 1
    (message,) = received
    index = smtp_server.messages.index(message)
    sender, recipients = smtp_server.envelopes[index]
    assert sender == "noreply@mimamori.example"
    assert recipients == list(TENANT.notify_emails[:3])
    assert [a.addr_spec for a in message["To"].addresses] == list(TENANT.notify_emails[:3])
    assert message["Subject"] == "[mimamori] ★★★ セキュリティアラート（2件）"
    assert message["X-Mimamori-Kind"] == "alert"
    assert message["X-Mimamori-Tenant"] == TENANT.tenant_id
    assert message["X-Mimamori-Grade"] == "3"
    assert [a.strip() for a in message["X-Mimamori-Alerts"].split(",")] == ["al-1", "al-2"]
    body = message.get_body(("plain",)).get_content()
    assert "★★★ マルウェア感染の疑い" in body and "★☆☆ マルウェア感染の疑い" in body
    assert "hxxp://evil[.]example[.]com/payload[.]exe" in body and "payload[.]exe" in body
    assert "フルスキャン" in body and "2024-05-31" in body


def test_a_stopped_server_is_a_transient_error_and_the_mail_goes_when_it_is_back() -> None:
    sink = SmtpSink()
    sink.start()
    transport = open_transport(sink.url, timeout=5)
    first = render_utm_mail("utm-down", TENANT, "utm-1", T0, T0, TOKYO)
    second = render_utm_mail("utm-down", TENANT, "utm-2", T0, T0, TOKYO)
    try:
        transport.send(first)
        sink.stop()
        with pytest.raises(TransientMailError):
            transport.send(second)
        sink.start()
        transport.send(second)
    finally:
        transport.close()
        sink.stop()
    assert [m["Message-ID"] for m in sink.received()] == [first.message_id, second.message_id]


@dataclass
class RefusingSink(SmtpSink):
    """Refuses every recipient with the given code (550: no such user; 451: try later)."""

    code: int = 550

    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str,
                          rcpt_options: list[str]) -> str:
        return f"{self.code} {'no such user' if self.code >= 500 else 'try again later'}"


@pytest.mark.parametrize("code,error", [(550, PermanentMailError), (451, TransientMailError)])
def test_refused_recipients(code: int, error: type[Exception]) -> None:
    sink = RefusingSink(code=code)
    sink.start()
    transport = open_transport(sink.url, timeout=5)
    try:
        with pytest.raises(error):
            transport.send(render_utm_mail("utm-recovered", TENANT, "utm-3", T0, T0, TOKYO))
    finally:
        transport.close()
        sink.stop()
    assert sink.received() == []
