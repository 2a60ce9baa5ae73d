"""Alert mails through the real worker and broker to a real SMTP server (aiosmtpd): their content,
then durable delivery while the worker is killed (SIGKILL) and the SMTP server is down for 30 s."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, Iterator

import orjson
import pytest

from pipeline.mail.render import message_id_for
from mimamori.producer import registry_records, topic_for, utm_key
from pipeline.registry_file import registry_from_data
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, produce, read_to_end, settle, wait_for

TENANTS = {
    "t-mail-a": {"locale": "ja", "notify_emails": ["security@a.example.jp"]},
    "t-mail-b": {"locale": "ja", "notify_emails": ["security@b.example.jp", "it@b.example.jp", "ceo@b.example.jp"]},
    "t-mail-c": {"locale": "en", "notify_emails": ["soc@c.example.com", "it@c.example.com"]},
}
STARS = {3: "★★★", 2: "★★☆", 1: "★☆☆", 0: "※調査中※"}
FULL_SCAN = {"ja": "フルスキャン", "en": "full antivirus scan"}
WAVE_EVERY = 5.0
WAVES = 15
KILL_AT = 12.0
SMTP_DOWN_AT = 28.0
SMTP_DOWN_FOR = 30.0
SECOND_KILL_AFTER = 12.0
"""The worker is killed a second time while the SMTP server is down, its sender waiting to retry."""


def utm_of(tenant_id: str) -> str:
    return "utm-" + tenant_id.removeprefix("t-")


def registry_data() -> dict[str, Any]:
    start = (datetime.now(timezone.utc) - timedelta(days=400)).date().isoformat()
    tenants = [{"tenant_id": tenant_id, "name": f"顧客 {tenant_id} 株式会社", "service_start": start,
                "contract_end": None, "industry": "manufacturing", "region": "kanto", "size_band": "10-49",
                "active": True, **spec} for tenant_id, spec in TENANTS.items()]
    utms = [{"utm_id": utm_of(tenant_id), "tenant_id": tenant_id, "model": "ZA-SA3500G",
             "registered_at": f"{start}T00:00:00+00:00", "active": True} for tenant_id in TENANTS]
    return {"tenants": tenants, "utms": utms}


def host_mac(tenant_index: int, wave: int, host: int) -> str:
    return f"02:00:{tenant_index:02x}:{wave:02x}:00:{host:02x}"


def wave_events(wave: int, at: datetime) -> list[bytes]:
    """For each tenant, two new hosts: a ★★★ malware that reached one, a ★☆☆ phishing URL from another."""
    ts = at.isoformat(timespec="milliseconds")
    lines = []
    for index, tenant_id in enumerate(TENANTS):
        utm_id = utm_of(tenant_id)
        lines.append(orjson.dumps({
            "v": 1, "event_id": f"w{wave}-av", "utm_id": utm_id, "ts": ts, "type": "av", "action": "detected",
            "direction": "inbound", "src_ip": "203.0.113.7", "dst_ip": f"192.168.{index}.{10 + wave}",
            "dst_mac": host_mac(index, wave, 1), "threat_category": "malware", "signature_id": "AV-1001",
            "signature": "Trojan.GenericKD", "file_name": "invoice.pdf.exe",
            "url": "http://malware.example.com/invoice.pdf.exe", "vendor_severity": 5,
        }))
        lines.append(orjson.dumps({
            "v": 1, "event_id": f"w{wave}-url", "utm_id": utm_id, "ts": ts, "type": "url", "action": "blocked",
            "direction": "outbound", "src_ip": f"192.168.{index}.{100 + wave}", "src_mac": host_mac(index, wave, 2),
            "dst_ip": "198.51.100.9", "threat_category": "phishing", "signature_id": "URL-77",
            "url": "http://login.phish.example.net/account", "domain": "login.phish.example.net",
        }))
    return lines


def send_wave(worker: WorkerProcess, wave: int) -> None:
    lines = wave_events(wave, datetime.now(timezone.utc) - timedelta(seconds=2))
    produce(worker.bootstrap, ((topic_for(line, worker.topics), utm_key(line), line) for line in lines))


def message_ids(messages: list[EmailMessage]) -> list[str]:
    return [str(m["Message-ID"]) for m in messages]


def outbox(worker: WorkerProcess) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in read_to_end(worker.bootstrap, worker.topics.outbox)]


def latest_alerts(worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for _, value in read_to_end(worker.bootstrap, worker.topics.alerts):
        record = orjson.loads(value)
        if record["alert_id"] not in latest or record["version"] >= latest[record["alert_id"]]["version"]:
            latest[record["alert_id"]] = record
    return latest


class Chaos:
    """Waves of events in a thread while the main thread kills and restarts the worker and the SMTP server."""

    def __init__(self, worker: WorkerProcess, first_wave: int) -> None:
        self.worker, self.first_wave = worker, first_wave
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        for n in range(WAVES):
            time.sleep(max(0.0, started + n * WAVE_EVERY - time.monotonic()))
            try:
                send_wave(self.worker, self.first_wave + n)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    """Our own SMTP server, so that stopping it disturbs no other test."""
    server = SmtpSink()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def run(kafka: KafkaService, sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("mail-worker"), sink.url)
    timings: dict[str, float] = {}
    worker.create_topics()
    produce(kafka.bootstrap, registry_records(registry_from_data(registry_data()), worker.topics))
    began = time.monotonic()
    worker.start()  # it reads the registry topics to their end before it takes events
    timings["first start"] = time.monotonic() - began
    try:
        sent = time.monotonic()
        send_wave(worker, 0)
        wait_for(lambda: len(sink.received()) >= len(TENANTS), timeout=60, every=0.1, message="one mail per tenant")
        timings["first mails"] = time.monotonic() - sent
        settle(worker)
        first = {"mails": sink.received(), "envelopes": list(sink.envelopes), "alerts": latest_alerts(worker)}

        chaos = Chaos(worker, first_wave=1)
        began = time.monotonic()
        chaos.thread.start()
        time.sleep(max(0.0, began + KILL_AT - time.monotonic()))
        worker.kill()
        kills = [time.time()]
        restarted = time.monotonic()
        worker.start()
        timings["restart after SIGKILL"] = time.monotonic() - restarted
        time.sleep(max(0.0, began + SMTP_DOWN_AT - time.monotonic()))
        sink.stop()
        down_at = time.monotonic()
        down_from = len(sink.received())
        time.sleep(max(0.0, down_at + SECOND_KILL_AFTER - time.monotonic()))
        worker.kill()
        kills.append(time.time())
        worker.start()
        time.sleep(max(0.0, down_at + SMTP_DOWN_FOR - time.monotonic()))
        sink.start()
        back_at = datetime.now(timezone.utc)
        chaos.thread.join()
        assert not chaos.errors, chaos.errors
        produced = time.monotonic()

        def all_outbox_mails_arrived() -> bool:
            return {m["message_id"] for m in outbox(worker)} <= set(message_ids(sink.received()))

        wait_for(all_outbox_mails_arrived, timeout=120, every=1, message="every outbox mail delivered")
        timings["delivered after last wave"] = time.monotonic() - produced
        settle(worker)  # a repeat would have come
        yield {
            "first": first, "mails": sink.received(), "outbox": outbox(worker), "down_from": down_from,
            "back_at": back_at,
            "failed": read_to_end(kafka.bootstrap, worker.topics.failed_mails),
            "alerts": latest_alerts(worker), "metrics": worker.metrics(), "timings": timings,
            "chaos seconds": time.monotonic() - began, "log": worker.log_text(),
            "kills": kills, "unexplained repeats": sink.unexplained_repeats(kills, KILL_WINDOW),
        }
    finally:
        worker.stop()


def test_each_tenant_gets_its_alert_mail_with_recipients_subject_headers_and_body(run: dict[str, Any]) -> None:
    first = run["first"]
    alerts_by_tenant: dict[str, list[dict[str, Any]]] = {}
    for alert in first["alerts"].values():
        alerts_by_tenant.setdefault(alert["tenant_id"], []).append(alert)
    assert sorted(alerts_by_tenant) == sorted(TENANTS)
    mails = {str(m["X-Mimamori-Tenant"]): (m, envelope) for m, envelope in zip(first["mails"], first["envelopes"])}
    assert sorted(mails) == sorted(TENANTS), [m["Subject"] for m in first["mails"]]
    for tenant_id, (mail, (mail_from, rcpt_tos)) in mails.items():
        spec, alerts = TENANTS[tenant_id], alerts_by_tenant[tenant_id]
        assert sorted(rcpt_tos) == sorted(spec["notify_emails"])
        assert sorted(address for _, address in getaddresses([str(mail["To"])])) == sorted(spec["notify_emails"])
        assert mail_from == "mimamori@localhost"
        assert sorted(a["grade"] for a in alerts) == [1, 3]
        subject = str(mail["Subject"])
        assert STARS[3] in subject and STARS[1] not in subject
        assert ("2件" if spec["locale"] == "ja" else "2 alerts") in subject
        assert mail["X-Mimamori-Kind"] == "alert"
        assert mail["X-Mimamori-Grade"] == "3"
        listed = [a.strip() for a in str(mail["X-Mimamori-Alerts"]).split(",")]
        highest_first = sorted(alerts, key=lambda a: -a["grade"])
        assert listed == [a["alert_id"] for a in highest_first]
        identity = sorted(f"{a['alert_id']}:{a['grade']}" for a in alerts)
        assert mail["Message-ID"] == message_id_for("alert", tenant_id, identity)
        assert abs(parsedate_to_datetime(str(mail["Date"])) - datetime.now(timezone.utc)) < timedelta(minutes=10)
        body = mail.get_body(preferencelist=("plain",)).get_content()
        for alert in alerts:
            assert alert["alert_id"] in body and STARS[alert["grade"]] in body
            assert (alert["host_mac"] or alert["host_ip"]) in body
        assert utm_of(tenant_id) in body
        assert FULL_SCAN[spec["locale"]] in body
        assert body.index(STARS[3]) < body.index(STARS[1] + " ")


def test_the_alert_mail_body_names_the_evidence_defanged(run: dict[str, Any]) -> None:
    for mail in run["first"]["mails"]:
        body = mail.get_body(preferencelist=("plain",)).get_content()
        assert "hxxp://malware[.]example[.]com/invoice[.]pdf[.]exe" in body
        assert "hxxp://login[.]phish[.]example[.]net/account" in body
        assert "login[.]phish[.]example[.]net" in body
        assert "Trojan[.]GenericKD" in body  # a signature is text from events: defanged too (contract, Mail)
        assert "http://" not in body and "malware.example.com" not in body


def test_every_outbox_mail_arrives_through_a_worker_kill_and_a_smtp_outage(run: dict[str, Any]) -> None:
    in_outbox = {m["message_id"] for m in run["outbox"]}
    received = message_ids(run["mails"])
    assert len(in_outbox) >= 2 * WAVES, "too few mails were made during the run to prove anything"
    assert in_outbox == set(received)
    waited = [m for m in run["mails"][run["down_from"]:]
              if parsedate_to_datetime(str(m["Date"])) < run["back_at"] - timedelta(seconds=5)]
    assert len(waited) >= len(TENANTS), "too few mails waited for the SMTP server"
    assert run["failed"] == []
    errors = [line for line in run["metrics"].splitlines()
              if line.startswith("mimamori_agent_errors_total{") and not line.endswith(" 0.0")]
    assert not errors
    assert "Traceback" not in run["log"], run["log"][-3000:]
    print("timings:", {k: round(v, 1) for k, v in run["timings"].items()}, "chaos:", round(run["chaos seconds"], 1),
          "mails:", len(received))


KILL_WINDOW = 10.0
"""A mail accepted by the SMTP server this little before a SIGKILL may not have its outcome saved
yet: the next worker sends it again, under the same Message-ID (the only repeat allowed)."""


def test_no_message_id_arrives_twice_but_for_a_kill_right_after_its_acceptance(run: dict[str, Any]) -> None:
    assert run["unexplained repeats"] == []


def test_every_alert_of_the_run_is_in_exactly_one_mail(run: dict[str, Any]) -> None:
    """Each host here has one event, so an alert never changes grade: a second mail naming it (even
    under another Message-ID, re-rendered after the kill) would tell the customer the same thing twice."""
    mails_of: dict[str, int] = {}
    seen: set[str] = set()
    for mail in run["mails"]:
        if mail["X-Mimamori-Kind"] != "alert" or str(mail["Message-ID"]) in seen:
            continue  # a repeat of one Message-ID is the test above's
        seen.add(str(mail["Message-ID"]))
        body = mail.get_body(preferencelist=("plain",)).get_content()
        for alert_id in (a.strip() for a in str(mail["X-Mimamori-Alerts"]).split(",")):
            mails_of[alert_id] = mails_of.get(alert_id, 0) + 1
            assert alert_id in body
    assert len(run["alerts"]) == 2 * len(TENANTS) * (WAVES + 1)
    assert sorted(mails_of) == sorted(run["alerts"])
    assert {a: n for a, n in mails_of.items() if n > 1} == {}

