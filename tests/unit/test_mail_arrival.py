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
