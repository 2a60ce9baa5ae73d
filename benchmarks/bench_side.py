"""The benchmark, side by side in one run (issue 12, part 4): one worker, two workers and a Quix
Streams peer drain the same pre-loaded backlog on one broker; then latency at half the maximum rate,
★★★ mails handed to SMTP, and RSS with the state of 100,000 UTMs.

    .venv/bin/python -m benchmarks.bench_side --quick     # what `make bench` runs, under 5 minutes
    .venv/bin/python -m benchmarks.bench_side --full      # 200,000 events, every run twice
    options: --events N --repeat K --latency-seconds S --profile --keep --skip-two --skip-peer

Each repeat pre-loads the same records (benchmarks/worker_load.py: ~200 UTMs of 40 tenants, ~1%
threats, ~1% resends, one heartbeat a minute per UTM) on fresh topic prefixes, then:
(a) one `mimamori worker` (chdb store, mails to an aiosmtpd sink in this process) drains it; ★★★
    alerts judged during the drain are followed to their mail at the SMTP sink; with --profile py-spy
    samples it while it drains;
(b) two worker processes on one prefix and one chdb directory (the embedded store is held by one of
    them, which runs the store processor; the other leaves the store to it);
(c) the peer (benchmarks/quix_peer.py, Quix Streams) reads (a)'s events topic with its own group.
A run is drained when every event is taken and every unique event row is stored (for the peer: its
committed offsets, which it commits after its sink's insert, reach the topic's end).

Figures: events/s from spawn and steady (10%..90% of the backlog); CPU-seconds per 10,000 events
(process CPU, broker excluded) and peak RSS; our steady rate divided by the peer's, per repeat.
Then (a) takes live events at half its steady rate for --latency-seconds: event-to-alert p50/p99
(alert received from the alerts topic minus the event's timestamp, set to the moment it was sent),
and ★★★ mails handed to SMTP after their event. Last, benchmarks/state_rss in a process of its own.
The machine may be shared: compare the ratios, measured in the same run, more than absolute rates.
"""
from __future__ import annotations

import argparse
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
from typing import Any

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


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    events: int
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(monotonic time, fraction of the backlog done, CPU seconds of the run's processes). Done: for
    the workers, taken by the detect processor (judged, its messages and rows acknowledged by
    Kafka; the store processor inserts in jumps of up to 4 million rows, too coarse for a curve);
    for the peer, committed after its sink's insert."""
    spawned: float = 0.0
    peak_rss: list[float] = field(default_factory=list)
    complete: bool = False
    notes: list[str] = field(default_factory=list)

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
        low, high = self.at(0.1), self.at(0.9)
        return (high[1] - low[1]) * self.events / (high[0] - low[0]) if high[0] > low[0] else float("nan")

    @property
    def from_spawn(self) -> float:
        return self.samples[-1][1] * self.events / self.drained

    @property
    def cpu_per_10k(self) -> float:
        low, high = self.at(0.1), self.at(0.9)
        done = (high[1] - low[1]) * self.events
        return (high[2] - low[2]) / done * 10_000 if done else float("nan")

    @property
    def drained(self) -> float:
        """Seconds from spawn until every event was taken and every unique event row stored."""
        return self.samples[-1][0] - self.spawned

    def line(self) -> str:
        return (f"{self.name:<16} {self.steady:>9,.0f} ev/s steady {self.from_spawn:>9,.0f} ev/s spawn to all stored "
                f"({self.drained:5.1f} s) {self.cpu_per_10k:6.2f} CPU-s/10k  peak RSS "
                f"{' + '.join(f'{r:.0f}' for r in self.peak_rss)} MiB" + ("" if self.complete else "  INCOMPLETE")
                + "".join(f"; {n}" for n in self.notes))


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
    for at, message in sink.arrivals:
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
                *, keep_running: bool = False, watch: bool = False,
                preloaded: tuple[str, float] | None = None) -> tuple[Run, list[WorkerProcess], AlertWatch | None]:
    """`preloaded`: (prefix, seconds it took) of topics loaded already."""
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
    pyspy = None
    deadline = time.monotonic() + args.timeout
    unique = load.counts["unique_events"]
    last: dict[int, tuple[float, float]] = {}
    while time.monotonic() < deadline:  # sampled from the spawn on: one worker may drain before another is ready
        if errors:
            for worker in workers:
                worker.stop()
            if alerts is not None:
                alerts.stop()
            raise RuntimeError(f"{name}: a worker did not start: {errors[0]}")
        if any(w.proc is not None and w.proc.poll() is not None for w in workers):
            raise RuntimeError(f"{name}: a worker exited:\n" + "\n".join(w.log_tail(30) for w in workers))
        if pyspy is None and args.profile and count == 1 and not args.profiled and not threads[0].is_alive():
            pyspy = start_pyspy(args.pyspy, workers[0].proc.pid, workdir / "pyspy.txt", args.rate)  # type: ignore[union-attr]
        for number, worker in enumerate(workers):
            try:
                values = metric_values(worker.metrics())
            except Exception:  # noqa: BLE001 - its web server is not up yet, or busy
                continue
            last[number] = (total(values, "mimamori_records_total", topic=worker.topics.events),
                            total(values, "mimamori_store_rows_total", table="events"))
        taken = sum(t for t, _ in last.values())
        stored = sum(s for _, s in last.values())
        cpu = sum(process_cpu(w.proc.pid) for w in workers if w.proc is not None)
        run.samples.append((time.monotonic(), min(taken / run.events, 1.0), cpu))
        if taken >= run.events and stored >= unique:
            run.complete = True
            break
        time.sleep(POLL)
    for thread in threads:
        thread.join()
    if pyspy is not None:
        stop_pyspy(pyspy)
    run.peak_rss = [peak_rss_mib(w.proc.pid) for w in workers]  # type: ignore[union-attr]
    if count > 1:
        held = [w for w in workers if "leaves the store to it" not in w.log_text()]
        run.notes.append(f"store held by worker {workers.index(held[0]) if len(held) == 1 else '?'}")
    if not keep_running:
        for worker in workers:
            worker.stop()
    return run, workers, alerts


