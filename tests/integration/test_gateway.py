"""The HTTPS ingest gateway (issue 25) with real TLS (a CA made here) and a real broker.

A fleet of 100 simulated UTMs uploads through two gateway processes; tokens are checked (another
UTM's records, revoked, rotated, wrong, missing); the token never reaches a log line.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import orjson
import pytest

from gateway.credentials import derive_token
from mimamori.credentials import tokens_for
from mimamori.producer import KafkaSender, open_kafka_producer, registry_records
from mimamori.uploader import GatewayClient, upload_lines
from pipeline.config import Settings
from pipeline.registry_file import registry_from_data
from pipeline.simulate import simulate
from tests.support.gateway import GATEWAY_KEY, GatewayProcess
from tests.support.worker import read_to_end
from tests.support.services import ROOT, KafkaService
from tests.support.tls import Certificates, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def pair(kafka: KafkaService, certs: Certificates, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateway replicas of one deployment (one prefix, one key)."""
    workdir = tmp_path_factory.mktemp("gateways")
    first = GatewayProcess(kafka.bootstrap, certs, workdir, extra_env={"MIMAMORI_GATEWAY_MAX_BODY": "1MiB"})
    second = GatewayProcess(kafka.bootstrap, certs, workdir, prefix=first.prefix, extra_env=first.extra_env)
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()


def settings_of(gateway: GatewayProcess) -> Settings:
    return Settings(kafka=gateway.bootstrap, topics=gateway.topics, gateway_key=GATEWAY_KEY)


def publish_registry(gateway: GatewayProcess, registry: dict[str, object]) -> None:
    sender = KafkaSender(open_kafka_producer(gateway.bootstrap))
    for topic, key, value in registry_records(registry_from_data(registry), gateway.topics):
        sender(topic, key, value)
    sender.close()
    assert not sender.failures


def fleet_registry(gateway: GatewayProcess, tenants: int, utms_per_tenant: int) -> dict[str, object]:
    sim = simulate(tenants=tenants, utms_per_tenant=utms_per_tenant, rate=0, duration=timedelta(minutes=10),
                   start=datetime.now(timezone.utc) - timedelta(minutes=20))
    publish_registry(gateway, sim.registry)
    return sim.registry


def event(utm_id: str, n: int, **changes: object) -> bytes:
    record = {"v": 1, "event_id": f"{utm_id}-g{n:06d}", "utm_id": utm_id,
              "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "type": "ips", "action": "blocked",
              "direction": "inbound", "src_ip": "203.0.113.7", "dst_ip": "192.168.10.20", "signature_id": "1001"}
    return orjson.dumps({**record, **changes})


