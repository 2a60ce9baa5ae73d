"""Nothing lost, nothing doubled (issue 10): a worker SIGKILLed twenty times at different moments —
before its first commit, while it reads its saved state, mid batch, right after alerts, while mails
go out — and started again each time. At the end every input line is accounted for (a stored
event, a duplicate or a rejection), the alerts are those replay makes, every alert is mailed once
per grade the customer was told, and no Message-ID arrives twice."""
from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.io.kafka_admin import PARTITIONS
from pipeline.simulate import Simulation
from tests.support.flows import final_alerts, publish_registry, send_lines, stored_events
from tests.support.services import KILL_REPEAT_WINDOW, ROOT, KafkaService, SmtpSink, copies_unexplained_by_kills
from tests.support.worker import (
    MAIL_HOLD, PROCESSOR_INPUTS, WorkerProcess, committed_up_to, end_offsets, read_to_end, settle, wait_for,
)

ITERATIONS = 20
KILLED_AT: list[float] = []
MOMENTS = ("at-start", "restoring", "mid-batch", "after-alert", "mailing")


def launch(worker: WorkerProcess) -> None:
    """Start the worker process without waiting for it to be ready (so it can die while starting).
    The topics were made once by the fixture (and the worker checks them itself as it starts)."""
    worker.workdir.mkdir(parents=True, exist_ok=True)
    worker.starts += 1
    log = open(worker.workdir / f"worker-{worker.starts}.log", "wb")
    worker.proc = subprocess.Popen([sys.executable, "-m", "mimamori.cli", "worker", "--loglevel", "info"],
                                   cwd=ROOT, env=worker.env, stdout=log, stderr=subprocess.STDOUT)


class AlertCount:
    """How many records the alerts topic holds (uncommitted ones too), read on by one consumer: a
    new alert is seen within a poll, where re-reading the whole topic took a second or more."""

    def __init__(self, worker: WorkerProcess) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=worker.bootstrap, group_id=None, enable_auto_commit=False)
        partitions = [TopicPartition(worker.topics.alerts, p) for p in range(PARTITIONS)]
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning(*partitions)
        self.partitions = partitions
        self.count = 0

    def now(self) -> int:
        for records in self.consumer.poll(timeout_ms=50, max_records=20_000).values():
            self.count += len(records)
        return self.count

    def until_end(self) -> int:
        """The count up to the topic's end as it is now: what comes after is new."""
        ends = self.consumer.end_offsets(self.partitions)
        deadline = time.monotonic() + 30
        while any(self.consumer.position(tp) < end for tp, end in ends.items()) and time.monotonic() < deadline:
            self.now()
        return self.count

    def close(self) -> None:
        self.consumer.close()