def run_peer(kafka: KafkaService, workdir: Path, load: Load, events_topic: str, args: argparse.Namespace) -> Run:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    workdir.mkdir(parents=True, exist_ok=True)
    registry = workdir / "registry.json"
    registry.write_bytes(orjson.dumps(load.registry))
    group = f"bench-quix-{uuid.uuid4().hex[:6]}"
    report = workdir / "stored.json"
    run = Run("Quix Streams", len(load.events))
    run.spawned = time.monotonic()
    log = open(workdir / "peer.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.quix_peer", "--bootstrap", kafka.bootstrap,
                             "--topic", events_topic, "--group", group, "--registry", str(registry),
                             "--store", str(workdir / "clickhouse"), "--state", str(workdir / "state"),
                             "--report", str(report)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    offsets = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "enable.auto.commit": False})
    partitions = [TopicPartition(events_topic, p) for p in range(PARTITIONS)]
    try:
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"peer exited with {proc.returncode}:\n{(workdir / 'peer.log').read_text()[-3000:]}")
            try:
                done = sum(tp.offset for tp in offsets.committed(partitions, timeout=10) if tp.offset > 0)
            except KafkaException:  # the group's coordinator is not there before its first commit
                done = run.samples[-1][1] * run.events if run.samples else 0
            run.samples.append((time.monotonic(), done / run.events, process_cpu(proc.pid)))
            if done >= run.events:
                run.complete = True
                break
            time.sleep(POLL)
        run.peak_rss = [peak_rss_mib(proc.pid)]
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
        run.notes.append(f"stored {stored.get('events', 0)} event rows")
        if stored.get("events", 0) < load.counts["unique_events"]:
            run.complete = False
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
            producer.produce(topic, value=value.replace(TS_MARK, stamp), key=key)
        sent = due
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(30)
    return time.monotonic() - started


# --- the whole benchmark ----------------------------------------------------------------------


