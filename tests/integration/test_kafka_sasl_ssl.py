"""Kafka with TLS and SCRAM (issue 20): a real broker with a SASL_SSL listener, its certificate from
a CA made for the test, its users written when its KRaft storage was formatted. `produce` and a
worker connect with the right password (each mechanism of the contract for `produce`) and are
refused with a wrong one or an untrusted certificate: a clear error, the password nowhere."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import orjson
import pytest

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from tests.support.services import ROOT, SaslSslKafkaService, sasl_ssl_kafka_service
from tests.support.tls import make_certificates
from tests.support.worker import FAST_TIMINGS, WorkerProcess, one_tenant_registry, produce, read_topic, wait_for

pytestmark = pytest.mark.integration

USER, PASSWORD = "mimamori", "Kafka-Pa55-d41c"
WRONG = "Wrong-Pa55-0f9e"
UTM = "utm-sasl-1"
REGISTRY = one_tenant_registry("t-sasl", "SASL Co", ["noc@sasl.example"], [UTM])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslSslKafkaService]:
    service = sasl_ssl_kafka_service(tmp_path_factory.mktemp("sasl-ssl"), {USER: PASSWORD})
    try:
        service.start()
        yield service
    finally:
        service.stop()


def mimamori(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mimamori.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout)


def heartbeat(n: int) -> bytes:
    return orjson.dumps({"v": 1, "utm_id": f"utm-hb-{n}", "ts": datetime.now(timezone.utc).isoformat(),
                         "uptime_s": 100 + n})


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_produce_with_the_right_password(broker: SaslSslKafkaService, tmp_path: Path, mechanism: str) -> None:
    prefix = f"p{mechanism.replace('-', '').lower()}."
    lines = tmp_path / "heartbeats.jsonl"
    lines.write_bytes(b"\n".join(heartbeat(n) for n in range(3)) + b"\n")
    env = {**broker.client_env(USER, PASSWORD, mechanism), "MIMAMORI_TOPIC_PREFIX": prefix}
    topics = mimamori("notice", "list", env=env)  # creates the notices topic over SASL_SSL (the admin client)
    assert topics.returncode == 0, topics.stderr[-2000:]
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "topics"], env={**os.environ, **broker.env,
                   "MIMAMORI_TOPIC_PREFIX": prefix}, check=True, capture_output=True, timeout=120)
    done = mimamori("produce", str(lines), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sent 3" in done.stdout
    assert len(read_topic(broker.bootstrap, f"{prefix}utm.heartbeats", expect=3, timeout=30)) == 3


def test_produce_with_a_wrong_password_is_refused_clearly(broker: SaslSslKafkaService, tmp_path: Path) -> None:
    lines = tmp_path / "heartbeats.jsonl"
    lines.write_bytes(heartbeat(0) + b"\n")
    done = mimamori("produce", str(lines), env=broker.client_env(USER, WRONG))
    assert done.returncode == 1
    assert f"mimamori produce: Kafka refused the login of {USER} (SCRAM-SHA-512)" in done.stderr, done.stderr[-2000:]
    assert WRONG not in done.stderr + done.stdout


def test_an_untrusted_broker_certificate_is_refused_clearly(broker: SaslSslKafkaService, tmp_path: Path) -> None:
    other_ca = make_certificates(tmp_path / "other").ca
    lines = tmp_path / "heartbeats.jsonl"
    lines.write_bytes(heartbeat(0) + b"\n")
    done = mimamori("produce", str(lines), env={**broker.client_env(USER, PASSWORD),
                                                "MIMAMORI_KAFKA_CA_FILE": str(other_ca)})
    assert done.returncode == 1
    assert "certificate" in done.stderr and "MIMAMORI_KAFKA_CA_FILE" in done.stderr, done.stderr[-2000:]
    assert PASSWORD not in done.stderr + done.stdout


class SaslWorker(WorkerProcess):
    """A worker on the SASL_SSL listener: it creates its topics itself, with its own login."""

    def create_topics(self) -> None:
        pass


def malware(n: int) -> bytes:
    return orjson.dumps({
        "v": 1, "event_id": f"sasl-{n}", "utm_id": UTM, "ts": datetime.now(timezone.utc).isoformat(),
        "type": "av", "action": "detected", "direction": "inbound", "src_ip": "198.51.100.7",
        "dst_ip": "192.168.10.9", "threat_category": "malware", "file_name": "invoice.exe"})


def test_a_worker_with_the_right_password_processes_events(broker: SaslSslKafkaService, tmp_path: Path) -> None:
    worker = SaslWorker(broker.sasl_bootstrap, tmp_path / "worker", f"maildir://{tmp_path / 'mail'}",
                        extra_env={**FAST_TIMINGS, **broker.client_env(USER, PASSWORD)})
    worker.start(wait=150)
    try:
        produce(broker.bootstrap, registry_records(registry_from_data(REGISTRY), worker.topics))
        sent = itertools.count()

        def alerted() -> bool:
            """An event of the UTM: refused while the worker has not read the registry record
            published after its start (unknown UTM), an alert once it has."""
            produce(broker.bootstrap, [(worker.topics.events, UTM.encode(), malware(next(sent)))])
            return bool(read_topic(broker.bootstrap, worker.topics.alerts, expect=1, timeout=5))

        wait_for(alerted, timeout=120, every=0.1, message="an alert of the worker on SASL_SSL")
        alerts = read_topic(broker.bootstrap, worker.topics.alerts, expect=1, timeout=30)
        assert alerts and orjson.loads(alerts[0][1])["utm_id"] == UTM
    finally:
        worker.stop()
    assert PASSWORD not in worker.log_text()


def test_a_worker_with_a_wrong_password_stops_at_start_saying_why(broker: SaslSslKafkaService, tmp_path: Path) -> None:
    worker = SaslWorker(broker.sasl_bootstrap, tmp_path / "worker", f"maildir://{tmp_path / 'mail'}",
                        extra_env=broker.client_env(USER, WRONG))
    with pytest.raises(RuntimeError, match="worker exited"):
        worker.start(wait=150)
    log = worker.log_text()
    assert f"mimamori worker: Kafka refused the login of {USER} (SCRAM-SHA-512)" in log, log[-3000:]
    assert WRONG not in log
