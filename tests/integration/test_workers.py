"""Several workers of one deployment (issue 12): they share the partitions; a third joins; the one
that holds the embedded store is killed -9 mid-stream and another takes the store over. Every event
is stored once, the alerts are replay's, no mail goes twice. And ten silent UTMs spread over two
workers' partitions trip the mass-outage guard that neither worker's own share would trip, also when
one of the workers is paused (SIGSTOP) or killed across the moment the other's share crosses the
timeout."""
from __future__ import annotations

import collections
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from pipeline.simulate import Simulation
from pipeline.io.kafka_admin import partition_of
from pipeline.io.store.backends import open_store
from tests.support.flows import final_alerts, publish_registry, send_lines, stored_events
from tests.support.services import KafkaService, SmtpSink
from tests.support.heartbeats import Heartbeats
from tests.support.worker import (
    WorkerProcess, one_tenant_registry, produce, read_to_end, settle, wait_for,
)


def deployment(kafka: KafkaService, smtp: SmtpSink, root: Path, names: list[str],
               extra_env: dict[str, str] | None = None) -> list[WorkerProcess]:
    """Workers of one prefix sharing one embedded store directory."""
    first = WorkerProcess(kafka.bootstrap, root / names[0], smtp.url, extra_env=dict(extra_env or {}))
    store = {"MIMAMORI_CLICKHOUSE": f"chdb://{root / 'clickhouse'}"}
    first.extra_env.update(store)
    others = [WorkerProcess(kafka.bootstrap, root / name, smtp.url, prefix=first.prefix,
                            extra_env={**(extra_env or {}), **store}) for name in names[1:]]
    return [first, *others]


