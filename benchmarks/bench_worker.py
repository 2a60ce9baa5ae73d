"""Whole-worker throughput: one `mimamori worker` (chdb store) draining a pre-loaded backlog from a real broker.

    .venv/bin/python -m benchmarks.bench_worker [--events 300000] [--profile] [--pyspy PATH]

Starts its own Kafka (scripts/kafka.sh), pre-loads the prefixed input topics with `--events` event
lines (benchmarks/worker_load.py: ~200 UTMs of 40 tenants, ~1% threats, ~1% resends, timestamps in
the last hour) plus one heartbeat a minute per UTM, then starts the worker and polls its /metrics
until every record is taken and every unique event is in the store. Prints events/s, the worker's
CPU time and peak RSS, batch and insert latency from its histograms; with --profile, py-spy samples
the worker while it drains and the top functions (self and inclusive) are printed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.worker_load import Load, make_load
from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from tests.support.services import ROOT, KafkaService, kafka_service
from tests.support.worker import WorkerProcess

CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL = 0.25


@dataclass
class Sample:
    at: float
    records: float
    stored: float
    cpu: float


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bulk_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50, batch_size=512 * 1024,
                         max_request_size=8 * 1024 * 1024)


def mirror_registry(bootstrap: str, worker: WorkerProcess, load: Load) -> float:
    """Publishes the registry and lets a first run of the worker mirror it to the store, then stops
    that run, so that the measured run starts with the registry published and mirrored (its
    processors wait for the follower to have read the registry before they take any event).
    """
    started = time.monotonic()
    worker.start(wait=180)
    producer = bulk_producer(bootstrap)
    for topic, key, value in registry_records(registry_from_data(load.registry), worker.topics):
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    deadline = time.monotonic() + 120
    while not {"mirror-tenants", "mirror-utms"} <= set(worker.health().get("progress", {})):
        if time.monotonic() > deadline:
            raise RuntimeError(f"registry not mirrored within 120 s:\n{worker.log_tail()}")
        time.sleep(0.5)
    time.sleep(3)
    worker.stop()
    return time.monotonic() - started


def preload(bootstrap: str, worker: WorkerProcess, load: Load) -> float:
    topics = worker.topics
    producer = bulk_producer(bootstrap)
    started = time.perf_counter()
    for key, value in load.heartbeats:
        producer.send(topics.heartbeats, key=key, value=value)
    for key, value in load.events:
        producer.send(topics.events, key=key, value=value)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def total(values: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in values.items() if n == name and all((k, w) in ls for k, w in labels.items()))


def histogram(values: dict, name: str, **labels: str) -> tuple[list[tuple[float, float]], float, float]:
    """(upper bound, cumulative count) buckets, count, sum of one labelled histogram."""
    buckets = sorted((float(dict(ls)["le"]), v) for (n, ls), v in values.items()
                     if n == name + "_bucket" and all((k, w) in ls for k, w in labels.items()))
    return buckets, total(values, name + "_count", **labels), total(values, name + "_sum", **labels)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus-style: linear within the bucket that holds the q-th observation."""
    count = buckets[-1][1] if buckets else 0
    if not count:
        return float("nan")
    rank, lower, below = q * count, 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(cumulative - below, 1e-9)
        lower, below = upper, cumulative
    return lower


def latency_line(values: dict, title: str, name: str, **labels: str) -> str:
    buckets, count, seconds = histogram(values, name, **labels)
    if not count:
        return f"{title}: no observations"
    p = {q: quantile(buckets, q) * 1000 for q in (0.5, 0.9, 0.99)}
    return (f"{title}: {count:.0f} observations, mean {seconds / count * 1000:.0f} ms, "
            f"p50 {p[0.5]:.0f} ms, p90 {p[0.9]:.0f} ms, p99 {p[0.99]:.0f} ms (interpolated in buckets)")


def drain(worker: WorkerProcess, records: int, unique: int, timeout: float) -> tuple[list[Sample], dict]:
    """Polls /metrics until `records` input records are taken and `unique` event rows stored."""
    topics, pid = worker.topics, worker.proc.pid  # type: ignore[union-attr]
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout
    values: dict = {}
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:  # type: ignore[union-attr]
            raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
        values = metric_values(worker.metrics())
        taken = (total(values, "mimamori_records_total", topic=topics.events)
                 + total(values, "mimamori_records_total", topic=topics.heartbeats))
        stored = total(values, "mimamori_store_rows_total", table="events")
        samples.append(Sample(time.monotonic(), taken, stored, cpu_seconds(pid)))
        if taken >= records and stored >= unique:
            break
        if len(samples) > 240 and samples[-240].records == taken and samples[-240].stored == stored:
            print(f"no progress for {240 * POLL:.0f} s: stopping", file=sys.stderr)
            break
        time.sleep(POLL)
    return samples, values


def steady_rate(samples: list[Sample], records: int) -> tuple[float, float]:
    """Records/s and CPU s per 10k records between 10% and 90% of the backlog."""
    low = next(s for s in samples if s.records >= 0.1 * records)
    high = next((s for s in samples if s.records >= 0.9 * records), samples[-1])
    done = high.records - low.records
    if done <= 0 or high.at <= low.at:
        return float("nan"), float("nan")
    return done / (high.at - low.at), (high.cpu - low.cpu) / done * 10_000


