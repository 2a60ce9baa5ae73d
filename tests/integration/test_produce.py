"""`mimamori produce`, `registry load/remove` and `simulate --kafka` against the real broker."""
from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from mimamori.cli import main
from pipeline.config import Topics
from pipeline.io.kafka_admin import TopicSpec, ensure_topics
from tests.support.services import KafkaService


def read_all(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of the topic up to its end offsets at the time of the call."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    records: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + timeout_s
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        assert time.monotonic() < deadline, f"{topic}: not read to its end in {timeout_s}s"
        for batch in consumer.poll(timeout_ms=1000).values():
            records += [(r.key, r.value) for r in batch]
    consumer.close()
    return records


def recent(minutes: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat()


def event(utm_id: str, number: int) -> dict[str, object]:
    return {"v": 1, "event_id": f"e-{number}", "utm_id": utm_id, "ts": recent(10 - number % 5), "type": "web",
            "action": "allowed", "direction": "outbound", "src_ip": "192.168.1.10", "dst_ip": "203.0.113.5"}


def test_produce_sends_good_lines_keyed_by_utm_and_refuses_bad_ones(
        kafka: KafkaService, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topic = f"it.events.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.bootstrap, [TopicSpec(topic, 3)])
    good = [orjson.dumps(event(f"utm-{i % 4}", i)) for i in range(40)]
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"\n".join(good[:20] + [b"{broken", orjson.dumps({**event("utm-x", 99), "action": "?"})] + good[20:]))
    assert main(["produce", str(path), "--topic", topic, "--kafka", kafka.bootstrap]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "read 42, sent 40, refused 2"
    refusals = [line for line in err.splitlines() if line.startswith("line ")]  # a loaded Kafka client may warn too
    assert refusals[0].startswith("line 21: invalid_json")
    assert refusals[1].startswith("line 22: schema: action") and len(refusals) == 2
    records = read_all(kafka.bootstrap, topic)
    assert sorted(v for _, v in records) == sorted(good)
    assert all(k == orjson.loads(v)["utm_id"].encode() for k, v in records)  # type: ignore[arg-type]
    by_partition = KafkaConsumer(bootstrap_servers=kafka.bootstrap).partitions_for_topic(topic)
    assert by_partition == {0, 1, 2}


def test_produce_no_validate_sends_everything(kafka: KafkaService, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topic = f"it.raw.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.bootstrap, [TopicSpec(topic, 1)])
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"{broken\n" + orjson.dumps(event("utm-1", 1)) + b"\n")
    assert main(["produce", str(path), "--topic", topic, "--no-validate", "--kafka", kafka.bootstrap]) == 0
    assert capsys.readouterr().out.strip() == "read 2, sent 2, refused 0"
    assert sorted(v for _, v in read_all(kafka.bootstrap, topic)) == sorted(path.read_bytes().splitlines())


def test_registry_load_and_remove_publish_keyed_records(
        kafka: KafkaService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMAMORI_KAFKA", kafka.bootstrap)
    suffix = uuid.uuid4().hex[:8]
    tenant, utm = f"t-{suffix}", f"utm-{suffix}"
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({
        "tenants": [{"tenant_id": tenant, "name": "IT", "notify_emails": ["a@it.example"]}],
        "utms": [{"utm_id": utm, "tenant_id": tenant}],
    }), encoding="utf-8")
    assert main(["registry", "load", str(path)]) == 0
    assert main(["registry", "remove", "--utm", utm]) == 0
    topics = Topics()
    tenants = [(k, v) for k, v in read_all(kafka.bootstrap, topics.tenants) if k == tenant.encode()]
    utms = [(k, v) for k, v in read_all(kafka.bootstrap, topics.utms) if k == utm.encode()]
    assert [orjson.loads(v)["notify_emails"] for _, v in tenants] == [["a@it.example"]]  # type: ignore[arg-type]
    assert [orjson.loads(v)["tenant_id"] if v else None for _, v in utms] == [tenant, None]


def test_a_refused_registry_file_publishes_nothing(kafka: KafkaService, tmp_path: Path) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"tenants": [{"tenant_id": tenant, "name": "X", "notify_emails": []}], "utms": []}))
    assert main(["registry", "load", str(path), "--kafka", kafka.bootstrap]) == 1
    assert not [k for k, _ in read_all(kafka.bootstrap, Topics().tenants) if k == tenant.encode()]


def test_simulate_to_kafka_sends_every_line_by_kind(kafka: KafkaService, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Uses the default topics: the counts are of this run's lines, found by their bytes."""
    monkeypatch.setenv("MIMAMORI_KAFKA", kafka.bootstrap)
    start = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    assert main(["simulate", "--tenants", "2", "--utms-per-tenant", "1", "--rate", "1", "--duration", "10m",
                 "--start", start, "--seed", "11", "--out", str(tmp_path), "--kafka"]) == 0
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    topics = Topics()
    mine = Counter(lines)
    events = [v for _, v in read_all(kafka.bootstrap, topics.events) if v in mine]
    beats = [v for _, v in read_all(kafka.bootstrap, topics.heartbeats) if v in mine]
    assert Counter(events) + Counter(beats) == mine
    assert all(b'"type"' not in v for v in beats)
