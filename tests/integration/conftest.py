"""Session fixtures: each real service starts once per run, on free ports, and stops at the end."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.services import (
    ClickHouseServerService, KafkaService, SmtpSink, clickhouse_server_service, kafka_service,
)


@pytest.fixture(scope="session")
def service_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def kafka(service_dir: Path) -> Iterator[KafkaService]:
    service = kafka_service(service_dir)
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def clickhouse_server(service_dir: Path) -> Iterator[ClickHouseServerService]:
    service = clickhouse_server_service(service_dir)
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="module")
def own_smtp_server() -> Iterator[SmtpSink]:
    """An SMTP server of the test module's own: its mails are only that module's."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
