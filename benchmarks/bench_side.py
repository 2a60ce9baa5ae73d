"""The benchmark, side by side in one run (issues 12 and 22): one worker, two workers, a Quix Streams
peer and an Arroyo peer drain the same pre-loaded backlog on one broker; then latency and ★★★ mails
at half the steady rate, the RSS of every process, and the detect state of 100,000 UTMs with 24 h
of dedup; last, every figure of issue 22's targets beside its target, met or not met.

    .venv/bin/python -m benchmarks.bench_side --quick --profile  # what `make bench` runs (~10 minutes)
    .venv/bin/python -m benchmarks.bench_side --full --profile   # every run twice, longer live phase,
                                                                 # more dedup pairs, the restore
    options: --events N --repeat K --latency-seconds S --dedup-pairs N --keep
             --skip-two --skip-quix --skip-arroyo --skip-peer --skip-rss --skip-restore --skip-floor

Each repeat pre-loads the same records (benchmarks/worker_load.py: ~200 UTMs of 40 tenants, ~1%
threats, ~1% resends, one heartbeat a minute per UTM; 200,000 events by default) on fresh topic
prefixes, then:
(p) the peers, each with its own consumer group on the events topic of (a), before (a) adds live
    events to it: benchmarks/quix_peer.py (Quix Streams) and benchmarks/arroyo_peer.py (Sentry's
    Arroyo, the way Snuba's consumers are built); both run this project's validator, dedup and
    correlator and insert the same rows into chdb;
(a) one `mimamori worker` (chdb store, mails to an aiosmtpd sink in this process) drains it; ★★★
    alerts judged during the drain are followed to their mail at the SMTP sink; then live events
    at half its steady rate: event-to-alert and ★★★ mails after their event;
(b) two worker processes on one prefix and one chdb directory;
(f) the floor of the stack (benchmarks/floor.py, --skip-floor): what each part alone costs per
    event here (aiokafka and librdkafka reading the run's events, a transactional produce of a
    batch's rows, the msgspec decoder, a store row, chdb inserts by format), beside the target;
and, with --profile, once more one worker on a fresh prefix under py-spy (every process of it),
whose profile is printed (its figures are not used: the profiler takes CPU from the same 2 cores).

Progress is the committed offsets of the group that reads the events topic (the worker's detect
processor commits in the transaction that writes a batch's alerts, rows and state; a peer commits
after its insert); a run is drained when they reach the topic's end and every unique event row is
stored (a worker's /metrics, asked only then: rendering it four times a second took ~5% of a
worker's CPU). Every figure counts
every process of a run: a worker and the processes it starts (a store holder), a peer; the broker is
excluded. Figures: events/s steady (10%..90% of the backlog taken) and from spawn until all stored;
CPU-seconds per 10,000 events from 10% of the backlog taken until every row is stored (so the
store's tail is in, the start-up is not) and its inverse, events per CPU-second; peak RSS of each
process. The machine may be shared: ratios measured in the same run matter more than rates.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, Callable

import orjson

from benchmarks.bench_worker import (broker_pid, cpu_seconds, metric_values, peak_rss_mib, profile_report,
                                     start_pyspy, stop_pyspy, total)
from benchmarks.worker_load import Load, make_load
from pipeline.config import Topics
from pipeline.io.kafka_admin import PARTITIONS, ensure_topics, topic_specs
from pipeline.models import parse_time
from pipeline.registry_file import registry_from_data
from pipeline.simulate import _wire_time
from tests.support.services import ROOT, KafkaService, SmtpSink, kafka_service
from tests.support.worker import WorkerProcess

try:  # the CLI's producer helpers moved from pipeline/ to the shell package mimamori/
    from mimamori.producer import registry_records  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - before that move
    from pipeline.producer import registry_records

POLL = 0.25
URGENT_WAIT = 10.0
TS_MARK = b"\x00TS\x00"
DEDUP_RATE = 1_000
"""Events a second for the dedup figure: 24 h of them is 86.4 million (utm_id, event_id) pairs."""
TARGETS = {"cpu_per_10k": 0.30, "one_rate": 30_000, "two_ratio": 1.7, "quix_ratio": 3.0, "arroyo_ratio": 1.0,
           "p99_ms": 1_000, "mail_s": URGENT_WAIT + 1, "worker_mb": 500}
"""Issue 22's targets."""
PEERS = {"quix": ("Quix Streams", "benchmarks.quix_peer"), "arroyo": ("Arroyo", "benchmarks.arroyo_peer")}


# --- measuring ------------------------------------------------------------------------------