def test_a_fleet_of_100_utms_uploads_through_two_gateways_and_every_accepted_record_is_in_kafka_once(
        pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    first, second = pair
    sim = simulate(tenants=50, utms_per_tenant=2, rate=10, duration=timedelta(minutes=10),
                   start=datetime.now(timezone.utc) - timedelta(minutes=15), seed=25)
    publish_registry(first, sim.registry)
    live = [u["utm_id"] for u in sim.registry["utms"]]  # type: ignore[index]
    tokens = tokens_for(settings_of(first), live + ["utm-unknown-01"])
    report = upload_lines([first.url, second.url], tokens, sim.lines, ca_file=str(first.certs.ca), threads=16)

    assert not report.failures and report.retries == 0, report.summary()
    uploaders = {utm_id for utm_id, _, _ in report.taken}
    assert len(uploaders & set(live)) >= 100, "the fleet: 100 active UTMs uploaded"
    counts = sim.expected["counts"]
    assert report.accepted == counts["events"] + counts["heartbeats"] + counts["duplicates"], report.summary()
    assert report.refused == Counter({**{r: n for r, n in counts["rejections"].items() if n},
                                      "inactive_tenant": counts["rejections"]["inactive_tenant"]
                                      + counts["ignored_heartbeats"] // 2, "inactive_utm":
                                      counts["rejections"]["inactive_utm"] + counts["ignored_heartbeats"] // 2})

    for kind, topic in (("events", first.topics.events), ("heartbeats", first.topics.heartbeats)):
        stored = read_to_end(first.bootstrap, topic)
        assert all(key == orjson.loads(value)["utm_id"].encode() for key, value in stored), "keyed by its UTM"
        expected = Counter(value for _, k, value in report.taken if k == kind)
        assert Counter(value for _, value in stored) == expected, f"{kind}: each accepted record once per upload"
    rejected = [orjson.loads(v) for _, v in read_to_end(first.bootstrap, first.topics.rejected)]
    assert Counter(r["reason"] for r in rejected) == Counter(
        {r: n for r, n in counts["rejections"].items() if n}), "the worker's rejections, made at the door"
    for gateway in pair:
        assert gateway.health() == 200


def test_tokens_are_the_utms_own_revocable_and_rotatable_and_never_logged(
        pair: tuple[GatewayProcess, GatewayProcess], tmp_path: Path) -> None:
    first, second = pair
    registry = fleet_registry(first, 1, 2)
    utm_a, utm_b = (u["utm_id"] for u in registry["utms"][:2])  # type: ignore[index]
    env = {**os.environ, "MIMAMORI_KAFKA": first.bootstrap, "MIMAMORI_TOPIC_PREFIX": first.prefix,
           "MIMAMORI_GATEWAY_KEY": GATEWAY_KEY}

    def credential(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "mimamori.cli", "utm", "credential", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    token_a = credential(utm_a).stdout.strip()
    token_b = tokens_for(settings_of(first), [utm_b])[utm_b]
    client = GatewayClient(first.url, ca_file=str(first.certs.ca))
    other = GatewayClient(second.url, ca_file=str(first.certs.ca))
    before = {t: len(read_to_end(first.bootstrap, t)) for t in (first.topics.events, first.topics.rejected)}

    # A's token with B's records: refused one by one, nothing produced
    answer = client.post("/v1/events", token_a, event(utm_b, 1) + b"\n" + event(utm_b, 2))
    assert answer.status == 202 and answer.body["accepted"] == 0
    assert [r["reason"] for r in answer.body["refused"]] == ["wrong_utm", "wrong_utm"]  # type: ignore[index]
    assert {t: len(read_to_end(first.bootstrap, t)) for t in before} == before
    # missing, malformed, another deployment's token: 401
    assert client.post("/v1/events", None, event(utm_a, 1)).status == 401
    assert client.post("/v1/events", "not-a-token", event(utm_a, 1)).status == 401
    assert client.post("/v1/events", derive_token("another-deployment-key-0000", utm_a, 1), event(utm_a, 1)).status == 401
    # its own records go through either replica
    assert client.post("/v1/events", token_a, event(utm_a, 3)).body["accepted"] == 1
    assert other.post("/v1/events", token_b, event(utm_b, 4)).body["accepted"] == 1

    # rotation: the new token works at once on both replicas, the old one through the overlap
    rotated = credential(utm_a, "--rotate", "--overlap", "1h")
    new_a = rotated.stdout.strip()
    assert new_a != token_a and "version 1 stays valid until" in rotated.stderr
    assert other.post("/v1/events", new_a, event(utm_a, 5)).body["accepted"] == 1
    assert client.post("/v1/events", token_a, event(utm_a, 6)).body["accepted"] == 1
    # revocation: every version refused on every replica; a new issue is a new version
    revoked = credential(utm_a, "--revoke")
    assert revoked.stdout == ""
    for gateway in (client, other):
        for token in (token_a, new_a):
            gateway.post("/v1/events", token, event(utm_a, 7))
    assert {client.post("/v1/heartbeats", t, b"{}").status for t in (token_a, new_a)} == {401}
    assert other.post("/v1/events", new_a, event(utm_a, 8)).status == 401
    third = credential(utm_a).stdout.strip()
    assert third not in (token_a, new_a)
    assert other.post("/v1/events", third, event(utm_a, 9)).body["accepted"] == 1

    logs = first.logs() + second.logs()
    assert "registry read" in logs, "the logs are there to search"
    for token in (token_a, token_b, new_a, third):
        assert token not in logs and token.split(".")[-1] not in logs
    assert GATEWAY_KEY not in logs


def test_size_limits_gzip_and_answers(pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    first, _ = pair
    registry = fleet_registry(first, 1, 1)
    utm = registry["utms"][0]["utm_id"]  # type: ignore[index]
    token = tokens_for(settings_of(first), [utm])[utm]
    client = GatewayClient(first.url, ca_file=str(first.certs.ca))
    # a JSON array, gzip: the same checks, one refused record among accepted ones
    body = orjson.dumps([orjson.loads(event(utm, i)) for i in range(3)] + [{"v": 1, "utm_id": utm}])
    answer = client.post("/v1/events", token, body, compress=True, content_type="application/json")
    assert answer.status == 202 and answer.body["accepted"] == 3
    assert answer.body["refused"] == [{"index": 3, "reason": "schema", "detail": answer.body["refused"][0]["detail"]}]  # type: ignore[index]
    # a record above 64 KiB is refused; a body above MIMAMORI_GATEWAY_MAX_BODY (1 MiB here) is a 413
    big = client.post("/v1/events", token, event(utm, 10, blob="x" * 70_000))
    assert big.status == 202 and big.body["refused"][0]["reason"] == "too_large"  # type: ignore[index]
    assert client.post("/v1/events", token, b"\n".join(event(utm, 100 + i) for i in range(6000))).status == 413
    bomb = client.post("/v1/events", token, b" " * (64 << 20), compress=True)  # 64 KiB on the wire
    assert bomb.status == 413 and "decoded" in str(bomb.body["detail"])
    raw = client.post("/v1/events", token, b"", compress=False)
    assert raw.status == 202 and raw.body == {"accepted": 0, "refused": []}
    assert client.post("/v1/events", token, b'[{"v":1},', compress=False).status == 400


def test_simulate_uploads_through_the_gateway(pair: tuple[GatewayProcess, GatewayProcess]) -> None:
    first, _ = pair
    env = {**os.environ, "MIMAMORI_KAFKA": first.bootstrap, "MIMAMORI_TOPIC_PREFIX": first.prefix,
           "MIMAMORI_GATEWAY_KEY": GATEWAY_KEY}
    done = subprocess.run([sys.executable, "-m", "mimamori.cli", "simulate", "--gateway", first.url, "--gateway-ca",
                           str(first.certs.ca), "--tenants", "2", "--duration", "10m", "--rate", "1", "--seed", "7",
                           "--start", (datetime.now(timezone.utc) - timedelta(minutes=30)).isoformat()],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("uploaded ") and "(0 retried)" in done.stdout and "unregistered_utm 1" in done.stdout
