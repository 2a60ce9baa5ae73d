"""One worker on a real broker: Faust is its shell only (no consumer group, leader topic or page of
its own), and its follower of the compacted topics takes registry records as `registry load` would
(refused ones counted, the previous version kept) and never an aborted write (read_committed)."""
from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient

from mimamori.producer import registry_records
from pipeline.io.kafka_admin import topic_specs
from pipeline.registry_file import registry_from_data
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, group_names, one_tenant_registry, produce, wait_for

TENANT = "t-shell"
REGISTRY = one_tenant_registry(TENANT, "Shell 株式会社", ["it@shell.example.jp"], ["utm-shell-1", "utm-shell-2"])


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series of a /metrics text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def event(utm_id: str, n: int) -> bytes:
    return orjson.dumps({
        "v": 1, "event_id": f"ev-shell-{n}", "utm_id": utm_id,
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "type": "ips", "action": "detected", "direction": "outbound",
        "src_ip": "192.168.10.23", "dst_ip": "203.0.113.77", "signature": "Probe", "vendor_severity": 1,
    })


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def aborted_utm(bootstrap: str, topic: str, utm: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"shell-test-{topic}")
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, key=utm["utm_id"].encode(), value=orjson.dumps(utm))
        await producer.abort_transaction()
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def shell(kafka: KafkaService, own_smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("shell-worker"), own_smtp_server.url)
    worker.start()
    topics = worker.topics
    tenant, utm1, utm2 = REGISTRY["tenants"][0], REGISTRY["utms"][0], REGISTRY["utms"][1]
    try:
        produce(worker.bootstrap, registry_records(registry_from_data(REGISTRY), topics))
        asyncio.run(aborted_utm(worker.bootstrap, topics.utms, {**utm1, "utm_id": "utm-shell-aborted"}))
        produce(worker.bootstrap, [
            (topics.tenants, TENANT.encode(), orjson.dumps({**tenant, "active": "false"})),
            (topics.tenants, TENANT.encode(), orjson.dumps(
                {**tenant, "active": False, "notify_emails": [f"{n}@shell.example.jp" for n in "abcde"]})),
            (topics.utms, utm2["utm_id"].encode(), orjson.dumps({**utm2, "active": 0})),
        ])
        wait_for(lambda: metric(worker.metrics(), "mimamori_registry_records_refused_total", kind="utm") >= 1,
                 timeout=60, message="the refused UTM record counted")
        produce(worker.bootstrap, [(topics.events, utm_id.encode(), event(utm_id, n)) for n, utm_id in
                                   enumerate(["utm-shell-1", "utm-shell-2", "utm-shell-aborted"])])
        wait_for(lambda: metric(worker.metrics(), "mimamori_records_total", topic=topics.events) >= 3,
                 timeout=60, message="the three events taken")
        metrics = worker.metrics()
        pages = {path: status(f"http://127.0.0.1:{worker.web_port}{path}")
                 for path in ("/metrics", "/health", "/router", "/router/", "/table", "/", "/graph", "/stats")}
        groups = group_names(worker.bootstrap)
        admin = KafkaAdminClient(bootstrap_servers=worker.bootstrap)
        try:
            topic_names = set(admin.list_topics())
        finally:
            admin.close()
        log = worker.log_text()
    finally:
        worker.stop()
    return {"worker": worker, "metrics": metrics, "pages": pages, "groups": groups, "topics": topic_names, "log": log}


def test_faust_runs_no_consumer_group_and_no_topic_of_its_own(shell: dict[str, Any]) -> None:
    worker: WorkerProcess = shell["worker"]
    deployment = worker.topics.deployment
    ours = {g for g in shell["groups"] if g.startswith(worker.prefix)}
    assert ours, "the processors' groups are listed"
    assert deployment not in ours
    assert all(g.startswith(f"{deployment}-") for g in ours), ours
    assert not any("__assignor" in t or "__leader" in t for t in shell["topics"])
    assert {t for t in shell["topics"] if t.startswith(worker.prefix)} == {s.name for s in topic_specs(worker.topics)}


def test_the_worker_serves_metrics_and_health_only(shell: dict[str, Any]) -> None:
    pages = shell["pages"]
    assert pages["/metrics"] == 200 and pages["/health"] == 200
    assert {path: code for path, code in pages.items() if path not in ("/metrics", "/health")} == dict.fromkeys(
        ("/router", "/router/", "/table", "/", "/graph", "/stats"), 404)


def test_refused_registry_records_are_counted_and_the_previous_versions_stay(shell: dict[str, Any]) -> None:
    metrics = shell["metrics"]
    assert metric(metrics, "mimamori_registry_records_refused_total", kind="tenant") == 2
    assert metric(metrics, "mimamori_registry_records_refused_total", kind="utm") == 1
    assert "registry tenant record 't-shell' refused, its previous version stays" in shell["log"]
    # the tenant stays active (not "false"), utm-shell-2 stays active (not 0): their events are taken
    assert metric(metrics, "mimamori_rejections_total", reason="inactive_tenant") == 0
    assert metric(metrics, "mimamori_rejections_total", reason="inactive_utm") == 0


def test_an_aborted_registry_write_is_never_taken(shell: dict[str, Any]) -> None:
    assert metric(shell["metrics"], "mimamori_rejections_total", reason="unregistered_utm") == 1