class ProcessTree:
    """Some root processes and every process they start, followed while they run: CPU seconds
    (user + system, all threads) and peak RSS of each. A process that ends keeps the last figures
    read (its final moments are lost: a fraction of a sampling interval)."""

    def __init__(self, roots: dict[int, str]) -> None:
        self.roots = roots
        self.cpu: dict[int, float] = {}
        self.rss: dict[int, float] = {}
        self.labels: dict[int, str] = {}

    def pids(self) -> list[int]:
        found, todo = [], list(self.roots)
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    todo.extend(int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        return found

    def sample(self) -> float:
        """CPU seconds of the whole tree so far."""
        for pid in self.pids():
            try:
                self.cpu[pid] = cpu_seconds(pid)
                self.rss[pid] = max(self.rss.get(pid, 0.0), peak_rss_mib(pid))
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                continue
            if pid not in self.labels:
                self.labels[pid] = self.roots.get(pid) or self._label(pid)
        return sum(self.cpu.values())

    def _label(self, pid: int) -> str:
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except (FileNotFoundError, ProcessLookupError):
            words = []
        words = [w for w in words if w]
        what = words[words.index("-m") + 1] if "-m" in words[:-1] else " ".join(words)[-60:]
        parent = next((label for root, label in self.roots.items() if self._descends(pid, root)), "?")
        return f"{parent}'s child ({what})"

    def _descends(self, pid: int, root: int) -> bool:
        try:
            while pid > 1:
                if pid == root:
                    return True
                pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return False
        return False

    def rss_list(self) -> list[tuple[str, float, float]]:
        """(process, peak RSS MiB, CPU seconds) of each process."""
        return [(self.labels.get(pid, str(pid)), rss, self.cpu.get(pid, 0.0)) for pid, rss in self.rss.items()]


@dataclass
class Run:
    name: str
    events: int
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(monotonic time, fraction of the backlog done, CPU seconds of all the run's processes). Done:
    committed by the group that reads the events topic: for the workers, the detect processor's
    transactions (the events judged, their alerts, rows and state written); for the peers, after
    their insert. The last sample is the moment every
    unique event row was stored."""
    spawned: float = 0.0
    processes: list[tuple[str, float, float]] = field(default_factory=list)
    """(process, peak RSS MiB, CPU seconds in all) of every process of the run."""
    complete: bool = False
    notes: list[str] = field(default_factory=list)
    profiled: dict[int, str] = field(default_factory=dict)
    """pid -> process, of each process py-spy sampled (its raw profile: pyspy-PID.txt)."""

    def at(self, fraction: float) -> tuple[float, float, float]:
        """(time, fraction, CPU) where the backlog was `fraction` done, interpolated between samples."""
        before = self.samples[0]
        for sample in self.samples:
            if sample[1] >= fraction:
                if sample[1] <= before[1]:
                    return sample
                share = (fraction - before[1]) / (sample[1] - before[1])
                return (before[0] + share * (sample[0] - before[0]), fraction, before[2] + share * (sample[2] - before[2]))
            before = sample
        return self.samples[-1]

    @property
    def steady(self) -> float:
        if not self.samples:
            return float("nan")
        low, high = self.at(0.1), self.at(0.9)
        return (high[1] - low[1]) * self.events / (high[0] - low[0]) if high[0] > low[0] else float("nan")

    @property
    def from_spawn(self) -> float:
        return self.samples[-1][1] * self.events / self.drained if self.samples and self.drained > 0 else float("nan")

    @property
    def cpu_per_10k(self) -> float:
        """CPU seconds of every process of the run per 10,000 events, from 10% of the backlog taken
        until every row is stored (the last sample)."""
        if not self.samples or not self.complete:
            return float("nan")
        low, last = self.at(0.1), self.samples[-1]
        done = (last[1] - low[1]) * self.events
        return (last[2] - low[2]) / done * 10_000 if done > 0 else float("nan")

    @property
    def per_cpu_second(self) -> float:
        """Events per CPU-second (the inverse of cpu_per_10k)."""
        return 10_000 / self.cpu_per_10k if self.cpu_per_10k > 0 else float("nan")

    @property
    def drained(self) -> float:
        """Seconds from spawn until every event was taken and every unique event row stored."""
        return self.samples[-1][0] - self.spawned if self.samples else float("nan")

    @property
    def total_peak_rss(self) -> float:
        return sum(rss for _, rss, _ in self.processes)

    def line(self) -> str:
        return (f"{self.name:<14} {self.steady:>8,.0f} ev/s steady {self.from_spawn:>8,.0f} ev/s spawn to all stored "
                f"({self.drained:5.1f} s)  {self.cpu_per_10k:5.2f} CPU-s/10k = {self.per_cpu_second:>7,.0f} ev/CPU-s  "
                f"peak RSS " + " + ".join(f"{rss:.0f}" for _, rss, _ in self.processes) + " MiB"
                + ("" if self.complete else "  INCOMPLETE") + "".join(f"; {n}" for n in self.notes))


class Committed:
    """A consumer group's committed offsets on one topic, summed over its partitions: how much of a
    backlog it has processed (read from the broker: the processes measured do nothing for it).
    read_uncommitted, so that a group whose transactions are always in flight is answered at once
    (what the broker returns is still only what committed)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                                  "isolation.level": "read_uncommitted"})
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    def done(self, before: float) -> float:
        """Records committed; `before` while the group has no coordinator yet (before its first commit)."""
        from confluent_kafka import KafkaException

        try:
            return float(sum(tp.offset for tp in self.consumer.committed(self.partitions, timeout=10) if tp.offset > 0))
        except KafkaException:
            return before

    def close(self) -> None:
        self.consumer.close()


class TimedSmtpSink(SmtpSink):
    """The test suite's aiosmtpd sink, noting when each mail was handed over."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, Any]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        at = time.time()
        with self._lock:
            self.arrivals.append((at, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


class AlertWatch(threading.Thread):
    """Follows an alerts topic: when each alert first reached ★★★ (receive time and its event's
    timestamp), and every version received (receive time, last_seen)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": 10})
        self.consumer.subscribe([topic])
        self.stopping = threading.Event()
        self.versions: list[tuple[float, datetime, int]] = []
        self.urgent: dict[str, tuple[float, datetime]] = {}

    def run(self) -> None:
        while not self.stopping.is_set():
            for message in self.consumer.consume(num_messages=1000, timeout=0.05):
                if message.error() or message.value() is None:
                    continue
                at = time.time()
                alert = orjson.loads(message.value())
                last_seen = parse_time(alert["last_seen"])
                self.versions.append((at, last_seen, int(alert["grade"])))
                if int(alert["grade"]) >= 3 and alert["alert_id"] not in self.urgent:
                    self.urgent[alert["alert_id"]] = (at, last_seen)
        self.consumer.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def mail_delays(sink: TimedSmtpSink, watch: AlertWatch, since: float, *,
                from_event: bool) -> tuple[list[float], int]:
    """Seconds from each ★★★ alert (first ★★★ version received, or its event's timestamp) to the
    first mail naming it handed to SMTP; and how many ★★★ alerts since `since` have no mail yet."""
    mailed: dict[str, float] = {}
    for at, message in list(sink.arrivals):
        if at < since:  # alert ids come from content: an earlier repeat mailed the same ones
            continue
        for alert_id in (message.get("X-Mimamori-Alerts") or "").split(","):
            if alert_id.strip():
                mailed.setdefault(alert_id.strip(), at)
    delays, missing = [], 0
    for alert_id, (received, last_seen) in list(watch.urgent.items()):
        start = last_seen.timestamp() if from_event else received
        if received < since:
            continue
        if alert_id in mailed:
            delays.append(mailed[alert_id] - start)
        else:
            missing += 1
    return delays, missing


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


