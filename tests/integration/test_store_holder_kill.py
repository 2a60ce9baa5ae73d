"""The embedded store's own process (issue 22, point 5), killed while rows flow: the worker that
holds the store runs the engine in a child (the store holder); SIGKILL it four times while events
stream in, each time after a burst of events and when the holder is busy (most likely inserting). Each kill is a transient store outage (/health says store_unavailable, the failure
metric counts it), the worker starts another holder and goes on, and at the end every event sent
is stored exactly once (nothing lost with the killed holder, nothing inserted twice by a retry)."""
from __future__ import annotations

import os
import re
import signal
import threading
import time
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from mimamori.producer import registry_records
from pipeline.io.store.backends import open_store
from pipeline.io.store.holder import holder_pids
from pipeline.registry_file import registry_from_data
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, committed_everything, one_tenant_registry, produce, wait_for

KILLS = 4
BURST = 6000
UTMS = [f"utm-hk-{n}" for n in range(12)]
REGISTRY = one_tenant_registry("t-hk", "Holder kill", ["noc@hk.example"], UTMS)


def web_record(n: int) -> tuple[str, bytes]:
    utm = UTMS[n % len(UTMS)]
    return utm, orjson.dumps({
        "v": 1, "event_id": f"hk-{n}", "utm_id": utm, "ts": datetime.now(timezone.utc).isoformat(),
        "type": "web", "action": "allowed", "direction": "outbound", "src_ip": f"192.168.1.{n % 200 + 1}",
        "dst_ip": "203.0.113.9", "web_category": "news", "url": f"http://news{n % 50}.example/a"})


def holder_of(worker: WorkerProcess) -> int | None:
    assert worker.proc is not None
    pids = holder_pids(worker.proc.pid)
    return pids[0] if pids else None


def cpu_ticks(pid: int) -> int:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def when_busy(pid: int, timeout: float = 20.0) -> None:
    """Return as soon as the process burns CPU (at least 2 ticks in 30 ms), or after `timeout`."""
    deadline = time.monotonic() + timeout
    last = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(0.03)
        now = cpu_ticks(pid)
        if now - last >= 2:
            return
        last = now


def metric(text: str, name: str) -> float:
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@pytest.fixture(scope="module")
def killed(kafka: KafkaService, own_smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("holder-kill"), own_smtp_server.url)
    sent: list[str] = []
    stop = threading.Event()

    def stream() -> None:  # ~300 events/s until told to stop
        n = 0
        while not stop.is_set():
            batch = [web_record(i) for i in range(n, n + 30)]
            produce(kafka.bootstrap, [(worker.topics.events, utm.encode(), value) for utm, value in batch])
            sent.extend(f"hk-{i}" for i in range(n, n + 30))
            n += 30
            time.sleep(0.1)

    kills: list[int] = []
    burst = [10_000_000]  # the bursts' event numbers, apart from the stream's
    unavailable_seen = 0
    try:
        worker.start()
        produce(kafka.bootstrap, registry_records(registry_from_data(REGISTRY), worker.topics))
        streaming = threading.Thread(target=stream, daemon=True)
        streaming.start()
        for _ in range(KILLS):
            stored_before = metric(worker.metrics(), "mimamori_store_rows_total")
            wait_for(lambda: metric(worker.metrics(), "mimamori_store_rows_total") > stored_before,
                     timeout=90, every=0.2, message="rows stored by the current holder")
            first = burst[0]
            burst[0] += BURST
            produce(kafka.bootstrap, [(worker.topics.events, utm.encode(), value)
                                      for utm, value in map(web_record, range(first, first + BURST))])
            sent.extend(f"hk-{i}" for i in range(first, first + BURST))
            pid = holder_of(worker)
            assert pid is not None, worker.log_tail()
            when_busy(pid)  # a large insert of the burst's rows, most likely
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the outage, as /health shows it while it lasts
                if "store_unavailable" in worker.health().get("failing", {}).values():
                    unavailable_seen += 1
                    break
                time.sleep(0.05)
            wait_for(lambda: holder_of(worker) not in (None, pid), timeout=90, message="a new store holder")
        stop.set()
        streaming.join(timeout=30)
        wait_for(lambda: committed_everything(kafka.bootstrap, worker.topics.group("detect"), [worker.topics.events]),
                 timeout=180, message="every event taken")
        wait_for(lambda: committed_everything(kafka.bootstrap, worker.topics.group("store"),
                                              [worker.topics.store_rows]),
                 timeout=180, message="every row stored")
        metrics = worker.metrics()
        log = worker.log_text()
    finally:
        stop.set()
        worker.stop()
    assert worker.proc is not None and holder_pids(worker.proc.pid) == []
    store = open_store(worker.store_url)  # free again: the stopped worker's holder closed it
    try:
        row = store.query("SELECT count() AS rows, uniqExact(event_id) AS events FROM events")[0]
        stored = {r["event_id"] for r in store.query("SELECT DISTINCT event_id FROM events")}
    finally:
        store.close()
    return {"sent": sent, "rows": int(row["rows"]), "events": int(row["events"]), "stored": stored, "kills": kills,
            "unavailable_seen": unavailable_seen, "metrics": metrics, "log": log}


def test_every_event_is_stored_once_through_the_kills(killed: dict[str, Any]) -> None:
    assert len(killed["kills"]) == KILLS and len(killed["sent"]) > 1000
    assert set(killed["sent"]) - killed["stored"] == set()  # nothing lost
    assert killed["rows"] == killed["events"] == len(killed["sent"])  # nothing twice


def test_each_kill_is_a_transient_outage_seen_and_ended(killed: dict[str, Any]) -> None:
    assert metric(killed["metrics"], "mimamori_store_holder_restarts_total") == KILLS
    assert metric(killed["metrics"], "mimamori_store_holder_up") == 1
    assert metric(killed["metrics"], "mimamori_store_holder_rss_bytes") > 0
    assert metric(killed["metrics"], "mimamori_store_failures_total") >= KILLS
    assert killed["unavailable_seen"] >= 1
    assert killed["log"].count("store holder") >= KILLS