@pytest.fixture(scope="module")
def shared(kafka: KafkaService, own_smtp_server: SmtpSink, sim: Simulation, replayed: tuple[list, Path],
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    a, b, c = deployment(kafka, own_smtp_server, tmp_path_factory.mktemp("workers"), ["a", "b", "c"])
    half = len(sim.lines) // 2
    try:
        a.start()
        b.start()
        publish_registry(a, sim)
        send_lines(a, sim.lines[:half])
        c.start()
        wait_for(lambda: len(c.health().get("partitions", {}).get("detect", [])) > 0, timeout=90,
                 message="the third worker takes partitions")
        taken = a.metric("mimamori_records_total")
        sender = threading.Thread(target=send_lines, args=(a, sim.lines[half:]))
        sender.start()
        wait_for(lambda: a.metric("mimamori_records_total") > taken, timeout=60, every=0.05,
                 message="the first worker takes lines of the second half")
        holder = a.health().get("partitions", {}).get("store")
        a.kill()  # the worker holding the embedded store, mid-stream
        sender.join()
        wait_for(lambda: any("store" in w.health().get("partitions", {}) for w in (b, c)), timeout=60,
                 message="another worker takes the store over")
        b.caught_up(timeout=300)  # everything committed
        records, _ = replayed
        mailed = {i for r in records if r["record"] == "mail" and r["kind"] == "alert" for i in r["alert_ids"]}
        wait_for(lambda: mailed <= {i.strip() for m in own_smtp_server.received() if m["X-Mimamori-Kind"] == "alert"
                                    for i in str(m["X-Mimamori-Alerts"]).split(",")},
                 timeout=120, message="every alert replay mails mailed (the last groups' wait and interval)")
        settle(b, c)
        logs = b.log_text() + c.log_text()
    finally:
        for worker in (a, b, c):
            worker.stop()
    rows, events = stored_events(a.extra_env["MIMAMORI_CLICKHOUSE"])
    return {"alerts": [orjson.loads(v) for _, v in read_to_end(kafka.bootstrap, a.topics.alerts)],
            "mails": own_smtp_server.received(), "rows": rows, "events": events,
            "holder": holder, "logs": logs}


def test_the_store_was_held_by_the_killed_worker_then_taken_over(shared: dict[str, Any]) -> None:
    assert shared["holder"] is not None, "the first worker held the store"
    assert "now holds the store" in shared["logs"]


def test_every_event_is_stored_once(shared: dict[str, Any], replayed: tuple[list, Path]) -> None:
    _, replay_store = replayed
    store = open_store(f"chdb://{replay_store}")
    try:
        expected = int(store.query("SELECT count() AS n FROM events")[0]["n"])
    finally:
        store.close()
    assert shared["events"] == expected
    assert shared["rows"] == shared["events"], f"{shared['rows'] - shared['events']} event rows stored twice"


def test_the_alerts_are_replays(shared: dict[str, Any], replayed: tuple[list, Path]) -> None:
    records, _ = replayed
    assert final_alerts(shared["alerts"]) == final_alerts([r for r in records if r["record"] == "alert"])


def test_no_mail_goes_twice(shared: dict[str, Any]) -> None:
    ids = [str(m["Message-ID"]) for m in shared["mails"]]
    assert ids and [i for i, n in collections.Counter(ids).items() if n > 1] == []
    grades: dict[str, set[int]] = collections.defaultdict(set)
    for alert in shared["alerts"]:
        grades[alert["alert_id"]].add(alert["grade"])
    named = collections.Counter(a.strip() for m in shared["mails"] if m["X-Mimamori-Kind"] == "alert"
                                for a in str(m["X-Mimamori-Alerts"]).split(","))
    assert {a: n for a, n in named.items() if n > len(grades[a])} == {}


# --- the mass-outage guard over two workers -------------------------------------------------------

FLEET = [f"utm-fl-{n:02d}" for n in range(40)]


def spread_silent(count: int) -> list[str]:
    """`count` UTMs from every partition in turn, so that both workers own some of them."""
    by_partition: dict[int, list[str]] = collections.defaultdict(list)
    for utm_id in FLEET:
        by_partition[partition_of(utm_id.encode())].append(utm_id)
    chosen: list[str] = []
    while len(chosen) < count:
        for members in by_partition.values():
            if members and len(chosen) < count:
                chosen.append(members.pop())
    return chosen


def start_fleet(a: WorkerProcess, b: WorkerProcess, registry: Any, beats: Heartbeats) -> None:
    """Both workers up with the fleet's registry, each owning detect partitions, every UTM beating."""
    a.start()
    b.start()
    produce(a.bootstrap, registry_records(registry, a.topics))
    wait_for(lambda: all(w.health().get("partitions", {}).get("detect") for w in (a, b)), timeout=90,
             message="both workers own detect partitions")
    beats.thread.start()
    wait_for(lambda: sum(w.metric("mimamori_utms", status="online") for w in (a, b)) == len(FLEET), timeout=60,
             message="every UTM seen online")


@pytest.fixture(scope="module")
def outage(kafka: KafkaService, own_smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    a, b = deployment(kafka, own_smtp_server, tmp_path_factory.mktemp("fleet"), ["a", "b"],
                      {"MIMAMORI_HEARTBEAT_TIMEOUT": "6s"})
    registry = registry_from_data(one_tenant_registry("t-fleet", "Fleet", ["noc@fleet.example"], FLEET))
    beats = Heartbeats(a, FLEET)
    try:
        start_fleet(a, b, registry, beats)
        silent = spread_silent(10)
        owners = {w.web_port for w in (a, b) for u in silent
                  if partition_of(u.encode()) in w.health().get("partitions", {}).get("detect", [])}
        beats.silent.update(silent)
        wait_for(lambda: all(_gauge(w, "mimamori_mass_outage") == 1 for w in (a, b)), timeout=40,
                 message="both workers declare the mass outage")
        wait_for(lambda: sum(w.metric("mimamori_utms", status="offline") for w in (a, b)) == len(silent), timeout=60,
                 message="the silent UTMs offline")
        settle(a, b)  # a utm-down made now would come out
        mails = list(own_smtp_server.received())
        yield {"owners": owners, "mails": mails, "silent": silent}
    finally:
        beats.stopping.set()
        for worker in (a, b):
            worker.stop()


def _gauge(worker: WorkerProcess, name: str) -> float:
    for line in worker.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_ten_silent_utms_over_two_workers_trip_the_guard(outage: dict[str, Any]) -> None:
    assert len(outage["owners"]) == 2, "the silent UTMs are spread over both workers"
    down = [m for m in outage["mails"] if m["X-Mimamori-Kind"] == "utm-down"
            and m["X-Mimamori-Utm"] in outage["silent"]]
    assert down == [], "customers were mailed about our own outage"


# --- the guard when one worker is paused or killed across the timeout -----------------------------

TIMEOUT = 6.0
"""The heartbeat timeout of these deployments (seconds): the guard counts at 3 s of silence."""


@pytest.fixture(scope="module", params=["paused", "killed"])
def stalled_outage(request: pytest.FixtureRequest, kafka: KafkaService, own_smtp_server: SmtpSink,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The same fleet and cut as `outage`, but worker b stalls just before the cut, until a has
    run a whole heartbeat check after its own silent UTMs crossed the timeout: "paused", b is
    stopped (SIGSTOP) and then goes on (it stays a member: less than the session timeout);
    "killed", b is killed -9 and a takes its partitions over (a restored partition counts its
    silence only half a timeout after its restore). Meanwhile a has no word of b's share newer
    than the cut: our own stall, which must not turn a's share into customers' utm-down."""
    a, b = deployment(kafka, own_smtp_server, tmp_path_factory.mktemp(f"{request.param}-fleet"), ["a", "b"],
                      {"MIMAMORI_HEARTBEAT_TIMEOUT": f"{TIMEOUT:g}s"})
    registry = registry_from_data(one_tenant_registry("t-fleet", "Fleet", ["noc@fleet.example"], FLEET))
    beats = Heartbeats(a, FLEET)
    stopped = False
    before = len(own_smtp_server.received())  # the module's other fleet mails (same UTM ids) are not ours
    try:
        start_fleet(a, b, registry, beats)
        silent = spread_silent(10)
        owned = {w.web_port: set(w.health().get("partitions", {}).get("detect", [])) for w in (a, b)}
        owners = {port for u in silent for port, parts in owned.items() if partition_of(u.encode()) in parts}
        a_share = [u for u in silent if partition_of(u.encode()) in owned[a.web_port]]
        assert b.proc is not None
        if request.param == "paused":
            os.kill(b.proc.pid, signal.SIGSTOP)
            stopped = True
        else:
            b.kill()
        beats.silent.update(silent)
        cut = time.time()  # no heartbeat of a silent UTM is dated after this
        # a's own silent UTMs cross the timeout (a second after the cut for the beat's way in);
        # wait until a has run a whole check after that
        crossed = cut + TIMEOUT + 1.0
        wait_for(lambda: a.metric("mimamori_agent_last_progress_seconds", agent="heartbeat-check") > crossed + 1.0,
                 timeout=30, every=0.1, message="a checks past its share's timeout")
        if stopped:
            os.kill(b.proc.pid, signal.SIGCONT)
            stopped = False
        live = [w for w in (a, b) if w.proc is not None and w.proc.poll() is None]
        wait_for(lambda: all(_gauge(w, "mimamori_mass_outage") == 1 for w in live), timeout=90,
                 message="the live workers declare the mass outage")
        wait_for(lambda: sum(w.metric("mimamori_utms", status="offline") for w in live) == len(silent), timeout=90,
                 message="the silent UTMs offline")
        settle(*live)  # a utm-down made now would come out
        mails = list(own_smtp_server.received())[before:]
        yield {"owners": owners, "a_share": a_share, "mails": mails, "silent": silent}
    finally:
        if stopped and b.proc is not None:
            os.kill(b.proc.pid, signal.SIGCONT)
        beats.stopping.set()
        for worker in (a, b):
            worker.stop()


def test_a_stalled_worker_does_not_leave_the_other_to_mail_its_share(stalled_outage: dict[str, Any]) -> None:
    assert len(stalled_outage["owners"]) == 2 and stalled_outage["a_share"], "the silent UTMs are spread over both workers"
    down = [m["X-Mimamori-Utm"] for m in stalled_outage["mails"] if m["X-Mimamori-Kind"] == "utm-down"
            and m["X-Mimamori-Utm"] in stalled_outage["silent"]]
    assert down == [], f"customers were mailed about our own stall: {down}"
