"""An analyst's verdict through the real broker: an alert under investigation (grade 0), then
`mimamori verdict ALERT_ID --grade 3 --note ...` as a subprocess; the alert comes out again with
grade 3 and the customer gets an investigation report at a real SMTP server."""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timezone
from email.message import Message
from typing import Any

import orjson
import pytest

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from tests.support.services import ROOT, KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, one_tenant_registry, produce, read_to_end, read_topic, settle, wait_for

TENANT = "t-verdict"
UTM = "utm-verdict-01"
NOTE = "調査の結果、端末はマルウェアに感染していました。LANから切り離してください。"
REGISTRY = one_tenant_registry(TENANT, "Verdict 株式会社", ["it@verdict.example.jp"], [UTM], region="kansai",
                               size_band="1-9")




def unknown_severe_event() -> bytes:
    """No signal of the policy table but an unknown category with vendor_severity 5: grade 0."""
    return orjson.dumps({
        "v": 1, "event_id": "ev-verdict-0001", "utm_id": UTM,
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "type": "ips", "action": "detected", "direction": "outbound",
        "src_ip": "192.168.10.23", "dst_ip": "203.0.113.77", "src_mac": "00:1a:2b:3c:4d:5e",
        "signature_id": "sig-77001", "signature": "Suspicious.Beacon.Unclassified",
        "threat_category": "beacon-like", "vendor_severity": 5,
    })


def tenant_mails(sink: SmtpSink, kind: str) -> list[Message]:
    return [m for m in sink.received() if m["X-Mimamori-Tenant"] == TENANT and m["X-Mimamori-Kind"] == kind]


def alerts(worker: WorkerProcess, expect: int) -> list[dict[str, Any]]:
    records = read_topic(worker.bootstrap, worker.topics.alerts, expect=expect, timeout=3)
    return [orjson.loads(value) for _, value in records]


@pytest.fixture(scope="module")
def flow(kafka: KafkaService, own_smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    smtp = own_smtp_server
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("verdict-worker"), smtp.url)
    worker.create_topics()
    produce(worker.bootstrap, registry_records(registry_from_data(REGISTRY), worker.topics))
    worker.start()  # it reads the registry topics to their end before it takes events
    timings: dict[str, float] = {}
    try:
        produce(worker.bootstrap, [(worker.topics.events, UTM.encode(), unknown_severe_event())])
        wait_for(lambda: len(alerts(worker, 1)) >= 1, timeout=60, message="the grade-0 alert")
        before = alerts(worker, 1)
        wait_for(lambda: tenant_mails(smtp, "alert"), timeout=60, message="the ※調査中※ alert mail")
        sent = time.monotonic()
        verdict = subprocess.run(
            [sys.executable, "-m", "mimamori.cli", "verdict", before[0]["alert_id"], "--grade", "3", "--note", NOTE],
            cwd=ROOT, env=worker.env, capture_output=True, timeout=60,
        )
        assert verdict.returncode == 0, verdict.stderr.decode()
        wait_for(lambda: len(alerts(worker, 2)) >= 2, timeout=60, message="the alert after the verdict")
        timings["republished_after_s"] = time.monotonic() - sent
        wait_for(lambda: tenant_mails(smtp, "investigation-report"), timeout=60, message="the investigation report")
        timings["report_after_s"] = time.monotonic() - sent
        settle(worker)  # a second mail would have come
        after = [orjson.loads(value) for _, value in read_to_end(worker.bootstrap, worker.topics.alerts)]
    finally:
        worker.stop()
    print("verdict flow timings:", timings)
    return {"before": before, "after": after, "smtp": smtp, "log": worker.log_text()}


def test_an_unknown_severe_event_is_an_alert_under_investigation(flow: dict[str, Any]) -> None:
    [alert] = flow["before"]
    assert (alert["grade"], alert["status"], alert["utm_id"], alert["tenant_id"]) == (0, "investigating", UTM, TENANT)
    [mail] = tenant_mails(flow["smtp"], "alert")
    assert "※調査中※" in str(mail["Subject"])
    assert mail["X-Mimamori-Alerts"] == alert["alert_id"]


def test_the_verdict_republishes_the_alert_with_its_grade(flow: dict[str, Any]) -> None:
    first, *later = flow["after"]
    assert later, "the alert came out again"
    assert {r["alert_id"] for r in later} == {first["alert_id"]}
    last = later[-1]
    assert (last["grade"], last["status"]) == (3, "open")
    assert last["version"] > first["version"]


def test_the_customer_gets_one_investigation_report(flow: dict[str, Any]) -> None:
    [report] = tenant_mails(flow["smtp"], "investigation-report")
    assert report["To"] == "it@verdict.example.jp"
    assert report["X-Mimamori-Alerts"] == flow["before"][0]["alert_id"]
    assert "★★★" in str(report["Subject"])
    body = report.get_body(preferencelist=("plain",))
    assert body is not None and NOTE in body.get_content()
    assert tenant_mails(flow["smtp"], "regrade") == []
    assert len(tenant_mails(flow["smtp"], "alert")) == 1
