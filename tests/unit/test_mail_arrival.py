"""A mail carries when what it tells reached the mail desk (for the alert-to-SMTP latency the SLO
is measured on), without changing its identity."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import orjson
import pytest

from pipeline.config import Settings
from pipeline.correlate import AlertChange
from pipeline.engine import MailDesk
from pipeline.models import Alert, Mail, Tenant
from tests.unit.test_schemas import reference

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)


def alert(alert_id: str, grade: int) -> Alert:
    return Alert(alert_id, "t-1", "utm-1", "192.168.1.2", None, grade, "r", "Malware", AT, AT, 1, ("malware",),
                 "full_scan", "open", None, 1, AT)


def test_an_alert_mail_carries_its_earliest_alert_arrival_and_the_same_message_id() -> None:
    tenants = {"t-1": Tenant("t-1", "Alpha", ("a@alpha.example",), service_start=date(2026, 1, 1))}
    desk = MailDesk(Settings(), tenants.get)
    desk.step([], AT)
    desk.offer(AlertChange(alert("a-1", 1), None, None), AT)
    desk.offer(AlertChange(alert("a-2", 3), None, None), AT + timedelta(seconds=5))
    [mail] = desk.tick(AT + timedelta(seconds=15)).mails
    assert mail.arrived_at == AT and set(mail.alert_ids) == {"a-1", "a-2"}
    again = Mail.from_record(orjson.loads(orjson.dumps(mail.to_record())))
    assert again == mail
    reference("mail.json").validate(orjson.loads(orjson.dumps(mail.to_record())))
    old = {k: v for k, v in mail.to_record().items() if k != "arrived_at"}
    assert Mail.from_record(old).message_id == mail.message_id and Mail.from_record(old).arrived_at is None


def test_an_alert_arrives_when_the_utm_side_judged_it_not_when_the_mail_desk_read_it() -> None:
    """The urgent wait runs from the request's `at` (the detect step's clock), so the hop to the mail
    timing is inside it; an `at` ahead of the desk's clock counts as the desk's clock, and a request
    without one arrives at the desk's clock as before."""
    from dataclasses import replace

    from pipeline.mail.requests import MailRequest

    tenants = {"t-1": Tenant("t-1", "Alpha", ("a@alpha.example",), service_start=date(2026, 1, 1))}
    desk = MailDesk(Settings(), tenants.get)
    urgent = Settings().mail_urgent_wait
    judged = replace(MailRequest.for_change(AlertChange(alert("a-1", 3), None, None)), at=AT)
    read = MailRequest.from_record(orjson.loads(orjson.dumps(judged.to_record())))
    assert read.at == AT
    desk.step([read], AT + timedelta(seconds=2))
    assert desk.next_due() == AT + urgent
    assert desk.tick(AT + urgent - timedelta(milliseconds=1)).mails == []
    [mail] = desk.tick(AT + urgent).mails
    assert mail.arrived_at == AT

    ahead = replace(MailRequest.for_change(AlertChange(alert("a-2", 3), None, None)), at=AT + timedelta(hours=1))
    plain = MailRequest.for_change(AlertChange(alert("a-3", 3), None, None))
    later = AT + timedelta(minutes=5)
    desk.step([ahead, plain], later)
    assert desk.next_due() == later + urgent
    assert desk.next_due(["t-2"]) is None and desk.next_due(["t-1"]) == later + urgent
