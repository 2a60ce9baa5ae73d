"""The store off the alerting path (issue 12): the embedded store is unavailable to the worker for
15 s (another process holds it — chdb belongs to one process at a time) while events flow. The
customers' mails of that time arrive on time; the rows wait in Kafka; when the store is free again
the worker takes it over and stores every event once."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import pytest

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from pipeline.io.store.backends import open_store
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import (
    FAST_TIMINGS, WorkerProcess, committed_everything, one_tenant_registry, produce, wait_for,
)

OUTAGE_S = 15
UTMS = ["utm-so-1", "utm-so-2"]
REGISTRY = one_tenant_registry("t-so", "Store outage", ["noc@so.example"], UTMS)


def malware(n: int, utm_id: str) -> bytes:
    """A ★★★ (malware that reached the host), each on a host of its own."""
    return orjson.dumps({
        "v": 1, "event_id": f"so-{n}", "utm_id": utm_id, "ts": datetime.now(timezone.utc).isoformat(),
        "type": "av", "action": "detected", "direction": "inbound", "src_ip": "198.51.100.7",
        "dst_ip": f"192.168.10.{n + 1}", "threat_category": "malware", "file_name": f"invoice-{n}.exe"})


@pytest.fixture(scope="module")
def outage(kafka: KafkaService, own_smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("store-outage"), own_smtp_server.url)
    held = open_store(worker.store_url, create=True)  # the store is not the worker's
    sent: dict[str, float] = {}
    try:
        worker.start()
        produce(kafka.bootstrap, registry_records(registry_from_data(REGISTRY), worker.topics))
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < OUTAGE_S - 5:
            produce(kafka.bootstrap, [(worker.topics.events, UTMS[n % 2].encode(), malware(n, UTMS[n % 2]))])
            sent[f"so-{n}"] = time.time()
            n += 1
            time.sleep(1.0)  # a ★★★ a second: a stream, paced
        wait_for(lambda: len(own_smtp_server.received()) >= 3, timeout=OUTAGE_S, message="mails while the store is away")
        during = list(own_smtp_server.received())
        health = worker.health()
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
        held.close()  # the store is back
        wait_for(lambda: "now holds the store" in worker.log_text(), timeout=60, message="the worker takes the store")
        wait_for(lambda: committed_everything(kafka.bootstrap, worker.topics.group("store"), [worker.topics.store_rows]),
                 timeout=120, message="the waiting rows stored")
    finally:
        held.close()
        worker.stop()
    store = open_store(worker.store_url)
    try:
        row = store.query("SELECT count() AS rows, uniqExact(event_id) AS events FROM events")[0]
    finally:
        store.close()
    return {"sent": sent, "during": during, "rows": int(row["rows"]), "events": int(row["events"]), "health": health}


def test_mails_go_on_time_while_the_store_is_away(outage: dict[str, Any]) -> None:
    """Each ★★★ is due one urgent wait after it arrives; a mail blocked by the store would wait
    for the whole outage. 10 s of slack for a loaded machine."""
    urgent = float(FAST_TIMINGS["MIMAMORI_MAIL_URGENT_WAIT"].rstrip("s"))
    late = {}
    for mail in outage["during"]:
        body = mail.get_body(preferencelist=("plain",)).get_content()
        mailed_at = parsedate_to_datetime(str(mail["Date"])).timestamp()
        for event_id, sent_at in outage["sent"].items():
            if f"invoice-{event_id.rsplit('-', 1)[1]}.exe" in body and mailed_at - sent_at > urgent + 10:
                late[event_id] = round(mailed_at - sent_at, 1)
    assert len(outage["during"]) >= 3 and late == {}
    assert outage["health"].get("status") == "ok", outage["health"]


def test_the_store_catches_up_with_every_event_once(outage: dict[str, Any]) -> None:
    assert outage["events"] == len(outage["sent"])
    assert outage["rows"] == outage["events"]