def state_rss(utms: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.state_rss", "--utms", str(utms)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return orjson.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="under 5 minutes (the default)")
    mode.add_argument("--full", action="store_true", help="200,000 events, each run twice, a longer live phase")
    parser.add_argument("--events", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--utms", type=int, default=100_000, help="UTMs for the RSS figure")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one drain")
    parser.add_argument("--skip-two", action="store_true")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy on the one worker while it drains")
    parser.add_argument("--pyspy", default=shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"))
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    args.profiled = False
    args.events = args.events or (200_000 if args.full else 60_000)
    args.repeat = args.repeat or (2 if args.full else 1)
    args.latency_seconds = args.latency_seconds or (60.0 if args.full else 15.0)
    workdir = Path(tempfile.mkdtemp(prefix="bench-side-"))
    try:
        return bench(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def bench(args: argparse.Namespace, workdir: Path) -> int:
    began = time.monotonic()
    load = make_load(args.events, end=datetime.now(timezone.utc) - timedelta(minutes=1), seed=args.seed)
    print(f"load: {load.counts}, heartbeats {len(load.heartbeats)}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    kafka = kafka_service(workdir)
    kafka.start()
    sink = TimedSmtpSink()
    sink.start()
    ratios: list[tuple[float, float]] = []
    ok = True
    try:
        for repeat in range(args.repeat):
            here = workdir / f"r{repeat}"
            print(f"-- repeat {repeat + 1}/{args.repeat}: {len(load.events):,} events + {len(load.heartbeats):,} "
                  "heartbeats pre-loaded per run", flush=True)
            broker = broker_pid(kafka)
            prefix = new_prefix()
            preloaded = (prefix, preload(kafka.bootstrap, Topics().prefixed(prefix), load))
            peer = None
            if not args.skip_peer:  # first: the live phase below adds events to the topic it reads
                peer = run_peer(kafka, here / "peer", load, Topics().prefixed(prefix).events, args)
                print(peer.line(), flush=True)
            watch_started = time.time()
            one, workers, watch = run_workers("one worker", 1, kafka, here / "one", load, sink.url, args,
                                              keep_running=True, watch=True, preloaded=preloaded)
            assert watch is not None
            print(one.line(), flush=True)
            print(timings_line(here / "one" / "w0" / "timings.json", one), flush=True)
            try:
                backlog_mails(sink, watch, watch_started)
                if repeat == 0:
                    live_phase(kafka, workers[0], sink, watch, one.steady, args)
                    if args.profile:
                        args.profiled = True
                        print("py-spy ran on this repeat's one worker (later repeats run without it)")
                        print("\n".join(profile_report(here / "one" / "pyspy.txt", args.top)), flush=True)
            finally:
                watch.stop()
                workers[0].stop()
            if not args.skip_two:
                two, _, _ = run_workers("two workers", 2, kafka, here / "two", load, sink.url, args)
                print(two.line(), flush=True)
                ok &= two.complete
            else:
                two = None
            ok &= one.complete and (peer is None or peer.complete)
            if peer is not None:
                ratios.append((one.steady / peer.steady, (two.steady if two else float("nan")) / peer.steady,
                               one.from_spawn / peer.from_spawn, (two.from_spawn if two else float("nan")) / peer.from_spawn))
                print(f"ratio to the peer, steady ev/s: one worker {ratios[-1][0]:.2f}x, two workers {ratios[-1][1]:.2f}x; "
                      f"spawn to all stored: one worker {ratios[-1][2]:.2f}x, two workers {ratios[-1][3]:.2f}x; "
                      f"CPU per event, peer/one worker {peer.cpu_per_10k / one.cpu_per_10k:.2f}x", flush=True)
            if broker:
                print(f"broker CPU over the repeat: {process_cpu(broker):.0f} s since its start", flush=True)
        if len(ratios) > 1:
            print(f"ratio to the peer over {len(ratios)} repeats (steady; spawn to all stored): one worker median "
                  f"{statistics.median(r[0] for r in ratios):.2f}x, min {min(r[0] for r in ratios):.2f}x; "
                  f"{statistics.median(r[2] for r in ratios):.2f}x, min {min(r[2] for r in ratios):.2f}x; "
                  f"two workers median {statistics.median(r[1] for r in ratios):.2f}x; "
                  f"{statistics.median(r[3] for r in ratios):.2f}x")
    finally:
        sink.stop()
        kafka.stop()
    if not args.skip_rss:
        figures = state_rss(args.utms)
        print(f"RSS with {figures['utms']:,.0f} UTMs of state (registry + Detector fed one heartbeat each, own "
              f"process): {figures['detector_mib']:.0f} MiB (peak {figures['peak_mib']:.0f}; after imports "
              f"{figures['imports_mib']:.0f}, with the registry {figures['registry_mib']:.0f})", flush=True)
    print(f"bench took {time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")
    return 0 if ok else 1


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


def backlog_mails(sink: TimedSmtpSink, watch: AlertWatch, since: float) -> None:
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


def live_phase(kafka: KafkaService, worker: WorkerProcess, sink: TimedSmtpSink, watch: AlertWatch, rate: float,
               args: argparse.Namespace) -> None:
    half = rate / 2
    lines = live_lines(max(1000, int(half * args.latency_seconds)), seed=args.seed + 1000)
    started = time.time()
    took = send_paced(kafka.bootstrap, worker.topics.events, lines, half)
    time.sleep(3)
    latencies = [at - last_seen.timestamp() for at, last_seen, _ in list(watch.versions)
                 if last_seen.timestamp() >= started - 0.01]
    print(f"live at half the steady rate ({half:,.0f} ev/s, {len(lines):,} events in {took:.1f} s): event-to-alert "
          f"p50 {pct(latencies, 0.5) * 1000:.0f} ms, p99 {pct(latencies, 0.99) * 1000:.0f} ms, "
          f"max {max(latencies, default=float('nan')) * 1000:.0f} ms over {len(latencies)} alert versions", flush=True)
    deadline = time.time() + URGENT_WAIT + 5
    while time.time() < deadline and mail_delays(sink, watch, started, from_event=True)[1]:
        time.sleep(1)
    delays, missing = mail_delays(sink, watch, started, from_event=True)
    print(f"★★★ mails at half rate: {len(delays)} alerts mailed, {missing} not; handed to SMTP p50 "
          f"{pct(delays, 0.5):.1f} s, max {max(delays, default=float('nan')):.1f} s after the event "
          f"(target: urgent wait {URGENT_WAIT:g} s + 1 s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
