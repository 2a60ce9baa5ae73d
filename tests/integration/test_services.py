"""The real local services: each answers, and the project's scripts manage them idempotently."""
from __future__ import annotations

import asyncio
import smtplib
import socket
import uuid
from email.message import EmailMessage
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer

from pipeline.io.kafka_admin import TopicSpec, ensure_topics
from tests.support.services import ClickHouseServerService, KafkaService, SmtpSink, kafka_service


def test_kafka_message_reaches_a_consumer(kafka: KafkaService) -> None:
    topic_name = f"probe.{uuid.uuid4().hex[:8]}"
    values = [f"value-{i}".encode() for i in range(20)]

    ensure_topics(kafka.bootstrap, [TopicSpec(topic_name, 3)])

    async def scenario() -> list[bytes]:
        consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=kafka.bootstrap, group_id=None,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
            for i, value in enumerate(values):
                producer.send(topic_name, key=f"k{i}".encode(), value=value)
            producer.flush()
            producer.close()
            received: list[bytes] = []
            deadline = asyncio.get_running_loop().time() + 60
            while len(received) < len(values) and asyncio.get_running_loop().time() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received += [r.value for r in records]
        finally:
            await consumer.stop()
        return received

    received = asyncio.run(scenario())
    assert sorted(received) == sorted(values)


def test_kafka_script_is_idempotent_and_on_loopback(tmp_path: Path) -> None:
    service = kafka_service(tmp_path)
    try:
        for _ in range(2):
            assert "running" in service.start()
            assert "running" in service.status()
        assert _listening_addresses(service.port) == {"127.0.0.1"}
    finally:
        assert "stopped" in service.stop()
        assert "stopped" in service.stop()
    assert "stopped" in service.status()


def _listening_addresses(port: int) -> set[str]:
    """Addresses a TCP listener has on this port, read from /proc/net/tcp{,6}."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(address)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    text = socket.inet_ntop(socket.AF_INET6, words)
                    found.add(text.removeprefix("::ffff:"))
    return found


def test_query_on_embedded_clickhouse(tmp_path: Path) -> None:
    from chdb import session

    db = session.Session(str(tmp_path / "chdb"))
    try:
        db.query("CREATE TABLE t (n UInt32) ENGINE = MergeTree ORDER BY n")
        db.query("INSERT INTO t SELECT number FROM numbers(1000)")
        assert db.query("SELECT sum(n) FROM t", "CSV").bytes().strip() == b"499500"
    finally:
        db.close()


def test_insert_and_select_on_the_clickhouse_server(clickhouse_server: ClickHouseServerService) -> None:
    from clickhouse_driver import Client

    client = Client("127.0.0.1", port=clickhouse_server.port)
    table = f"probe_{uuid.uuid4().hex[:8]}"
    client.execute(f"CREATE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    client.execute(f"INSERT INTO {table} (n, s) VALUES", [(i, f"row{i}") for i in range(5000)])
    assert client.execute(f"SELECT count(), sum(n) FROM {table}") == [(5000, 12497500)]
    client.execute(f"DROP TABLE {table}")
    client.disconnect()


def test_a_mail_reaches_the_smtp_server(smtp_server: SmtpSink) -> None:
    message = EmailMessage()
    message["From"] = "mimamori@example.net"
    message["To"] = "customer@example.com"
    message["Subject"] = "[mimamori] ★★★ probe"
    message.set_content("本文")
    before = len(smtp_server.received())
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        client.send_message(message)
    received = smtp_server.received()[before:]
    assert len(received) == 1
    assert "★★★" in str(received[0]["Subject"])