# --- loading --------------------------------------------------------------------------------


def fast_producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "batch.size": 1_000_000,
                     "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 1_048_576})


def produce_all(producer: Any, records: list[tuple[str, bytes, bytes]]) -> None:
    for number, (topic, key, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        if number % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("records not acknowledged within 120 s")


def preload(bootstrap: str, topics: Topics, load: Load) -> float:
    started = time.perf_counter()
    ensure_topics(bootstrap, topic_specs(topics))
    registry = registry_from_data(load.registry)
    records = [(t, k, v) for t, k, v in registry_records(registry, topics)]
    records += [(topics.heartbeats, k, v) for k, v in load.heartbeats]
    records += [(topics.events, k, v) for k, v in load.events]
    produce_all(fast_producer(bootstrap), records)
    return time.perf_counter() - started


# --- the runs -------------------------------------------------------------------------------


def new_prefix() -> str:
    return f"b{uuid.uuid4().hex[:6]}."


def run_workers(name: str, count: int, kafka: KafkaService, workdir: Path, load: Load, smtp: str, args: argparse.Namespace,
                *, keep_running: bool = False, watch: bool = False, profile: bool = False,
                preloaded: tuple[str, float] | None = None) -> tuple[Run, list[WorkerProcess], AlertWatch | None]:
    """`preloaded`: (prefix, seconds it took) of topics loaded already. `profile`: py-spy samples
    every process of the first worker from when it is ready until the backlog is drained."""
    prefix = preloaded[0] if preloaded else new_prefix()
    store = f"chdb://{workdir / 'clickhouse'}"
    hooks = str(ROOT / "benchmarks" / "hooks") + os.pathsep + os.environ.get("PYTHONPATH", "")
    workers = [WorkerProcess(kafka.bootstrap, workdir / f"w{i}", smtp, prefix=prefix,
                             extra_env={"MIMAMORI_CLICKHOUSE": store, "PYTHONPATH": hooks,
                                        "MIMAMORI_BENCH_TIMINGS": str(workdir / f"w{i}" / "timings.json"),
                                        "MIMAMORI_MAIL_URGENT_WAIT": f"{URGENT_WAIT:g}s",
                                        "MIMAMORI_MAIL_GROUP_WAIT": "30s", "MIMAMORI_MAIL_GROUP_INTERVAL": "5m"})
               for i in range(count)]
    loaded = preloaded[1] if preloaded else preload(kafka.bootstrap, workers[0].topics, load)
    run = Run(name, len(load.events))
    run.notes.append(f"pre-loaded in {loaded:.1f} s")
    alerts = AlertWatch(kafka.bootstrap, workers[0].topics.alerts) if watch else None
    if alerts is not None:
        alerts.start()
    run.spawned = time.monotonic()
    errors: list[BaseException] = []

    def start(worker: WorkerProcess) -> None:
        try:
            worker.start(wait=180)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    tree: ProcessTree | None = None
    spies: list[subprocess.Popen] = []
    deadline = time.monotonic() + args.timeout
    unique = load.counts["unique_events"]
    stored: dict[int, float] = {}
    offsets = Committed(kafka.bootstrap, workers[0].topics.group("detect"), workers[0].topics.events)
    try:
        while time.monotonic() < deadline:  # sampled from the spawn on: one worker may drain before another is ready
            if errors:
                raise RuntimeError(f"{name}: a worker did not start: {errors[0]}")
            if any(w.proc is not None and w.proc.poll() is not None for w in workers):
                raise RuntimeError(f"{name}: a worker exited:\n" + "\n".join(w.log_tail(30) for w in workers))
            if tree is None and all(w.proc is not None for w in workers):
                tree = ProcessTree({w.proc.pid: f"worker {i}" for i, w in enumerate(workers)})  # type: ignore[union-attr]
            if profile and not spies and not threads[0].is_alive() and tree is not None:
                own = [pid for pid in tree.pids() if tree._descends(pid, workers[0].proc.pid)]  # type: ignore[union-attr]
                spies = [start_pyspy(args.pyspy, pid, workdir / f"pyspy-{pid}.txt", args.rate) for pid in own]
            taken = offsets.done(run.samples[-1][1] * run.events if run.samples else 0.0)
            if taken >= run.events:  # /metrics only now: rendering it 4 times a second cost a worker ~5% of its CPU
                for number, worker in enumerate(workers):
                    try:
                        stored[number] = total(metric_values(worker.metrics()), "mimamori_store_rows_total", table="events")
                    except Exception:  # noqa: BLE001 - busy: asked again at the next poll
                        continue
            cpu = tree.sample() if tree is not None else 0.0
            run.samples.append((time.monotonic(), min(taken / run.events, 1.0), cpu))
            if taken >= run.events and sum(stored.values()) >= unique:
                run.complete = True
                break
            time.sleep(POLL)
        for thread in threads:
            thread.join()
    except BaseException:
        for worker in workers:
            worker.stop()
        if alerts is not None:
            alerts.stop()
        raise
    finally:
        offsets.close()
        for spy in spies:
            stop_pyspy(spy)
    if tree is not None:
        tree.sample()
        run.processes = tree.rss_list()
    if count > 1:
        held = [w for w in workers if "leaves the store to it" not in w.log_text()]
        run.notes.append(f"store held by worker {workers.index(held[0]) if len(held) == 1 else '?'}")
    if tree is not None:
        run.profiled = {int(spy.args[3]): tree.labels.get(int(spy.args[3]), str(spy.args[3])) for spy in spies}  # type: ignore[index]
    if not keep_running:
        for worker in workers:
            worker.stop()
    return run, workers, alerts


def run_peer(kind: str, kafka: KafkaService, workdir: Path, load: Load, events_topic: str,
             args: argparse.Namespace) -> Run:
    title, module = PEERS[kind]
    workdir.mkdir(parents=True, exist_ok=True)
    registry = workdir / "registry.json"
    registry.write_bytes(orjson.dumps(load.registry))
    group = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
    report = workdir / "stored.json"
    run = Run(f"{title} peer", len(load.events))
    run.spawned = time.monotonic()
    log = open(workdir / "peer.log", "wb")
    command = [sys.executable, "-m", module, "--bootstrap", kafka.bootstrap, "--topic", events_topic,
               "--group", group, "--registry", str(registry), "--store", str(workdir / "clickhouse"),
               "--report", str(report)]
    if kind == "quix":
        command += ["--state", str(workdir / "state")]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    tree = ProcessTree({proc.pid: f"{title} peer"})
    offsets = Committed(kafka.bootstrap, group, events_topic)
    try:
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{title} peer exited with {proc.returncode}:\n"
                                   f"{(workdir / 'peer.log').read_text()[-3000:]}")
            done = offsets.done(run.samples[-1][1] * run.events if run.samples else 0.0)
            run.samples.append((time.monotonic(), done / run.events, tree.sample()))
            if done >= run.events:
                run.complete = True
                break
            time.sleep(POLL)
        tree.sample()
        run.processes = tree.rss_list()
    finally:
        offsets.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if report.exists():
        stored = orjson.loads(report.read_bytes())
        run.notes.append(f"stored {stored.get('events', 0):,} event rows")
        if stored.get("events", 0) < load.counts["unique_events"]:
            run.notes.append(f"expected {load.counts['unique_events']:,}")
            run.complete = False
    else:
        run.notes.append("no report of the rows stored")
    return run