def start_pyspy(pyspy: str, pid: int, out: Path, rate: int) -> subprocess.Popen:
    return subprocess.Popen([pyspy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_pyspy(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _function(frame: str) -> str:
    """`name (path/file.py:123)` -> `name (file.py)`: one entry per function, not per line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def _ours(frame: str) -> bool:
    """py-spy names the project's files relative to the working directory."""
    path = frame.partition(" (")[2]
    return any(path.startswith((f"{package}/", str(ROOT / package))) for package in ("agents", "pipeline", "mimamori"))


def profile_report(raw: Path, top: int) -> list[str]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    ours: set[str] = set()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";")]
        ours.update(_function(f) for f in stack.split(";") if _ours(f))
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not samples:
        return ["py-spy: no samples (is ptrace allowed?)"]
    lines = [f"py-spy: {samples} samples of the worker while busy; top self time:"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("top inclusive time of the project's own functions:")
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in inclusive.most_common() if name in ours][: top * 2]
    return lines


def broker_pid(kafka: KafkaService) -> int | None:
    path = Path(kafka.env["KAFKA_DIR"]) / "broker.pid"
    return int(path.read_text()) if path.exists() else None


def run(args: argparse.Namespace, workdir: Path) -> int:
    load = make_load(args.events, end=datetime.now(timezone.utc) - timedelta(minutes=1), seed=args.seed)
    records = len(load.events) + len(load.heartbeats)
    print(f"load: {load.counts}, heartbeats {len(load.heartbeats)}, {records} input records")
    kafka = kafka_service(workdir)
    kafka.start()
    worker = WorkerProcess(kafka.bootstrap, workdir / "worker", f"maildir://{workdir / 'mail'}")
    pyspy: subprocess.Popen | None = None
    try:
        worker.create_topics()
        print(f"registry mirrored by a first run of the worker in {mirror_registry(kafka.bootstrap, worker, load):.1f} s")
        loaded = preload(kafka.bootstrap, worker, load)
        print(f"pre-loaded in {loaded:.1f} s ({records / loaded:,.0f} records/s from kafka-python)")
        broker = broker_pid(kafka)
        broker_cpu = cpu_seconds(broker) if broker else float("nan")
        spawned = time.monotonic()
        worker.start(wait=180)
        pid = worker.proc.pid  # type: ignore[union-attr]
        ready = time.monotonic()
        if args.profile:
            pyspy = start_pyspy(args.pyspy, pid, workdir / "pyspy.txt", args.rate)
        samples, values = drain(worker, records, load.counts["unique_events"], args.timeout)
        if pyspy is not None:
            stop_pyspy(pyspy)
        last = samples[-1]
        broker_used = cpu_seconds(broker) - broker_cpu if broker else float("nan")
        rate, cpu_per_10k = steady_rate(samples, records)
        first = next((s for s in samples if s.records > 0), last)
        print(f"worker ready {ready - spawned:.1f} s after spawn; drained {last.records:.0f}/{records} records, "
              f"{last.stored:.0f}/{load.counts['unique_events']} event rows stored, "
              f"{last.at - spawned:.1f} s after spawn")
        print(f"throughput: {last.records / (last.at - spawned):,.0f} records/s from spawn, "
              f"{last.records / max(last.at - first.at, 1e-9):,.0f} records/s from the first poll that saw input, "
              f"{rate:,.0f} records/s steady (10%..90% of the backlog)")
        print(f"worker CPU: {last.cpu:.1f} s in all ({last.cpu - first.cpu:.1f} s while draining, "
              f"{cpu_per_10k:.2f} CPU s per 10k records steady = {(last.cpu - first.cpu) / (last.at - first.at):.2f} "
              f"cores busy); peak RSS {peak_rss_mib(pid):.0f} MiB; Kafka broker CPU {broker_used:.1f} s over the run")
        print(latency_line(values, "batch latency (detect)", "mimamori_batch_seconds", agent="detect"))
        print(latency_line(values, "insert latency (events)", "mimamori_store_insert_seconds", table="events"))
        print("rejections by reason: " + (", ".join(
            f"{dict(ls)['reason']} {v:.0f}" for (n, ls), v in sorted(values.items())
            if n == "mimamori_rejections_total" and v) or "none"))
        print("other counters: " + ", ".join(
            f"{label} {total(values, name):.0f}" for label, name in (
                ("duplicates", "mimamori_duplicates_total"), ("rejections", "mimamori_rejections_total"),
                ("late", "mimamori_late_events_total"), ("alert changes", "mimamori_alert_changes_total"),
                ("agent errors", "mimamori_agent_errors_total"))))
        print("store rows: " + ", ".join(
            f"{dict(ls)['table']} {v:.0f}" for (n, ls), v in sorted(values.items()) if n == "mimamori_store_rows_total"))
        if args.profile:
            print("\n".join(profile_report(workdir / "pyspy.txt", args.top)))
        complete = last.records >= records and last.stored >= load.counts["unique_events"]
        return 0 if complete else 1
    finally:
        if pyspy is not None and pyspy.poll() is None:
            stop_pyspy(pyspy)
        worker.stop()
        kafka.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="event lines, resends included")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait for the drain")
    parser.add_argument("--profile", action="store_true", help="sample the worker with py-spy while it drains")
    parser.add_argument("--pyspy", default=shutil.which("py-spy") or "py-spy", help="py-spy executable")
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, store, profile)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    try:
        return run(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
