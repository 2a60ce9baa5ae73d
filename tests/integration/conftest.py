"""Session fixtures: each real service starts once per run (once in each process of a distributed
run: `make test` runs two), on free ports, and stops at the end."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.simulate import Simulation
from tests.support.flows import replay, simulation
from tests.support.services import (
    ClickHouseServerService, KafkaService, SmtpSink, clickhouse_server_service, kafka_service, running_smtp_sink,
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
    with running_smtp_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def own_smtp_server() -> Iterator[SmtpSink]:
    """An SMTP server of the test module's own: its mails are only that module's."""
    with running_smtp_sink() as sink:
        yield sink


@pytest.fixture(scope="session")
def sim() -> Simulation:
    """About 10,000 simulated lines ending a few minutes before the run, shared by the worker tests."""
    return simulation()


@pytest.fixture(scope="session")
def replayed(sim: Simulation, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    """What `mimamori replay` makes of `sim`: its printed records and its store."""
    return replay(sim, tmp_path_factory.mktemp("replay"))
