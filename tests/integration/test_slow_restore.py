"""A slow restore (issue 19): the broker throttles the reads of a partition's saved state so that
reading it outlasts the group's 10 s session timeout. State is read outside the rebalance callback
with the partition's fetch paused, so the group does not rebalance again and again: two workers
converge on the partitions and every event sent meanwhile is taken once."""
from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from tests.support.services import ROOT, KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, one_tenant_registry, produce, wait_for

STATE_BYTES = 1_200_000
RATE = 50_000
"""Bytes a second the broker lets the restore readers of this deployment fetch: ~24 s of state."""


def _throttle(kafka: KafkaService, client_id: str, rate: int | None) -> None:
    config = ["--add-config", f"consumer_byte_rate={rate}"] if rate else ["--delete-config", "consumer_byte_rate"]
    done = subprocess.run(
        ["java", "-cp", str(ROOT / "services" / "kafka" / "libs" / "*"), "kafka.admin.ConfigCommand",
         "--bootstrap-server", kafka.bootstrap, "--alter", *config, "--entity-type", "clients",
         "--entity-name", client_id], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _metric(worker: WorkerProcess, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in worker.metrics().splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _events(n: int, utms: list[str]) -> list[tuple[str, bytes, bytes]]:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = []
    for i in range(n):
        utm = utms[i % len(utms)]
        event = {"v": 1, "event_id": f"slow-{i}", "utm_id": utm, "ts": now, "type": "web", "action": "allowed",
                 "direction": "outbound", "src_ip": "192.0.2.10", "dst_ip": "198.51.100.7", "web_category": "news"}
        out.append((utm, utm.encode(), orjson.dumps(event)))
    return out


def test_a_restore_slower_than_the_session_timeout_converges(kafka: KafkaService, own_smtp_server: SmtpSink,
                                                             tmp_path: Path) -> None:
    env = {"MIMAMORI_CLICKHOUSE": f"chdb://{tmp_path / 'clickhouse'}"}
    a = WorkerProcess(kafka.bootstrap, tmp_path / "a", own_smtp_server.url, extra_env=dict(env))
    b = WorkerProcess(kafka.bootstrap, tmp_path / "b", own_smtp_server.url, extra_env=dict(env), prefix=a.prefix)
    utms = [f"utm-s{i:02d}" for i in range(12)]
    a.create_topics()
    produce(kafka.bootstrap, registry_records(registry_from_data(
        one_tenant_registry("tenant-s", "遅延株式会社", ["s@example.com"], utms)), a.topics))
    # saved state the detector does not know (it skips such keys), big enough to read slowly
    filler = b"x" * 1000
    produce(kafka.bootstrap, ((a.topics.detect_state, f"filler\x1f{i}".encode(), orjson.dumps({"f": filler.decode()}))
                              for i in range(STATE_BYTES // 1000)))
    restore_client = f"{a.topics.group('detect')}-restore"
    _throttle(kafka, restore_client, RATE)
    try:
        started = time.monotonic()
        a.start(wait=240)
        b.start(wait=240)
        topic = a.topics.events
        produce(kafka.bootstrap, ((topic, key, value) for _, key, value in _events(600, utms)))
        wait_for(lambda: _metric(a, "mimamori_records_total") + _metric(b, "mimamori_records_total") >= 600,
                 timeout=300, every=1.0, message="every event taken by the two workers")
        took = time.monotonic() - started
        owned = [a.health().get("partitions", {}).get("detect", []), b.health().get("partitions", {}).get("detect", [])]
        assert sorted(owned[0] + owned[1]) == list(range(6)) and all(owned), owned
        restores = [len(re.findall(r"detect: partitions \[\d+\] assigned, state read in ([\d.]+)s", w.log_text()))
                    for w in (a, b)]
        slowest = max(float(s) for w in (a, b)
                      for s in re.findall(r"detect: partitions \[\d+\] assigned, state read in ([\d.]+)s", w.log_text()))
        assert slowest > 10, f"the restore was not slower than the session timeout ({slowest:.1f}s)"
        assert sum(restores) <= 18, f"the group kept rebalancing: {restores} restores in {took:.0f}s"
        assert _metric(a, "mimamori_duplicates_total") + _metric(b, "mimamori_duplicates_total") == 0
    finally:
        _throttle(kafka, restore_client, None)
        a.stop()
        b.stop()
