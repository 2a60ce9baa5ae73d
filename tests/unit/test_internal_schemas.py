"""Every internal topic's record is a model whose records match its JSON Schema in schemas/, and
what the schema refuses the model refuses too."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone
from typing import Any

import orjson
import pytest

from pipeline.correlate import AlertChange
from pipeline.heartbeat import Notice
from pipeline.internal import SilenceReport, StoreRows
from pipeline.mail.requests import MailRequest
from pipeline.models import Alert, Verdict
from tests.unit.test_schemas import reference

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
ALERT = Alert("a-1", "t-1", "utm-1", "192.168.1.2", None, 0, "unknown", "Unknown threat", AT, AT, 1,
              ("other",), "wait_investigation", "investigating", None, 1, AT)
RECORDS = [
    ("mail-request.json", MailRequest.for_change(AlertChange(ALERT, None, None)).to_record()),
    ("mail-request.json", dataclasses.replace(MailRequest.for_change(AlertChange(ALERT, None, None)), at=AT).to_record()),
    ("mail-request.json", MailRequest.for_change(AlertChange(ALERT, 0, "investigation-report", True,
                                                             Verdict("a-1", 2, "scanned", AT))).to_record()),
    ("mail-request.json", MailRequest.for_notice(Notice("utm-down-reminder", "utm-1", "t-1", AT, AT, AT, True, None,
                                                        date(2026, 11, 20))).to_record()),
    ("store-rows.json", StoreRows("events", [{"utm_id": "utm-1", "event_id": "e-1"}], recheck=True).to_record()),
    ("fleet-report.json", SilenceReport(3, 40, AT.timestamp()).to_record()),
    ("fleet-report.json", SilenceReport(3, 40, AT.timestamp(), AT.timestamp() - 2.5).to_record()),
]


def test_a_fleet_report_written_before_counted_until_is_taken_as_counted_when_reported() -> None:
    old = {"silent": 3, "seen": 40, "reported_at": 1.5}
    reference("fleet-report.json").validate(old)
    assert SilenceReport.from_record(old) == SilenceReport(3, 40, 1.5, 1.5)


@pytest.mark.parametrize("name, record", RECORDS)
def test_internal_records_match_their_schema_and_read_back(name: str, record: dict[str, Any]) -> None:
    wire = orjson.loads(orjson.dumps(record))
    reference(name).validate(wire)
    model = {"mail-request.json": MailRequest, "store-rows.json": StoreRows, "fleet-report.json": SilenceReport}[name]
    assert model.from_record(wire).to_record() == record


@pytest.mark.parametrize("name, model, record", [
    ("store-rows.json", StoreRows, {"table": "secrets", "rows": [], "recheck": False}),
    ("store-rows.json", StoreRows, {"table": "events", "rows": ["x"], "recheck": False}),
    ("fleet-report.json", SilenceReport, {"silent": -1, "seen": 3, "reported_at": 1.0}),
    ("mail-request.json", MailRequest, {"type": "newsletter", "alert": {}}),
])
def test_what_the_schema_refuses_the_model_refuses(name: str, model: Any, record: dict[str, Any]) -> None:
    assert not reference(name).is_valid(record)
    with pytest.raises((ValueError, KeyError, TypeError)):
        model.from_record(record)
