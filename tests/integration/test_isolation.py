"""Dedup survives a restart, and one prefix isolates a deployment (issue 10).

Two workers of different prefixes run on one broker at once; the first is then restarted and sent
again the events it had stored, long after any start-up grace: they are duplicates."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import orjson
import pytest
from kafka import KafkaAdminClient

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from pipeline.io.kafka_admin import PARTITIONS
from pipeline.io.store.backends import open_store
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, committed_everything, group_names, one_tenant_registry, produce, wait_for

UTM = "utm-iso-1"


def events(n: int, first: int = 0) -> list[bytes]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return [orjson.dumps({
        "v": 1, "event_id": f"iso-{i}", "utm_id": UTM, "ts": (now - timedelta(minutes=30) + timedelta(seconds=i)).isoformat(),
        "type": "web", "action": "allowed", "direction": "outbound", "src_ip": "192.168.1.20",
        "dst_ip": "203.0.113.7", "web_category": "news"}) for i in range(first, first + n)]


def send(worker: WorkerProcess, lines: list[bytes]) -> None:
    produce(worker.bootstrap, ((worker.topics.events, UTM.encode(), line) for line in lines))


def stored(worker: WorkerProcess) -> tuple[int, int]:
    store = open_store(worker.store_url)
    try:
        row = store.query("SELECT count() AS rows, uniqExact(event_id) AS events FROM events")[0]
        return int(row["rows"]), int(row["events"])
    finally:
        store.close()


def stored_when_stopped(worker: WorkerProcess) -> tuple[int, int]:
    """The embedded store belongs to the worker's process: read it between runs."""
    worker.stop()
    try:
        return stored(worker)
    finally:
        worker.start()


def metric(worker: WorkerProcess, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in worker.metrics().splitlines()
               if line.startswith(name) and not line.startswith("#"))


@pytest.fixture(scope="module")
def pair(kafka: KafkaService, smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    workers = (WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("iso-a"), smtp_server.url),
               WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("iso-b"), smtp_server.url))
    registry = registry_from_data(one_tenant_registry("t-iso", "Isolation", ["a@iso.example"], [UTM]))
    try:
        for worker in workers:
            worker.start()
            produce(worker.bootstrap, registry_records(registry, worker.topics))
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def test_two_prefixes_share_no_group_and_no_state_topic(pair: tuple[WorkerProcess, WorkerProcess]) -> None:
    a, b = pair
    wait_for(lambda: all(w.health().get("partitions", {}).get("detect") == list(range(PARTITIONS)) for w in pair),
             timeout=90, message="each deployment's worker owns all six partitions of its own group")
    groups = group_names(a.bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=a.bootstrap)
    try:
        topics = set(admin.list_topics())
    finally:
        admin.close()
    mine = {w.prefix: {g for g in groups if g.startswith(w.prefix)} for w in pair}
    assert a.topics.group("detect") in mine[a.prefix] and b.topics.group("detect") in mine[b.prefix]
    assert not mine[a.prefix] & mine[b.prefix]
    for worker in pair:
        for name in (worker.topics.detect_state, worker.topics.detect_seen, worker.topics.mail_state,
                     worker.topics.mail_ledger):
            assert name.startswith(worker.prefix) and name in topics


def test_a_resend_after_a_restart_is_a_duplicate(pair: tuple[WorkerProcess, WorkerProcess]) -> None:
    worker, other = pair
    send(worker, events(40))
    wait_for(lambda: metric(worker, "mimamori_records_total") >= 40, timeout=60, message="40 events taken")
    worker.stop()
    worker.start()
    wait_for(lambda: worker.health().get("partitions", {}).get("detect") == list(range(PARTITIONS)), timeout=90,
             message="the restarted worker owns every detect partition, its saved state read")
    send(worker, events(40) + events(1, first=40))
    wait_for(lambda: metric(worker, "mimamori_records_total") >= 41, timeout=60, message="the resend taken")
    assert metric(worker, "mimamori_duplicates_total") == 40
    wait_for(lambda: committed_everything(worker.bootstrap, worker.topics.group("store"), [worker.topics.store_rows]),
             timeout=60, message="every row stored")
    assert stored_when_stopped(worker) == (41, 41)
    send(other, events(3))
    wait_for(lambda: metric(other, "mimamori_records_total") >= 3, timeout=60, message="the other deployment's events")
    assert metric(other, "mimamori_duplicates_total") == 0, "a deployment sees another's dedup state"


