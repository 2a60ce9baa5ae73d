"""No password printed (issue 20): a worker whose SMTP relay is unreachable and commands whose
ClickHouse server is unreachable, each with a password in its URL. The password is nowhere in
their stderr, the worker's log or `/health`; `/health` gives reason codes, not exception text."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from tests.support.services import ROOT, KafkaService, free_port
from tests.support.worker import WorkerProcess, one_tenant_registry, produce, wait_for

pytestmark = pytest.mark.integration

SMTP_PASSWORD = "Smtp-Pa55-7c1e"
STORE_PASSWORD = "Store-Pa55-93af"
UTM = "utm-sec-1"
REGISTRY = one_tenant_registry("t-sec", "Secrets", ["noc@secrets.example"], [UTM])


def malware(n: int) -> bytes:
    """A ★★★ (malware that reached the host): its mail is due within the urgent wait."""
    return orjson.dumps({
        "v": 1, "event_id": f"sec-{n}", "utm_id": UTM, "ts": datetime.now(timezone.utc).isoformat(),
        "type": "av", "action": "detected", "direction": "inbound", "src_ip": "198.51.100.7",
        "dst_ip": f"192.168.10.{n + 1}", "threat_category": "malware", "file_name": f"invoice-{n}.exe"})


@pytest.fixture(scope="module")
def unreachable_relay(kafka: KafkaService, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    relay = f"smtps://mimamori:{SMTP_PASSWORD}@127.0.0.1:{free_port()}"
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("secrets"), relay)
    worker.start()
    try:
        produce(kafka.bootstrap, registry_records(registry_from_data(REGISTRY), worker.topics))
        produce(kafka.bootstrap, [(worker.topics.events, UTM.encode(), malware(n)) for n in range(2)])
        wait_for(lambda: worker.health().get("failing", {}).get("mail-sender") is not None, timeout=90,
                 message="the mail sender failing against the unreachable relay")
        wait_for(lambda: "deferred" in worker.log_text(), timeout=30, message="the failure logged")
        health = worker.health()
    finally:
        worker.stop()
    return {"health": health, "log": worker.log_text()}


def test_health_gives_reason_codes_and_no_password(unreachable_relay: dict[str, Any]) -> None:
    health = unreachable_relay["health"]
    assert health["status"] == "stalled" and health["failing"]["mail-sender"] == "smtp_unavailable"
    assert set(health["failing"].values()) <= {"smtp_unavailable", "store_unavailable", "kafka_send_failed",
                                               "timer_error"}
    assert health["processors"] and all(set(p) == {"state", "reason"} for p in health["processors"].values())
    text = orjson.dumps(health).decode()
    assert SMTP_PASSWORD not in text and "Error" not in text and "secrets.example" not in text


def test_the_worker_log_names_the_failure_without_the_password(unreachable_relay: dict[str, Any]) -> None:
    log = unreachable_relay["log"]
    assert "deferred" in log and "parked until" in log  # the sender parks the mail, naming the relay's failure
    assert SMTP_PASSWORD not in log


def mimamori(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mimamori.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout)


@pytest.mark.parametrize("command", [["migrate"], ["query", "portal_alerts", "--tenant", "t-sec"], ["worker"]])
def test_an_unreachable_store_is_named_without_its_password(command: list[str], kafka: KafkaService,
                                                            tmp_path: Path) -> None:
    store = f"clickhouse://mimamori:{STORE_PASSWORD}@127.0.0.1:{free_port()}/mimamori?connect_timeout=1"
    done = mimamori(*command, env={"MIMAMORI_CLICKHOUSE": store, "MIMAMORI_KAFKA": kafka.bootstrap,
                                   "MIMAMORI_TOPIC_PREFIX": f"sec{free_port()}.", "MIMAMORI_WEB_PORT": str(free_port()),
                                   "MIMAMORI_SMTP": f"maildir://{tmp_path / 'mail'}"})
    assert done.returncode != 0
    assert STORE_PASSWORD not in done.stderr + done.stdout
    assert "mimamori:***@127.0.0.1" in done.stderr, done.stderr[-2000:]


def test_a_config_refusal_does_not_echo_the_password() -> None:
    done = mimamori("query", "portal_alerts", env={"MIMAMORI_SMTP": f"smtp://mimamori:{SMTP_PASSWORD}@relay:587"})
    assert done.returncode == 2 and "MIMAMORI_SMTP" in done.stderr and "only over TLS" in done.stderr
    assert SMTP_PASSWORD not in done.stderr + done.stdout
