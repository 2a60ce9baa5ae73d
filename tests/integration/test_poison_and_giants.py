"""One record never stops a partition (issue 19): mid-stream, an event nested 255 levels deep (it
passed validation and crashed its store row on every retry), an 800 kB event (its rejection
carried it whole, over the broker's limit) and one UTM with 160 infected hosts whose alerts carry
long evidence (its correlation state was one record above 1 MB). The worker rejects the first two
once each with their reasons, stores every other event once, alerts on every host, stays healthy
and never restarts its processors."""
from __future__ import annotations

import collections
import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from mimamori.producer import topic_for, utm_key
from pipeline.io.kafka_admin import topic_configs
from pipeline.simulate import Simulation
from tests.support.flows import publish_registry, send_lines, stored_events
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, committed_everything, produce, read_to_end, read_topic, wait_for

HOSTS = 160
EVENTS_PER_HOST = 5


def _event(utm_id: str, event_id: str, ts: datetime, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "event_id": event_id, "utm_id": utm_id, "ts": ts.isoformat(), "type": "av",
            "action": "detected", "direction": "inbound", "src_ip": "198.51.100.7", "dst_ip": "192.168.1.20",
            "threat_category": "malware", **fields}


def poison_lines(utm_id: str) -> tuple[bytes, bytes]:
    ts = (datetime.now(timezone.utc) - timedelta(minutes=3)).replace(microsecond=0)
    deep = orjson.dumps(_event(utm_id, "poison-deep", ts))[:-1] + b',"x":' + b"[" * 255 + b"]" * 255 + b"}"
    giant = orjson.dumps(_event(utm_id, "poison-giant", ts, blob="g" * 800_000))
    return deep, giant


def infected_hosts(utm_id: str) -> list[bytes]:
    """HOSTS hosts behind one UTM, each with EVENTS_PER_HOST infection events of distinct long
    evidence: saved as one record, the UTM's state would be above 1 MB."""
    ts = (datetime.now(timezone.utc) - timedelta(minutes=2)).replace(microsecond=0)
    lines = []
    for host in range(HOSTS):
        for n in range(EVENTS_PER_HOST):
            long = f"{host}-{n}-" + "evidence-" * 33
            lines.append(orjson.dumps(_event(
                utm_id, f"infected-{host}-{n}", ts + timedelta(seconds=n), dst_ip=f"10.9.{host // 200}.{host % 200 + 1}",
                signature=long, url=f"http://{long}.example/", domain=f"{long}.example", file_name=long + ".exe")))
    return lines


@pytest.fixture(scope="module")
def run(kafka: KafkaService, own_smtp_server: SmtpSink, sim: Simulation,
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("poison"), own_smtp_server.url)
    worker.create_topics()
    publish_registry(worker, sim)
    worker.start()  # it reads the registry topics to their end before it takes events
    try:
        utm_id = next(u["utm_id"] for u in sim.registry["utms"] if u["active"] and u["tenant_id"] == "t-001")
        deep, giant = poison_lines(utm_id)
        half = len(sim.lines) // 2
        send_lines(worker, sim.lines[:half])
        topic = worker.topics.events
        produce(worker.bootstrap, [(topic, utm_id.encode(), deep), (topic, utm_id.encode(), giant)])
        send_lines(worker, infected_hosts(utm_id) + sim.lines[half:])
        expected_rejections = sum(sim.expected["counts"]["rejections"].values()) + 2
        rejected = read_topic(kafka.bootstrap, worker.topics.rejected, expect=expected_rejections, timeout=180)
        events = sim.expected["counts"]["events"] + HOSTS * EVENTS_PER_HOST
        topics = worker.topics
        wait_for(lambda: committed_everything(kafka.bootstrap, topics.group("detect"), [topics.events, topics.heartbeats]),
                 timeout=180, message="the detect processor committed its inputs to the end")
        wait_for(lambda: committed_everything(kafka.bootstrap, topics.group("store"), [topics.store_rows]),
                 timeout=180, message="the store processor committed every row message")
        alerts = read_to_end(kafka.bootstrap, worker.topics.alerts)  # the detect processor is at the end
        health = worker.health()
        alive = worker.proc is not None and worker.proc.poll() is None
        limits = _limits(kafka.bootstrap, [worker.topics.events, worker.topics.rejected, worker.topics.detect_state])
    finally:
        worker.stop()
    return {
        "utm_id": utm_id, "deep": deep, "giant": giant, "rejected": rejected, "alerts": alerts,
        "stored": stored_events(worker.store_url), "events": events, "health": health, "alive": alive,
        "log": worker.log_text(), "limits": limits, "topics": worker.topics,
    }


def _limits(bootstrap: str, topics: list[str]) -> dict[str, str]:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, configs=["max.message.bytes"]) for t in topics], config_filter="all")
    finally:
        admin.close()
    return {name: values["max.message.bytes"] for name, values in topic_configs(described).items()}


def test_the_poison_and_the_giant_are_rejected_once_with_their_reasons(run: dict[str, Any], sim: Simulation) -> None:
    records = [orjson.loads(value) for _, value in run["rejected"]]
    reasons = collections.Counter(r["reason"] for r in records)
    expected = collections.Counter(sim.expected["counts"]["rejections"])
    expected.update({"schema": 1, "too_large": 1})
    assert reasons == expected
    positions = [(r["topic"], r["partition"], r["offset"]) for r in records]
    assert len(positions) == len(set(positions))  # each input rejected once
    [deep] = [r for r in records if r["value"] == run["deep"].decode()]
    assert deep["reason"] == "schema" and deep["detail"] == "record: nests 256 levels deep, the limit is 128"
    [giant] = [r for r, (_, value) in zip(records, run["rejected"]) if r.get("original_size") == len(run["giant"])]
    assert giant["reason"] == "too_large"
    assert giant["original_sha256"] == hashlib.sha256(run["giant"]).hexdigest()
    assert giant["value"] == run["giant"][:65536].decode()
    size = len(next(value for _, value in run["rejected"] if orjson.loads(value) == giant))
    print(f"\nrejection of the {len(run['giant']):,}-byte record: {size:,} bytes")
    assert size < 70_000


def test_every_other_event_is_stored_once_and_every_host_alerted(run: dict[str, Any]) -> None:
    rows, distinct = run["stored"]
    assert rows == distinct == run["events"]
    hosts = {orjson.loads(value)["host_ip"] for _, value in run["alerts"]
             if orjson.loads(value)["utm_id"] == run["utm_id"]}
    assert {f"10.9.{h // 200}.{h % 200 + 1}" for h in range(HOSTS)} <= hosts


def test_the_worker_stays_healthy_without_a_restart(run: dict[str, Any]) -> None:
    assert run["alive"]
    assert run["health"]["status"] == "ok", run["health"]
    assert not run["health"]["crashed"] and not run["health"]["stalled"]
    assert "Traceback" not in run["log"], run["log"][-3000:]


def test_topics_carry_the_limits_of_what_is_written_there(run: dict[str, Any]) -> None:
    topics = run["topics"]
    assert run["limits"] == {topics.events: str(1024 * 1024), topics.rejected: str(1024 * 1024),
                             topics.detect_state: str(1024 * 1024)}
