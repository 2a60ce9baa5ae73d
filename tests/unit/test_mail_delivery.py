import smtplib
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.mail.ledger import Retrier, next_attempt
from pipeline.mail.render import render_utm_mail
from pipeline.io.smtp import (
    MaildirTransport, PermanentMailError, SmtpTransport, TransientMailError, _classify, envelope_sender,
    open_transport,
)
from pipeline.models import Mail, Tenant

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def mail(utm_id: str = "utm-1") -> Mail:
    tenant = Tenant("t1", "テナント", ("a@example.jp", "b@example.jp"))
    return render_utm_mail("utm-down", tenant, utm_id, T0, T0, ZoneInfo("Asia/Tokyo"), sender="Mimamori <noreply@example.jp>")


def test_open_transport_parses_the_contract_urls(tmp_path: Path) -> None:
    plain = open_transport("smtp://mail.example.jp:2525")
    assert isinstance(plain, SmtpTransport)
    assert (plain.host, plain.port, plain.tls, plain.starttls, plain.user) == ("mail.example.jp", 2525, False, False, None)
    login = open_transport("smtp://us%40er:p%3Ass@mail.example.jp:587?starttls=1")
    assert isinstance(login, SmtpTransport)
    assert (login.user, login.password, login.starttls, login.tls) == ("us@er", "p:ss", True, False)
    tls = open_transport("smtps://mail.example.jp")
    assert isinstance(tls, SmtpTransport) and tls.tls and tls.port == 465
    absolute = open_transport(f"maildir://{tmp_path}/box")
    assert isinstance(absolute, MaildirTransport) and absolute.path == tmp_path / "box"
    relative = open_transport("maildir://./var/mail")
    assert isinstance(relative, MaildirTransport) and relative.path == Path("./var/mail")
    for bad in ("http://x:25", "smtp://", "maildir://"):
        with pytest.raises(ValueError):
            open_transport(bad)


def test_envelope_sender_is_the_from_address() -> None:
    assert envelope_sender(mail()) == "noreply@example.jp"


def test_maildir_writes_once_per_message_id(tmp_path: Path) -> None:
    transport = open_transport(f"maildir://{tmp_path}")
    first, second = mail("utm-1"), mail("utm-2")
    transport.send(first)
    transport.send(first)
    transport.send(mail("utm-1"))
    transport.send(second)
    delivered = sorted((tmp_path / "new").iterdir())
    assert len(delivered) == 2
    assert list((tmp_path / "tmp").iterdir()) == []
    ids = {message_from_bytes(p.read_bytes(), policy=policy.default)["Message-ID"] for p in delivered}
    assert ids == {first.message_id, second.message_id}
    assert b"\r\n" not in delivered[0].read_bytes()


def test_maildir_knows_a_mail_already_read(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path)
    transport.send(mail())
    (only,) = (tmp_path / "new").iterdir()
    only.rename(tmp_path / "cur" / (only.name + ":2,S"))
    transport.send(mail())
    assert list((tmp_path / "new").iterdir()) == []


def test_maildir_failure_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(TransientMailError):
        MaildirTransport(blocker / "box").send(mail())


def test_smtp_answers_are_classified() -> None:
    assert isinstance(_classify(ConnectionRefusedError(111, "refused")), TransientMailError)
    assert isinstance(_classify(smtplib.SMTPServerDisconnected("gone")), TransientMailError)
    assert isinstance(_classify(smtplib.SMTPDataError(451, b"try later")), TransientMailError)
    assert isinstance(_classify(smtplib.SMTPDataError(554, b"rejected")), PermanentMailError)
    assert isinstance(_classify(smtplib.SMTPSenderRefused(550, b"no", "a@b")), PermanentMailError)
    every = smtplib.SMTPRecipientsRefused({"a@x": (550, b"no"), "b@x": (553, b"no")})
    some = smtplib.SMTPRecipientsRefused({"a@x": (550, b"no"), "b@x": (450, b"busy")})
    assert isinstance(_classify(every), PermanentMailError)
    assert isinstance(_classify(some), TransientMailError)


def test_backoff_grows_is_capped_and_deterministic() -> None:
    retrier = Retrier(base=timedelta(seconds=5), cap=timedelta(minutes=10), jitter=0.2)
    delays = [retrier.delay(n, "<m@x>").total_seconds() for n in range(12)]
    assert 4.0 <= delays[0] <= 5.0
    assert all(later > earlier for earlier, later in zip(delays[:6], delays[1:7]))
    assert all(480 <= d <= 600 for d in delays[8:])
    assert delays == [retrier.delay(n, "<m@x>").total_seconds() for n in range(12)]
    assert retrier.delay(3, "<a@x>") != retrier.delay(3, "<b@x>")
    assert next_attempt(0, T0) > T0
    assert next_attempt(0, T0) == next_attempt(0, T0)
    assert next_attempt(100, T0) <= T0 + timedelta(minutes=10)
