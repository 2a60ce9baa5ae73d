"""The simulated run shared by the whole-worker tests: the lines, what replay makes of them, and
helpers to send them to a worker and read what it made."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from mimamori.producer import registry_records, topic_for, utm_key
from pipeline.registry_file import registry_from_data
from pipeline.simulate import Simulation, simulate
from pipeline.io.store.backends import open_store
from tests.support.worker import WorkerProcess, produce


def simulation() -> Simulation:
    """About 10,000 lines ending a few minutes ago, so that every timestamp is valid now."""
    duration = timedelta(minutes=40)
    start = datetime.now(timezone.utc).replace(microsecond=0) - duration - timedelta(minutes=5)
    return simulate(tenants=4, utms_per_tenant=2, rate=4.3, duration=duration, start=start, seed=7)


def replay(sim: Simulation, workdir: Path) -> tuple[list[dict[str, Any]], Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "registry.json").write_bytes(orjson.dumps(sim.registry))
    (workdir / "events.jsonl").write_bytes(b"\n".join(sim.lines) + b"\n")
    store = workdir / "replay-ch"
    done = subprocess.run(
        [sys.executable, "-m", "mimamori.cli", "replay", str(workdir / "events.jsonl"),
         "--registry", str(workdir / "registry.json"), "--store", f"chdb://{store}"],
        capture_output=True, timeout=600, env={"PATH": "/usr/bin:/bin", "MIMAMORI_TZ": "Asia/Tokyo"},
    )
    assert done.returncode == 0, done.stderr.decode()
    return [orjson.loads(line) for line in done.stdout.splitlines()], store


def final_alerts(records: list[dict[str, Any]]) -> dict[str, int]:
    """alert_id -> grade of its latest version."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        current = latest.get(record["alert_id"])
        if current is None or record["version"] >= current["version"]:
            latest[record["alert_id"]] = record
    return {alert_id: record["grade"] for alert_id, record in latest.items()}


def send_lines(worker: WorkerProcess, lines: list[bytes]) -> None:
    topics = worker.topics
    produce(worker.bootstrap, ((topic_for(line, topics), utm_key(line), line) for line in lines))


def publish_registry(worker: WorkerProcess, sim: Simulation) -> None:
    produce(worker.bootstrap, registry_records(registry_from_data(sim.registry), worker.topics))


def store_counts(url: str) -> dict[str, int]:
    store = open_store(url)
    try:
        return {table: int(store.query(f"SELECT count() AS n FROM {table}")[0]["n"])
                for table in ("events", "alerts", "utm_status", "mails")}
    finally:
        store.close()


def stored_events(url: str) -> tuple[int, int]:
    """(rows, distinct (utm_id, event_id)) of a store's events table: every event stored once
    when they are equal."""
    store = open_store(url)
    try:
        row = store.query("SELECT count() AS rows, uniqExact(utm_id, event_id) AS events FROM events")[0]
    finally:
        store.close()
    return int(row["rows"]), int(row["events"])
