"""The gateway when things fail (issue 25): the broker stopped for 15 s during uploads, and a gateway
killed with SIGKILL mid-request. Clients retry (503 with Retry-After, or no answer); afterwards
every record a 202 acknowledged is in Kafka. A broker of this module's own, since it is stopped."""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import orjson
import pytest

from mimamori.credentials import tokens_for
from mimamori.uploader import GatewayClient, UploadReport, send_with_retries
from pipeline.config import Settings
from pipeline.simulate import simulate
from tests.integration.test_gateway import event, publish_registry
from tests.support.gateway import GATEWAY_KEY, GatewayProcess
from tests.support.worker import read_to_end
from tests.support.services import KafkaService, kafka_service
from tests.support.tls import Certificates, make_certificates


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaService]:
    service = kafka_service(tmp_path_factory.mktemp("own-kafka"))
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


class Uploaders:
    """One thread per UTM, each uploading batches of new events in a loop, retrying each until it is
    answered for good; what a 202 accepted is remembered."""

    def __init__(self, url: str, ca: str, tokens: dict[str, str], batch: int = 20) -> None:
        self.url, self.ca, self.tokens, self.batch = url, ca, tokens, batch
        self.report = UploadReport()
        self.acked: set[str] = set()
        self.answered: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(utm_id,), daemon=True) for utm_id in tokens]

    def __enter__(self) -> "Uploaders":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(180)

    def _run(self, utm_id: str) -> None:
        client = GatewayClient(self.url, ca_file=self.ca, timeout=10)
        n = 0
        while not self.stopping.is_set():
            records = [event(utm_id, n + i) for i in range(self.batch)]
            n += self.batch
            answer = send_with_retries(client, "events", self.tokens[utm_id], records,
                                       deadline=time.monotonic() + 150, report=self.report)
            if answer.status != 202:
                self.failures.append(f"{utm_id}: {answer.status} {answer.body}")
                return
            refused = {r["index"] for r in answer.body["refused"]}  # type: ignore[union-attr, index]
            with self.report.lock:
                self.acked.update(orjson.loads(r)["event_id"] for i, r in enumerate(records) if i not in refused)
                self.answered[utm_id] += 1

    def progress(self) -> Counter[str]:
        with self.report.lock:
            return Counter(self.answered)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


def stored_event_ids(gateway: GatewayProcess) -> Counter[str]:
    stored = read_to_end(gateway.bootstrap, gateway.topics.events)
    assert all(key == orjson.loads(value)["utm_id"].encode() for key, value in stored)
    return Counter(orjson.loads(value)["event_id"] for _, value in stored)


@pytest.fixture(scope="module")
def deployment(own_kafka: KafkaService, certs: Certificates, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[GatewayProcess, dict[str, str]]]:
    gateway = GatewayProcess(own_kafka.bootstrap, certs, tmp_path_factory.mktemp("gateway"),
                             extra_env={"MIMAMORI_GATEWAY_ACK_TIMEOUT": "3s"})
    try:
        gateway.start()
        sim = simulate(tenants=10, utms_per_tenant=2, rate=0, duration=timedelta(minutes=10),
                       start=datetime.now(timezone.utc) - timedelta(minutes=20))
        publish_registry(gateway, sim.registry)
        live = [u["utm_id"] for u in sim.registry["utms"] if u["active"] and u["tenant_id"] != "t-inactive"]  # type: ignore[index]
        settings = Settings(kafka=gateway.bootstrap, topics=gateway.topics, gateway_key=GATEWAY_KEY)
        yield gateway, tokens_for(settings, live)
    finally:
        gateway.stop()


def test_the_broker_stopped_for_15_s_gives_503_and_retries_and_loses_nothing_acknowledged(
        own_kafka: KafkaService, deployment: tuple[GatewayProcess, dict[str, str]]) -> None:
    gateway, tokens = deployment
    with Uploaders(gateway.url, str(gateway.certs.ca), tokens) as uploaders:
        wait_for(lambda: sum(uploaders.progress().values()) >= 3 * len(tokens), 60, "uploads before the outage")
        own_kafka.stop()
        stopped = time.monotonic()
        wait_for(lambda: uploaders.report.statuses[503] >= len(tokens), 30, "503 answers while the broker is down")
        assert gateway.health() == 503
        time.sleep(max(0.0, 15 - (time.monotonic() - stopped)))  # the outage itself lasts 15 s
        before = uploaders.progress()
        own_kafka.start()
        wait_for(lambda: all(uploaders.progress()[u] > before[u] + 1 for u in tokens), 120,
                 "every UTM's uploads acknowledged again after the outage")
    assert not uploaders.failures, uploaders.failures[:5]
    statuses = uploaders.report.statuses
    assert statuses[503] >= len(tokens) and statuses[202] > 0, statuses
    stored = stored_event_ids(gateway)
    missing = uploaders.acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    wait_for(lambda: gateway.health() == 200, 30, "the gateway healthy again")


def test_a_gateway_killed_mid_request_loses_nothing_it_acknowledged(
        deployment: tuple[GatewayProcess, dict[str, str]], tmp_path: Path) -> None:
    gateway, tokens = deployment
    with Uploaders(gateway.url, str(gateway.certs.ca), tokens, batch=50) as uploaders:
        for round_ in range(3):
            done = sum(uploaders.progress().values())
            wait_for(lambda: sum(uploaders.progress().values()) >= done + 2 * len(tokens), 60, "uploads flowing")
            gateway.kill()
            gateway.start()
        before = uploaders.progress()
        wait_for(lambda: all(uploaders.progress()[u] > before[u] for u in tokens), 60, "uploads after the restarts")
    assert not uploaders.failures, uploaders.failures[:5]
    assert uploaders.report.statuses[0] > 0, "some requests were cut by the kill"
    stored = stored_event_ids(gateway)
    missing = uploaders.acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
