"""A worker killed (SIGKILL) mid-stream and started again changes nothing (issue 4): the alerts
that come out are those `mimamori replay` makes of the same lines, and the scripted incidents keep
their grades."""
from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.simulate import Simulation
from tests.support.flows import final_alerts, publish_registry, send_lines, stored_events
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, read_to_end, read_topic, wait_for


def alert_records(worker: WorkerProcess, **options: Any) -> list[dict[str, Any]]:
    return [orjson.loads(value) for _, value in read_topic(worker.bootstrap, worker.topics.alerts, **options)]


@pytest.fixture(scope="module")
def restarted(kafka: KafkaService, smtp_server: SmtpSink, sim: Simulation,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The first half of the lines; SIGKILL once alerts come out; a new worker; the second half."""
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("restart-worker"), smtp_server.url)
    half = len(sim.lines) // 2
    timings: dict[str, float] = {}
    worker.create_topics()
    publish_registry(worker, sim)
    worker.start()  # it reads the registry topics to their end before it takes events
    try:
        send_lines(worker, sim.lines[:half])
        # Killed as soon as the first alert is out: its batch's state and offsets are likely not saved yet.
        wait_for(lambda: bool(alert_records(worker, expect=1, timeout=1)), timeout=120, every=0.1,
                 message="a first alert")
        worker.kill()
        before_kill = len(read_to_end(worker.bootstrap, worker.topics.alerts))
        started = time.monotonic()
        worker.start()
        timings["restart_s"] = time.monotonic() - started
        send_lines(worker, sim.lines[half:])
        worker.caught_up("detect", "store", timeout=180)  # every line taken, every row stored
        alerts = [orjson.loads(value) for _, value in read_to_end(worker.bootstrap, worker.topics.alerts)]
        log = worker.log_text()
    finally:
        worker.stop()
    rejected = len(read_to_end(kafka.bootstrap, worker.topics.rejected))
    rebuilt = [line for line in log.splitlines() if "detector rebuilt" in line]
    rows, distinct = stored_events(worker.store_url)
    print(f"event rows stored twice: {rows - distinct}")
    print(f"restart timings: {timings}, alert records before the kill: {before_kill}, in all: {len(alerts)}, "
          f"rejection records: {rejected} for {sum(sim.expected['counts']['rejections'].values())} refused lines; "
          f"after the restart: {rebuilt}")
    return {"alerts": alerts, "before_kill": before_kill, "store": (rows, distinct), "log": log}


def test_the_restarted_worker_makes_the_alerts_replay_makes(restarted: dict[str, Any],
                                                            replayed: tuple[list, Path]) -> None:
    assert restarted["before_kill"] > 0, "the kill came after alerts went out"
    replay_records, _ = replayed
    expected = final_alerts([r for r in replay_records if r["record"] == "alert"])
    found = final_alerts(restarted["alerts"])
    assert set(found) - set(expected) == set(), "alert ids replay does not know"
    assert found == expected


def test_the_scripted_incidents_keep_their_grades(restarted: dict[str, Any], sim: Simulation) -> None:
    latest: dict[str, dict[str, Any]] = {}
    for record in restarted["alerts"]:
        if record["alert_id"] not in latest or record["version"] >= latest[record["alert_id"]]["version"]:
            latest[record["alert_id"]] = record
    by_host: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for record in latest.values():
        by_host[(record["utm_id"], record["host_mac"] or record["host_ip"])].append(record)
    graded = [incident for incident in sim.expected["incidents"] if "grade" in incident]
    assert graded
    for incident in graded:
        host = incident["host"]["mac"] or incident["host"]["ip"]
        found = by_host.get((incident["utm_id"], host))
        assert found, f"no alert for {incident['kind']}"
        assert max(r["grade"] for r in found) == incident["grade"], incident["kind"]


def test_no_valid_event_is_lost_or_stored_twice(restarted: dict[str, Any], replayed: tuple[list, Path]) -> None:
    _, replay_store = replayed
    expected_rows, _ = stored_events(f"chdb://{replay_store}")
    rows, distinct = restarted["store"]
    assert distinct == expected_rows
    assert rows == distinct, f"{rows - distinct} event rows stored twice"
    assert "Traceback" not in restarted["log"], restarted["log"][-3000:]