class Idle(threading.Thread):
    """Whether the worker, left alone, will make nothing more: the condition under which a wait for
    an alert or a mail gives up (the kill then comes at once instead of when the wait's 30 s bound
    is over, the worker idle all that time: the last chunks bring no new alert). Looked at in the
    background once a second (each look opens consumers), so that the wait itself still sees an
    alert or a mail within its 0.05 s."""

    def __init__(self, worker: WorkerProcess, processors: tuple[str, ...], hold: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.worker, self.processors, self.hold = worker, processors, hold
        self.idle = threading.Event()
        self.over = threading.Event()
        self.start()

    def __bool__(self) -> bool:
        return self.idle.is_set()

    def stop(self) -> None:
        """No more looks (one under way ends by itself: the wait does not wait for it)."""
        self.over.set()

    def run(self) -> None:
        since: float | None = None
        while not self.over.wait(1.0):
            try:
                quiet = self._quiet()
            except Exception:  # noqa: BLE001 - the worker went (killed) or the broker was slow: not idle
                quiet = False
            now = time.monotonic()
            since = (since if since is not None else now) if quiet else None
            if since is not None and now - since >= self.hold:
                self.idle.set()
                return

    def _quiet(self) -> bool:
        """Each processor committed its inputs to their ends as they are when its turn comes (the
        detect processor: everything sent; the mail timing: every alert made ...), and, when mails
        count, the sender has none waiting. Held for `hold` seconds (settle's MAIL_HOLD: what the
        mail timing may keep back) this is settle()'s condition."""
        worker, topics = self.worker, self.worker.topics
        for name in self.processors:
            ends = end_offsets(worker.bootstrap, [getattr(topics, t) for t in PROCESSOR_INPUTS[name]])
            if not committed_up_to(worker.bootstrap, topics.group(name), ends):
                return False
        return "mail-sender" not in self.processors or worker.metric("mimamori_mail_oldest_undelivered_age_seconds") == 0


def kill_at(worker: WorkerProcess, moment: str, smtp: SmtpSink, step: int, alerts: AlertCount) -> str:
    """Wait for the moment, then SIGKILL; returns what was seen when it died. A wait for an alert or
    a mail gives up after 30 s, or once the worker is idle with none made (`Idle`)."""
    started = time.monotonic()
    came = ""
    if moment == "at-start":
        time.sleep(0.3 + 0.2 * (step % 3))
    elif moment == "restoring":
        wait_for(lambda: "partitions" in worker.log_text() or time.monotonic() - started > 20, timeout=30, every=0.05)
    elif moment == "mid-batch":
        wait_for(lambda: "detect: partitions" in worker.log_text(), timeout=60, every=0.05)
        time.sleep(0.2 + 0.15 * (step % 4))
    elif moment == "after-alert":
        before, idle = alerts.until_end(), Idle(worker, ("detect",))
        wait_for(lambda: alerts.now() > before or idle or time.monotonic() - started > 30, timeout=40, every=0.05)
        idle.stop()
        came = "" if alerts.count > before else " (no alert: idle)" if idle else " (no alert)"
    elif moment == "mailing":
        before, idle = len(smtp.received()), Idle(worker, tuple(PROCESSOR_INPUTS), hold=MAIL_HOLD)
        wait_for(lambda: len(smtp.received()) > before or idle or time.monotonic() - started > 30,
                 timeout=40, every=0.05)
        idle.stop()
        came = "" if len(smtp.received()) > before else " (no mail: idle)" if idle else " (no mail)"
    worker.kill()
    KILLED_AT.append(time.time())
    return f"{moment} after {time.monotonic() - started:.1f}s{came}"


@pytest.fixture(scope="module")
def chaos(kafka: KafkaService, own_smtp_server: SmtpSink, sim: Simulation, replayed: tuple[list, Path],
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("kill-loop"), own_smtp_server.url)
    worker.create_topics()
    publish_registry(worker, sim)
    lines = sim.lines
    chunk = -(-len(lines) // ITERATIONS)
    deaths = []
    started = time.monotonic()
    alerts = AlertCount(worker)
    try:
        for step in range(ITERATIONS):
            launch(worker)
            send_lines(worker, lines[step * chunk:(step + 1) * chunk])
            deaths.append(kill_at(worker, MOMENTS[step % len(MOMENTS)], own_smtp_server, step, alerts))
        worker.start()
        worker.caught_up("detect", timeout=240)  # every input line committed
        records, _ = replayed
        mailed = {i for r in records if r["record"] == "mail" and r["kind"] == "alert" for i in r["alert_ids"]}
        wait_for(lambda: mailed <= {i.strip() for m in own_smtp_server.received() if m["X-Mimamori-Kind"] == "alert"
                                    for i in str(m["X-Mimamori-Alerts"]).split(",")},
                 timeout=120, message="every alert replay mails mailed (the last groups' wait and interval)")
        settle(worker)  # every outbox mail delivered, and a repeat would have come
        metrics = worker.metrics()
        log = "\n".join((worker.workdir / f"worker-{n}.log").read_text(errors="replace")
                        for n in range(1, worker.starts + 1))
    finally:
        alerts.close()
        worker.stop()
    print(f"kill loop: {ITERATIONS} kills in {time.monotonic() - started:.0f}s: {deaths}")
    return {"worker": worker, "deaths": deaths, "metrics": metrics, "log": log,
            "alerts": [orjson.loads(v) for _, v in read_to_end(kafka.bootstrap, worker.topics.alerts)],
            "rejections": [orjson.loads(v) for _, v in read_to_end(kafka.bootstrap, worker.topics.rejected)],
            "mails": own_smtp_server.received(),
            "arrivals": list(zip(own_smtp_server.received(), list(own_smtp_server.arrivals))),
            "killed_at": list(KILLED_AT)}


def test_every_line_is_stored_once_or_rejected(chaos: dict[str, Any], sim: Simulation,
                                               replayed: tuple[list, Path]) -> None:
    records, replay_store = replayed
    rows, distinct = stored_events(chaos["worker"].store_url)
    expected_rows, _ = stored_events(f"chdb://{replay_store}")
    assert distinct == expected_rows, "events lost"
    assert rows == distinct, f"{rows - distinct} event rows stored twice"
    refused = {(r["topic"], r["partition"], r["offset"]) for r in chaos["rejections"]}
    expected_refused = sum(sim.expected["counts"]["rejections"].values())
    assert len(refused) == expected_refused, collections.Counter(r["reason"] for r in chaos["rejections"])
    assert {r["reason"] for r in chaos["rejections"]} <= set(sim.expected["counts"]["rejections"])
    assert len([r for r in records if r["record"] == "rejection"]) == expected_refused


def test_the_alerts_are_those_replay_makes(chaos: dict[str, Any], replayed: tuple[list, Path]) -> None:
    records, _ = replayed
    expected = final_alerts([r for r in records if r["record"] == "alert"])
    assert expected
    assert final_alerts(chaos["alerts"]) == expected


def test_each_alert_is_mailed_once_per_grade_told(chaos: dict[str, Any], replayed: tuple[list, Path]) -> None:
    records, _ = replayed
    grades: dict[str, set[int]] = collections.defaultdict(set)
    for alert in chaos["alerts"]:
        grades[alert["alert_id"]].add(alert["grade"])
    named: collections.Counter[str] = collections.Counter()
    seen: set[str] = set()
    for mail in chaos["mails"]:
        if mail["X-Mimamori-Kind"] == "alert" and str(mail["Message-ID"]) not in seen:
            seen.add(str(mail["Message-ID"]))
            named.update(a.strip() for a in str(mail["X-Mimamori-Alerts"]).split(","))
    mailed_by_replay = {a for r in records if r["record"] == "mail" and r["kind"] == "alert" for a in r["alert_ids"]}
    assert mailed_by_replay and mailed_by_replay <= set(named), "alerts replay mails that the worker never mailed"
    too_often = {a: n for a, n in named.items() if n > len(grades[a])}
    assert too_often == {}


def test_a_message_id_repeats_only_for_a_kill_between_smtp_and_the_ledger(chaos: dict[str, Any]) -> None:
    """The one repeat no design removes: a SIGKILL after the SMTP server took a mail and before the
    sender's ledger recorded it (the kills "mailing" aim at that moment; the sender delivers several
    mails at once, so one kill may repeat each of those in flight). The repeat then carries the same
    Message-ID, so the customer's mail client shows one mail. Every copy but the last of a repeated
    mail must be followed by a kill within KILL_REPEAT_WINDOW; any other repeat fails."""
    arrivals = [(str(mail["Message-ID"]), at) for mail, at in chaos["arrivals"]]
    assert arrivals
    unexplained = copies_unexplained_by_kills(arrivals, chaos["killed_at"], KILL_REPEAT_WINDOW)
    assert unexplained == {}, unexplained


def test_the_kills_hit_every_moment(chaos: dict[str, Any]) -> None:
    assert len(chaos["deaths"]) == ITERATIONS
    assert {d.split()[0] for d in chaos["deaths"]} == set(MOMENTS)
    assert "Traceback" not in chaos["log"], chaos["log"][-3000:]


