"""The monthly report through a real worker and broker to a real SMTP server (aiosmtpd): a worker
whose clock starts just before the due time sends one report per active tenant at that time, none
to inactive tenants; killed (SIGKILL) during the paced broadcast and restarted, it sends none twice
but the sender's one admitted repeat (the mail the server accepted just before the kill, again under
its Message-ID: SmtpSink.unexplained_repeats)."""
from __future__ import annotations

import time
from datetime import datetime, time as clock_time, timedelta, timezone
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from mimamori.producer import registry_records
from pipeline.config import ReportAt
from pipeline.models import iso
from pipeline.registry_file import registry_from_data
from pipeline.report.render import report_message_id
from pipeline.report.schedule import Month, due_at
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, produce, settle, wait_for

TZ = ZoneInfo("Asia/Tokyo")
MONTH = Month.of(datetime.now(TZ).date()).previous()
DUE = due_at(MONTH, ReportAt(1, clock_time(8, 0)), TZ)
BEFORE_DUE = timedelta(seconds=25)
"""The worker's clock starts this long before the due time: longer than a start on a loaded machine."""
RATE = "0.5"
"""Reports per second: the four take about 8 s, time enough to kill the worker in the middle."""

LONG_AGO = "2024-04-01"
TENANTS: list[dict[str, Any]] = [
    {"tenant_id": "t-rep-a", "locale": "ja", "notify_emails": ["sec@a.example.jp"]},
    {"tenant_id": "t-rep-b", "locale": "ja", "notify_emails": ["sec@b.example.jp"],
     "admin_emails": ["boss@b.example.jp", "it@b.example.jp"]},
    {"tenant_id": "t-rep-c", "locale": "en", "notify_emails": ["soc@c.example.com"]},
    {"tenant_id": "t-rep-d", "locale": "ja", "notify_emails": ["sec@d.example.jp"],
     "service_start": MONTH.first_day.replace(day=15).isoformat()},                  # mid-month start
    {"tenant_id": "t-rep-x", "locale": "ja", "notify_emails": ["sec@x.example.jp"], "active": False},
    {"tenant_id": "t-rep-y", "locale": "ja", "notify_emails": ["sec@y.example.jp"],
     "service_start": MONTH.next().first_day.isoformat()},                           # starts after the month
]
EXPECTED = {"t-rep-a": ["sec@a.example.jp"], "t-rep-b": ["boss@b.example.jp", "it@b.example.jp"],
            "t-rep-c": ["soc@c.example.com"], "t-rep-d": ["sec@d.example.jp"]}


def registry_data() -> dict[str, Any]:
    tenants = [{"name": f"顧客 {t['tenant_id']}", "service_start": LONG_AGO, "contract_end": None,
                "industry": "retail", "region": "kanto", "size_band": "10-49", "active": True, **t} for t in TENANTS]
    utms = [{"utm_id": "utm-" + t["tenant_id"], "tenant_id": t["tenant_id"], "model": "ZA-SA3500G",
             "registered_at": f"{LONG_AGO}T00:00:00+00:00", "active": True} for t in TENANTS]
    return {"tenants": tenants, "utms": utms}


def reports(sink: SmtpSink) -> list[Message]:
    return [m for m in sink.received() if m["X-Mimamori-Kind"] == "monthly-report"]


@pytest.fixture(scope="module")
def worker(kafka: KafkaService, own_smtp_server: SmtpSink,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("report-worker"), own_smtp_server.url,
                           extra_env={"MIMAMORI_REPORT_AT": "1 08:00", "MIMAMORI_REPORT_MAIL_RATE": RATE,
                                      "MIMAMORI_TZ": "Asia/Tokyo"})
    try:
        yield worker
    finally:
        worker.stop()


def test_one_report_per_active_tenant_at_the_due_time_and_none_twice_after_a_kill(
        worker: WorkerProcess, own_smtp_server: SmtpSink) -> None:
    sink = own_smtp_server
    worker.create_topics()
    produce(worker.bootstrap, registry_records(registry_from_data(registry_data()), worker.topics))
    worker.extra_args = ["--clock-start", iso(DUE - BEFORE_DUE) or ""]
    started = time.monotonic()
    worker.start()
    if time.monotonic() - started < BEFORE_DUE.total_seconds() - 5:
        assert reports(sink) == [], "a report went before its due time"

    wait_for(lambda: len(reports(sink)) >= 1, timeout=120, message="the first monthly report")
    worker.kill()                                      # SIGKILL in the middle of the paced broadcast
    killed_at = time.time()
    killed_with = len({m["Message-ID"] for m in reports(sink)})
    assert killed_with < len(EXPECTED), "the broadcast was over before the kill; slow it down"
    worker.extra_args = ["--clock-start", iso(DUE + timedelta(minutes=2)) or ""]
    worker.start()
    wait_for(lambda: {m["X-Mimamori-Tenant"] for m in reports(sink)} >= set(EXPECTED), timeout=180,
             message=f"a report for each active tenant\n{worker.log_tail()}")
    wait_for(lambda: f"monthly report {MONTH}: broadcast done" in worker.log_text(), timeout=120,
             message="the restarted worker's broadcast done")
    settle(worker)                                     # anything sent twice would have come

    got = reports(sink)
    by_tenant = {m["X-Mimamori-Tenant"]: m for m in got}
    assert sink.unexplained_repeats([killed_at], kind="monthly-report") == [], "a report sent twice"
    assert sorted({(m["X-Mimamori-Tenant"], m["Message-ID"]) for m in got}) == sorted(
        (t, report_message_id(t, str(MONTH))) for t in EXPECTED), "one report each, none to others"
    for tenant_id, to in EXPECTED.items():
        message = by_tenant[tenant_id]
        assert message["Message-ID"] == report_message_id(tenant_id, str(MONTH))
        assert message["X-Mimamori-Month"] == str(MONTH)
        assert sorted(a.strip() for a in str(message["To"]).split(",")) == sorted(to)
        sent = parsedate_to_datetime(str(message["Date"]))
        assert DUE <= sent < DUE + timedelta(minutes=5), (tenant_id, sent)
        related = message.get_body(("related",))
        assert related is not None and len(list(related.iter_attachments())) == 2
    assert "Monthly report for" in str(by_tenant["t-rep-c"]["Subject"])
    text = by_tenant["t-rep-d"].get_body(("plain",)).get_content()
    assert "15日" in text and "サービス期間" in text
