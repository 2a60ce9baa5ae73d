"""One failure policy (issue 11): rows the store refuses for good (ClickHouse cannot parse them) are
dead-lettered with the reason and their original bytes, and the store's partition keeps moving —
the good rows of the same batch are stored, and later rows too."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.engine import Detector, InputRecord
from pipeline.internal import StoreRows
from pipeline.registry_file import registry_from_data
from pipeline.rules import load_policy
from pipeline.io.store.backends import open_store
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, committed_everything, one_tenant_registry, produce, read_to_end, wait_for

UTM = "utm-st-1"
REGISTRY = one_tenant_registry("t-st", "Store errors", ["noc@st.example"], [UTM])


def event_rows(first: int, count: int) -> list[dict[str, Any]]:
    """Event rows as the detect processor makes them."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    detector = Detector(Settings(), registry_from_data(REGISTRY), load_policy(Settings().rules_file), started_at=now)
    lines = [orjson.dumps({"v": 1, "event_id": f"st-{i}", "utm_id": UTM, "ts": (now - timedelta(minutes=5)).isoformat(),
                           "type": "web", "action": "allowed", "direction": "outbound", "src_ip": "192.168.1.9",
                           "dst_ip": "203.0.113.9", "web_category": "news"}) for i in range(first, first + count)]
    return detector.step([InputRecord("event", line) for line in lines], now).rows["events"]


@pytest.fixture(scope="module")
def run(kafka: KafkaService, smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("store-errors"), smtp_server.url)
    topic = worker.topics.store_rows
    bad = event_rows(0, 1)[0] | {"ts": "not a time at all"}
    messages = [StoreRows("events", event_rows(1, 3)), StoreRows("events", [bad]), StoreRows("events", event_rows(4, 2))]
    worker.start()
    try:
        produce(kafka.bootstrap, ((topic, b"events", orjson.dumps(m.to_record())) for m in messages))
        wait_for(lambda: committed_everything(kafka.bootstrap, worker.topics.group("store"), [topic]), timeout=90,
                 message="the store's partition moved past the refused rows")
        produce(kafka.bootstrap, [(topic, b"events", orjson.dumps(StoreRows("events", event_rows(6, 1)).to_record()))])
        wait_for(lambda: committed_everything(kafka.bootstrap, worker.topics.group("store"), [topic]), timeout=90,
                 message="later rows stored")
        health = worker.health()
    finally:
        worker.stop()
    store = open_store(worker.store_url)
    try:
        stored = sorted(r["event_id"] for r in store.query("SELECT event_id FROM events"))
    finally:
        store.close()
    rejected = [orjson.loads(v) for _, v in read_to_end(kafka.bootstrap, worker.topics.rejected)]
    return {"stored": stored, "rejected": rejected, "bad": bad, "health": health}


def test_the_refused_rows_are_dead_lettered_with_their_bytes(run: dict[str, Any]) -> None:
    [letter] = run["rejected"]
    assert letter["reason"] == "internal_error" and letter["detail"].startswith("store:")
    # rows keep their times as datetimes until they are written: compare what went on the topic
    assert StoreRows.from_record(orjson.loads(letter["value"])).rows == [orjson.loads(orjson.dumps(run["bad"]))]


def test_the_good_rows_of_the_batch_and_after_it_are_stored(run: dict[str, Any]) -> None:
    assert run["stored"] == ["st-1", "st-2", "st-3", "st-4", "st-5", "st-6"]
    assert run["health"]["status"] == "ok", run["health"]