# --- live phase: latency at half the maximum rate ---------------------------------------------


def live_lines(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    """`count` event lines with fresh event ids, their timestamp a mark replaced when sent."""
    load = make_load(count, end=datetime.now(timezone.utc), seed=seed)
    lines = []
    for key, value in load.events:
        event = orjson.loads(value)
        event["event_id"] = f"live{seed}-{event['event_id']}"
        event["ts"] = "\x00TS\x00"
        lines.append((key, orjson.dumps(event).replace(b"\\u0000TS\\u0000", TS_MARK)))
    return lines


def send_paced(bootstrap: str, topic: str, lines: list[tuple[bytes, bytes]], rate: float) -> float:
    """Sends at `rate` a second, each line stamped with the moment it is sent; returns seconds taken."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1})
    started = time.monotonic()
    sent = 0
    while sent < len(lines):
        due = min(len(lines), int((time.monotonic() - started) * rate) + 1)
        stamp = _wire_time(datetime.now(timezone.utc)).encode()
        for key, value in lines[sent:due]:
            while True:
                try:
                    producer.produce(topic, value=value.replace(TS_MARK, stamp), key=key)
                    break
                except BufferError:
                    producer.poll(0.01)
        sent = due
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(30)
    return time.monotonic() - started


# --- the whole benchmark ----------------------------------------------------------------------


@dataclass
class Figures:
    """What the summary needs, one entry per repeat (medians are printed)."""

    runs: dict[str, list[Run]] = field(default_factory=dict)
    p99_ms: list[float] = field(default_factory=list)
    half_rate: list[float] = field(default_factory=list)
    live_mail: list[tuple[float, int, int]] = field(default_factory=list)
    """(max seconds after the event, mailed, not mailed) of ★★★ alerts at half rate."""
    backlog_mail: list[tuple[float, int, int]] = field(default_factory=list)
    """(max seconds after the alert, mailed, not mailed) of ★★★ alerts judged while the backlog drained."""
    state: dict[str, float] = field(default_factory=dict)
    restore: dict[str, float] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    """benchmarks/floor.py: each part of the stack alone, microseconds of CPU per event."""

    def add(self, run: Run, workdir: Path | None = None) -> None:
        self.runs.setdefault(run.name, []).append(run)
        if workdir is not None:  # for --keep: the curve behind the figures
            workdir.mkdir(parents=True, exist_ok=True)
            (workdir / f"samples-{run.name.replace(' ', '-')}.json").write_bytes(
                orjson.dumps({"spawned": run.spawned, "events": run.events, "samples": run.samples}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="one repeat, ~10 minutes (the default)")
    mode.add_argument("--full", action="store_true", help="every run twice, a longer live phase, more dedup pairs")
    parser.add_argument("--events", type=int, default=200_000, help="events in the backlog (resends included)")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--utms", type=int, default=100_000, help="UTMs for the RSS figure")
    parser.add_argument("--dedup-share", type=float,
                        help=f"share of the UTMs whose day of dedup pairs is filled for the RSS figure (1: all "
                             f"{DEDUP_RATE * 86400:,} pairs; default 0.01, --full 0.1), scaled up")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one drain")
    parser.add_argument("--skip-two", action="store_true")
    parser.add_argument("--skip-quix", action="store_true")
    parser.add_argument("--skip-arroyo", action="store_true")
    parser.add_argument("--skip-peer", action="store_true", help="both peers")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-restore", action="store_true", help="(--full) no state_restore run")
    parser.add_argument("--skip-floor", action="store_true", help="no floor of the stack (benchmarks/floor.py)")
    parser.add_argument("--profile", action="store_true", help="one more drain of one worker under py-spy")
    parser.add_argument("--pyspy", default=shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"))
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    args.repeat = args.repeat or (2 if args.full else 1)
    args.latency_seconds = args.latency_seconds or (60.0 if args.full else 20.0)
    args.dedup_share = args.dedup_share or (0.1 if args.full else 0.01)
    if args.skip_peer:
        args.skip_quix = args.skip_arroyo = True
    workdir = Path(tempfile.mkdtemp(prefix="bench-side-"))
    try:
        return bench(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def loadavg() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def bench(args: argparse.Namespace, workdir: Path) -> int:
    began = time.monotonic()
    load = make_load(args.events, end=datetime.now(timezone.utc) - timedelta(minutes=1), seed=args.seed)
    print(f"load: {load.counts}, heartbeats {len(load.heartbeats)}; {os.cpu_count()} CPUs, "
          f"load average {loadavg()} (1/5/15 min) at the start", flush=True)
    figures = Figures()
    peers = [kind for kind in PEERS if not getattr(args, f"skip_{kind}")]
    loads: list[float] = [os.getloadavg()[0]]
    kafka = kafka_service(workdir)
    kafka.start()
    sink = TimedSmtpSink()
    sink.start()
    ok = True
    try:
        for repeat in range(args.repeat):
            here = workdir / f"r{repeat}"
            print(f"-- repeat {repeat + 1}/{args.repeat}: {len(load.events):,} events + {len(load.heartbeats):,} "
                  "heartbeats pre-loaded per run", flush=True)
            broker = broker_pid(kafka)
            broker_cpu = process_cpu(broker) if broker else 0.0
            prefix = new_prefix()
            preloaded = (prefix, preload(kafka.bootstrap, Topics().prefixed(prefix), load))
            for kind in peers:  # first: the live phase below adds events to the topic they read
                peer = run_peer(kind, kafka, here / kind, load, Topics().prefixed(prefix).events, args)
                figures.add(peer, here)
                print(peer.line(), flush=True)
                ok &= peer.complete
                loads.append(os.getloadavg()[0])
            watch_started = time.time()
            one, workers, watch = run_workers("one worker", 1, kafka, here / "one", load, sink.url, args,
                                              keep_running=True, watch=True, preloaded=preloaded)
            assert watch is not None
            figures.add(one, here)
            ok &= one.complete
            print(one.line(), flush=True)
            print(timings_line(here / "one" / "w0" / "timings.json", one), flush=True)
            try:
                figures.backlog_mail.append(backlog_mails(sink, watch, watch_started))
                if repeat == 0 or args.full:
                    live_phase(kafka, workers[0], sink, watch, one.steady, args, figures)
            finally:
                watch.stop()
                workers[0].stop()
            loads.append(os.getloadavg()[0])
            if not args.skip_two:
                two, _, _ = run_workers("two workers", 2, kafka, here / "two", load, sink.url, args)
                figures.add(two, here)
                print(two.line(), flush=True)
                print(f"two workers / one worker, steady: {two.steady / one.steady:.2f}x", flush=True)
                ok &= two.complete
                loads.append(os.getloadavg()[0])
            for kind in peers:
                peer = figures.runs[f"{PEERS[kind][0]} peer"][-1]
                print(f"events per CPU-second, one worker / {peer.name}: {one.per_cpu_second / peer.per_cpu_second:.2f}x; "
                      f"steady ev/s {one.steady / peer.steady:.2f}x; spawn to all stored "
                      f"{one.from_spawn / peer.from_spawn:.2f}x", flush=True)
            if broker:
                print(f"broker CPU over the repeat: {process_cpu(broker) - broker_cpu:.0f} s (in no figure)", flush=True)
        if not args.skip_floor:
            figures.floor = floor_parts(kafka.bootstrap, Topics().prefixed(prefix).events, min(args.events, 100_000))
            print("\n".join(floor_table(figures.floor)), flush=True)
        if args.profile:
            profile_run(kafka, workdir / "profile", load, sink.url, args)
        if args.full and not args.skip_restore:
            figures.restore = state_restore(kafka.bootstrap, args.utms)
            print(restore_line(figures.restore), flush=True)
    finally:
        sink.stop()
        kafka.stop()
    if not args.skip_rss:
        figures.state = detect_state(args.utms, args.dedup_share)
        print(state_line(figures.state), flush=True)
    loads.append(os.getloadavg()[0])
    print()
    print("\n".join(summary(figures, args, loads)))
    print(f"bench took {time.monotonic() - began:.0f} s; load average {loadavg()} at the end")
    return 0 if ok else 1


def profile_run(kafka: KafkaService, workdir: Path, load: Load, smtp: str, args: argparse.Namespace) -> None:
    """One worker drains a fresh copy of the backlog (at most its first 60,000 events) while py-spy
    samples each of its processes."""
    events = load.events[:60_000]
    part = Load(load.registry, events, load.heartbeats,
                counts={**load.counts, "events": len(events), "unique_events": len({value for _, value in events})})
    run, _, _ = run_workers("profiled", 1, kafka, workdir, part, smtp, args, profile=True)
    print(f"-- profile (py-spy at {args.rate} Hz, --nonblocking) of one worker draining the backlog: {run.line()}")
    for pid, label in sorted(run.profiled.items()):
        raw = workdir / f"pyspy-{pid}.txt"
        print(f"[{label}]")
        print("\n".join(profile_report(raw, args.top)) if raw.exists() else "  no profile written", flush=True)


def state_rss(utms: int, pairs: int = 0) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.state_rss", "--utms", str(utms)]
    if pairs:
        command += ["--dedup-pairs", str(pairs)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return orjson.loads(done.stdout.strip().splitlines()[-1])


def floor_parts(bootstrap: str, events_topic: str, events: int) -> dict[str, float]:
    """The floor of the stack (benchmarks/floor.py) on this run's broker, reading this run's events."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.floor", "--bootstrap", bootstrap, "--topic", events_topic,
                           "--events", str(events), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    found = [line for line in done.stdout.splitlines() if line.startswith("FLOOR ")]
    if done.returncode or not found:
        print(f"floor failed: {done.stderr[-2000:]}", flush=True)
        return {}
    return orjson.loads(found[-1][len("FLOOR "):])


def floor_table(floor: dict[str, float]) -> list[str]:
    from benchmarks.floor import table

    return table(floor) if floor else ["floor of the stack: not measured"]


def state_restore(bootstrap: str, utms: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.state_restore", "--utms", str(utms),
                           "--bootstrap", bootstrap], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        print(f"state_restore failed: {done.stderr[-2000:]}", flush=True)
        return {}
    return orjson.loads(done.stdout.strip().splitlines()[-1])


DAY_PAIRS = DEDUP_RATE * 86_400
DEDUP_DAY = (ROOT / "benchmarks" / "dedup_day.py").exists()


def _peak_of(command: list[str]) -> tuple[dict[str, float], float]:
    """Runs a benchmark that prints one JSON line; returns it and the process's peak RSS (MiB), read
    from its VmHWM while it runs. Its own getrusage maxrss would not do: Linux carries the maxrss
    of the process that started it (this one, holding the backlog: GiBs) across the exec."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    reader = threading.Thread(target=lambda: setattr(proc, "captured", proc.communicate()), daemon=True)
    reader.start()
    while reader.is_alive():
        try:
            peak = max(peak, peak_rss_mib(proc.pid))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        reader.join(0.2)
    out, err = proc.captured  # type: ignore[attr-defined]
    if proc.returncode:
        raise RuntimeError(err[-2000:])
    return orjson.loads(out.strip().splitlines()[-1]), peak


def detect_state(utms: int, share: float) -> dict[str, float]:
    """RSS of a detect worker's state: `utms` UTMs (registry + Detector, benchmarks/state_rss) and
    the dedup memory of 24 h at DEDUP_RATE events/s spread over them.

    Where benchmarks/dedup_day.py is there, the whole day is loaded as the detect handler loads
    its log's blocks after an assignment (measured, not scaled). Otherwise, with `share` < 1 the
    dedup memory is filled pair by pair on that share of the UTMs, each with its full day of pairs
    (the same structure per UTM as the whole day), and scaled up: 86.4 million pairs one by one
    take longer than the benchmark may."""
    whole = state_rss(utms, DAY_PAIRS if share >= 1 and not DEDUP_DAY else 0)
    if DEDUP_DAY:
        day, peak = _peak_of([sys.executable, "-m", "benchmarks.dedup_day", "--utms", str(utms),
                              "--rate", str(DEDUP_RATE), "--hours", "24"])
        whole.update(share=1.0, source="dedup_day", dedup_pairs=float(day["held"]),
                     dedup_mib=day["rss_mib"] - day["rss_before_mib"],
                     dedup_peak_mib=peak - day["rss_before_mib"],
                     dedup_bytes_per_pair=(day["rss_mib"] - day["rss_before_mib"]) * 2**20 / max(1, day["held"]),
                     dedup_heap_bytes_per_pair=day["heap_bytes_per_pair"], dedup_files_gib=day["files_gib"],
                     dedup_load_s=day["load_s"] + day["seal_s"])
        whole["day_mib"] = whole["detector_mib"] + whole["dedup_mib"]
        return whole
    if share >= 1:
        whole.update(day_mib=whole["detector_mib"] + whole["dedup_mib"], share=1.0)
        return whole
    part = state_rss(max(1, round(utms * share)), round(DAY_PAIRS * share))
    whole.update(dedup_pairs=part["dedup_pairs"], dedup_mib=part["dedup_mib"], share=share,
                 dedup_bytes_per_pair=part["dedup_bytes_per_pair"], sample_utms=part["utms"])
    whole["day_mib"] = whole["detector_mib"] + part["dedup_mib"] / share
    return whole


def state_line(state: dict[str, float]) -> str:
    scaled = state["share"] < 1
    if state.get("source") == "dedup_day":
        dedup = (f"loaded whole as the detect handler restores it (benchmarks/dedup_day): +{state['dedup_mib']:.0f} MiB "
                 f"RSS after ({state['dedup_bytes_per_pair']:.1f} B a pair; heap {state['dedup_heap_bytes_per_pair']} B "
                 f"a pair, the exact records in files of {state['dedup_files_gib']} GiB), +{state['dedup_peak_mib']:.0f} "
                 f"MiB at the peak while loading, {state['dedup_load_s']:.0f} s to load")
    elif scaled:
        dedup = (f"measured on {state['sample_utms']:,.0f} UTMs with their day ({state['dedup_pairs']:,.0f} pairs): "
                 f"+{state['dedup_mib']:.0f} MiB, {state['dedup_bytes_per_pair']:.1f} B a pair, SCALED UP "
                 f"x{1 / state['share']:g} (--dedup-share 1 measures the whole day)")
    else:
        dedup = f"measured: +{state['dedup_mib']:.0f} MiB, {state['dedup_bytes_per_pair']:.1f} B a pair"
    return (f"state of {state['utms']:,.0f} UTMs (registry + Detector fed one heartbeat each, own process): "
            f"{state['detector_mib']:.0f} MiB (after imports {state['imports_mib']:.0f}, with the registry "
            f"{state['registry_mib']:.0f}); dedup memory of 24 h at {DEDUP_RATE:,} ev/s ({DAY_PAIRS:,} pairs) "
            f"{dedup}; the state with its day: {state['day_mib']:,.0f} MiB")


def restore_line(restore: dict[str, float]) -> str:
    if not restore:
        return "restore: not measured"
    return (f"restore of a detect partition (state_restore: {restore['utms']:,} UTMs, {restore['pairs']:,} pairs "
            f"= 1 h at 1,000 ev/s, real broker): read {restore['read_s']} s, restored {restore['restore_s']} s, "
            f"RSS {restore['rss_mib']} MiB; extrapolated to 24 h: read {restore['day_read_s_extrapolated']} s, "
            f"restore {restore['day_restore_s_extrapolated']} s, RSS {restore['day_rss_mib_extrapolated']} MiB")


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def summary(figures: Figures, args: argparse.Namespace, loads: list[float]) -> list[str]:
    """Issue 22's targets, each beside the figure of this run (the median over repeats)."""
    def of(name: str, value: Callable[[Run], float]) -> float:
        return median([value(run) for run in figures.runs.get(name, [])])

    rows: list[tuple[str, str, str, bool | None]] = []

    def row(what: str, measured: str, target: str, met: bool | None) -> None:
        rows.append((what, measured, target, met))

    ones = figures.runs.get("one worker", [])
    twos = figures.runs.get("two workers", [])
    processes = " + ".join(name for name, _, _ in ones[0].processes) if ones else ""
    cpu = of("one worker", lambda r: r.cpu_per_10k)
    row(f"CPU-s per 10,000 events, whole pipeline (one worker: {processes or '?'}; broker excluded)",
        f"{cpu:.2f}", f"<= {TARGETS['cpu_per_10k']:.2f}", cpu <= TARGETS["cpu_per_10k"] if not math.isnan(cpu) else None)
    if twos:
        cpu2 = of("two workers", lambda r: r.cpu_per_10k)
        row("  the same, two workers", f"{cpu2:.2f}", f"<= {TARGETS['cpu_per_10k']:.2f}",
            cpu2 <= TARGETS["cpu_per_10k"] if not math.isnan(cpu2) else None)
    rate = of("one worker", lambda r: r.steady)
    row("one worker, events/s steady (Kafka and the store on the same 2 cores)", f"{rate:,.0f}",
        f">= {TARGETS['one_rate']:,}", rate >= TARGETS["one_rate"] if not math.isnan(rate) else None)
    if twos:
        ratio = median([two.steady / one.steady for one, two in zip(ones, twos)])
        rate2 = of("two workers", lambda r: r.steady)
        row(f"two workers / one, steady ({rate2:,.0f} ev/s)", f"{ratio:.2f}x", f">= {TARGETS['two_ratio']}x",
            ratio >= TARGETS["two_ratio"] if not math.isnan(ratio) else None)
    for kind, key in (("quix", "quix_ratio"), ("arroyo", "arroyo_ratio")):
        name = f"{PEERS[kind][0]} peer"
        peers = figures.runs.get(name, [])
        if not peers:
            row(f"events per CPU-second, one worker / {name}", "not run", f">= {TARGETS[key]:g}x", None)
            continue
        ratio = median([one.per_cpu_second / peer.per_cpu_second for one, peer in zip(ones, peers)])
        row(f"events per CPU-second, one worker / {name} ({of('one worker', lambda r: r.per_cpu_second):,.0f} / "
            f"{of(name, lambda r: r.per_cpu_second):,.0f})", f"{ratio:.2f}x", f">= {TARGETS[key]:g}x",
            ratio >= TARGETS[key] if not math.isnan(ratio) else None)
    p99 = median(figures.p99_ms)
    row(f"p99 event-to-alert at half the steady rate ({median(figures.half_rate):,.0f} ev/s)", f"{p99:,.0f} ms",
        f"<= {TARGETS['p99_ms']:,} ms", p99 <= TARGETS["p99_ms"] if not math.isnan(p99) else None)
    for title, entries in ((f"every ★★★ mail handed to SMTP at half rate: max after its event", figures.live_mail),
                           (f"every ★★★ mail handed to SMTP while a {args.events:,}-event backlog drains: max after "
                            "its alert", figures.backlog_mail)):
        if not entries:
            row(title, "not run", f"<= {TARGETS['mail_s']:g} s", None)
            continue
        worst = max(e[0] for e in entries)
        mailed, missing = sum(e[1] for e in entries), sum(e[2] for e in entries)
        row(f"{title} ({mailed} mailed, {missing} not)", f"{worst:.1f} s", f"<= {TARGETS['mail_s']:g} s",
            None if not mailed and not missing else (worst <= TARGETS["mail_s"] and not missing))
    if figures.state and ones:
        day, extrapolated = figures.state["day_mib"], figures.state["share"] < 1
        worker_rss = median([next((rss for name, rss, _ in run.processes if name == "worker 0"), float("nan"))
                             for run in ones])
        estimate = worker_rss + day - figures.state["imports_mib"]
        row(f"detect worker RSS, {figures.state['utms']:,.0f} UTMs + 24 h of dedup at {DEDUP_RATE:,} ev/s: the worker's "
            f"peak ({worker_rss:.0f} MiB) + the state's ({day - figures.state['imports_mib']:,.0f} MiB"
            + (f", dedup SCALED UP from {figures.state['sample_utms']:,.0f} UTMs' day" if extrapolated else "") + ")",
            f"{estimate * 2**20 / 1e6:,.0f} MB", f"<= {TARGETS['worker_mb']} MB", estimate * 2**20 / 1e6 <= TARGETS["worker_mb"])
        row("  the state alone in a process of its own (imports, registry, Detector, the dedup day"
            + (f"; +{figures.state['dedup_peak_mib']:.0f} MiB at the peak while loading it" if "dedup_peak_mib" in figures.state
               else "") + ")", f"{day * 2**20 / 1e6:,.0f} MB", f"<= {TARGETS['worker_mb']} MB",
            day * 2**20 / 1e6 <= TARGETS["worker_mb"])
    lines = [f"== issue 22's targets, measured in this run ({args.repeat} repeat(s), medians; load average "
             f"{min(loads):.1f}-{max(loads):.1f} while it ran, on {os.cpu_count()} CPUs)"]
    for what, measured, target, met in rows:
        verdict = "met" if met else ("n/a" if met is None else "NOT met")
        lines.append(f"{verdict:>8}  {measured:>10}  (target {target:<11})  {what}")
    lines.append("each process: peak RSS, and CPU seconds from its start to the drain's end (first repeat):")
    for name, runs in figures.runs.items():
        for run in runs[:1]:
            lines.append(f"  {name}: " + "; ".join(f"{label} {rss:,.0f} MiB, {cpu:,.1f} CPU-s"
                                                   for label, rss, cpu in run.processes))
    if figures.restore:
        lines.append(restore_line(figures.restore))
    if figures.floor:
        lines.extend(floor_table(figures.floor))
    return lines


def timings_line(path: Path, run: Run) -> str:
    """Where the one worker's drain went, from the hooks in benchmarks/hooks (wall seconds)."""
    if not path.exists():
        return "timings: none written (hooks not loaded?)"
    spent = orjson.loads(path.read_bytes())
    wall = run.at(1.0)[0] - run.spawned
    idle = ("mirror", "notices", "route-verdicts", "mail-timing: getmany", "mail-sender: getmany", "report")
    parts = sorted(((k, v) for k, v in spent.items() if not any(word in k for word in idle)), key=lambda kv: -kv[1][0])
    return (f"where the one worker's time went (wall seconds over the {wall:.0f} s from spawn to drained, "
            "awaits overlap across processors): " + "; ".join(f"{name} {seconds:.1f} s/{calls}"
                                                           for name, (seconds, calls) in parts[:12]))


def backlog_mails(sink: TimedSmtpSink, watch: AlertWatch, since: float) -> tuple[float, int, int]:
    """★★★ alerts judged while the backlog drained: their mails, waited for up to the urgent wait + 5 s."""
    deadline = time.time() + URGENT_WAIT + 5
    while time.time() < deadline:
        time.sleep(1)
        delays, missing = mail_delays(sink, watch, since, from_event=False)
        if watch.urgent and not missing:
            break
    delays, missing = mail_delays(sink, watch, since, from_event=False)
    print(f"★★★ mails during the backlog drain: {len(delays)} alerts mailed, {missing} not (yet); handed to SMTP "
          f"p50 {pct(delays, 0.5):.1f} s, max {max(delays, default=float('nan')):.1f} s after the alert was "
          f"published (urgent wait {URGENT_WAIT:g} s; the events were in the backlog before)", flush=True)
    return max(delays, default=float("nan")), len(delays), missing


def live_phase(kafka: KafkaService, worker: WorkerProcess, sink: TimedSmtpSink, watch: AlertWatch, rate: float,
               args: argparse.Namespace, figures: Figures) -> None:
    half = rate / 2
    lines = live_lines(max(1000, int(half * args.latency_seconds)), seed=args.seed + 1000 + len(figures.half_rate))
    started = time.time()
    took = send_paced(kafka.bootstrap, worker.topics.events, lines, half)
    time.sleep(3)
    latencies = [at - last_seen.timestamp() for at, last_seen, _ in list(watch.versions)
                 if last_seen.timestamp() >= started - 0.01]
    figures.half_rate.append(len(lines) / took)
    figures.p99_ms.append(pct(latencies, 0.99) * 1000)
    print(f"live at half the steady rate ({half:,.0f} ev/s asked, {len(lines):,} events in {took:.1f} s): event-to-alert "
          f"p50 {pct(latencies, 0.5) * 1000:.0f} ms, p99 {pct(latencies, 0.99) * 1000:.0f} ms, "
          f"max {max(latencies, default=float('nan')) * 1000:.0f} ms over {len(latencies)} alert versions", flush=True)
    deadline = time.time() + URGENT_WAIT + 5
    while time.time() < deadline and mail_delays(sink, watch, started, from_event=True)[1]:
        time.sleep(1)
    delays, missing = mail_delays(sink, watch, started, from_event=True)
    figures.live_mail.append((max(delays, default=float("nan")), len(delays), missing))
    print(f"★★★ mails at half rate: {len(delays)} alerts mailed, {missing} not; handed to SMTP p50 "
          f"{pct(delays, 0.5):.1f} s, max {max(delays, default=float('nan')):.1f} s after the event "
          f"(target: urgent wait {URGENT_WAIT:g} s + 1 s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
