"""The HTTPS ingest gateway: events/s of one gateway process in requests of 100 events, and request
latency (p50/p99) at half that rate; the broker on the same machine (issue 25's targets: 20,000
events/s on one core, p99 under 100 ms at half the rate).

Run: .venv/bin/python -m benchmarks.bench_gateway [--seconds 20] [--clients 3] [--threads 8]

It starts its own broker (scripts/kafka.sh, free ports), a CA and certificate (openssl), one
`mimamori gateway` pinned to one core with `taskset` when there is one, and client processes
(keep-alive HTTPS connections writing prepared requests, each 100 events of one UTM, 100 UTMs). Throughput is
closed-loop (every client sends its next request as soon as the last is answered); the latency
run is open-loop: requests are started on a fixed schedule at half the measured rate, and each
one's time counts from its scheduled start (a late client does not hide queueing).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from mimamori.credentials import tokens_for
from mimamori.producer import KafkaSender, open_kafka_producer, registry_records
from mimamori.uploader import GatewayClient
from pipeline.config import Settings, Topics
from pipeline.io.kafka_admin import ensure_topics, topic_specs
from pipeline.registry_file import registry_from_data
from pipeline.simulate import background_event, build_registry
from tests.support.services import ROOT, free_port, kafka_service
from tests.support.tls import make_certificates

import random

KEY = "benchmark-deployment-key-0123456789"
BATCH = 100


def bodies(utm_ids: list[str]) -> list[tuple[str, bytes]]:
    """(utm_id, NDJSON body of 100 realistic events dated now) per UTM."""
    from pipeline.simulate import SimUtm, Host

    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    out = []
    for number, utm_id in enumerate(utm_ids):
        utm = SimUtm(utm_id, "t", [Host(f"192.168.{number % 250}.{10 + i}", f"02:00:00:00:{number % 250:02x}:{i:02x}")
                                   for i in range(30)])
        lines = [orjson.dumps(background_event(rng, utm, now - timedelta(seconds=i))) for i in range(BATCH)]
        out.append((utm_id, b"\n".join(lines) + b"\n"))
    return out


class RawClient:
    """A keep-alive HTTPS connection that writes prepared request bytes and reads just enough of the
    answer (status, Content-Length, body): far less client CPU than http.client, so that the
    clients, on the same cores as the gateway and the broker, take less of the machine."""

    def __init__(self, port: int, ca: str) -> None:
        import socket
        import ssl

        self.context = ssl.create_default_context(cafile=ca)
        self.port = port
        self.sock: "ssl.SSLSocket | None" = None
        self.socket = socket

    def _connect(self) -> "ssl.SSLSocket":
        if self.sock is None:
            raw = self.socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.sock = self.context.wrap_socket(raw, server_hostname="127.0.0.1")
            self.buffer = b""
        return self.sock

    def post(self, request: bytes) -> tuple[int, bytes]:
        sock = self._connect()
        try:
            sock.sendall(request)
            while b"\r\n\r\n" not in self.buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                self.buffer += chunk
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                rest += chunk
            self.buffer = rest[length:]
            return status, rest[:length]
        except Exception:
            self.sock.close()
            self.sock = None
            raise


def request_bytes(port: int, token: str, body: bytes) -> bytes:
    return (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def _accepted(body: bytes) -> int:
    return int(orjson.loads(body)["accepted"])


def _closed_loop(url: str, ca: str, work: list[tuple[str, str, bytes]], until: float, threads: int,
                 out: "mp.Queue[tuple[int, int, list[float]]]") -> None:
    done = [0, 0]
    latencies: list[float] = []
    lock = threading.Lock()

    port = int(url.rsplit(":", 1)[1])

    def run(share: list[tuple[str, str, bytes]]) -> None:
        client = RawClient(port, ca)
        requests = [request_bytes(port, token, body) for _, token, body in share]
        i = 0
        while time.monotonic() < until:
            request = requests[i % len(requests)]
            i += 1
            started = time.monotonic()
            status, answer = client.post(request)
            with lock:
                if status == 202:
                    done[0] += 1
                    done[1] += _accepted(answer)
                    latencies.append(time.monotonic() - started)

    pool = [threading.Thread(target=run, args=(work[t::threads],)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((done[0], done[1], latencies))


def _open_loop(url: str, ca: str, work: list[tuple[str, str, bytes]], start: float, interval: float, count: int,
               offset: int, stride: int, threads: int, out: "mp.Queue[tuple[int, int, list[float]]]") -> None:
    """Requests offset, offset+stride, ... of a global schedule (request k starts at start + k * interval)."""
    latencies: list[float] = []
    lock = threading.Lock()
    slots = list(range(offset, count, stride))
    cursor = [0]
    accepted = [0]

    port = int(url.rsplit(":", 1)[1])
    requests = [request_bytes(port, token, body) for _, token, body in work]

    def run() -> None:
        client = RawClient(port, ca)
        while True:
            with lock:
                if cursor[0] >= len(slots):
                    return
                k = slots[cursor[0]]
                cursor[0] += 1
            due = start + k * interval
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            status, answer = client.post(requests[k % len(requests)])
            with lock:
                latencies.append(time.monotonic() - due)
                if status == 202:
                    accepted[0] += _accepted(answer)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((len(latencies), accepted[0], latencies))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gather(procs: list[mp.Process], queue: "mp.Queue[tuple[int, int, list[float]]]") -> tuple[int, int, list[float]]:
    requests, events, latencies = 0, 0, []
    for _ in procs:
        r, e, lat = queue.get(timeout=600)
        requests, events = requests + r, events + e
        latencies += lat
    for p in procs:
        p.join()
    return requests, events, latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run (default 20)")
    parser.add_argument("--clients", type=int, default=3, help="client processes (default 3)")
    parser.add_argument("--threads", type=int, default=8, help="connections per client process (default 8)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    kafka = kafka_service(workdir)
    gateway = None
    try:
        kafka.start()
        certs = make_certificates(workdir / "tls")
        topics = Topics().prefixed("bench.")
        settings = Settings(kafka=kafka.bootstrap, topics=topics, gateway_key=KEY)
        ensure_topics(kafka.bootstrap, topic_specs(topics))
        registry, utms = build_registry(random.Random(1), 20, 5, datetime.now(timezone.utc))
        sender = KafkaSender(open_kafka_producer(kafka.bootstrap))
        for topic, key, value in registry_records(registry_from_data(registry), topics):
            sender(topic, key, value)
        sender.close()
        live = [u.utm_id for u in utms if u.active and u.serviced][:100]
        tokens = tokens_for(settings, live)
        work = [(utm_id, tokens[utm_id], body) for utm_id, body in bodies(live)]

        port = free_port()
        env = {**os.environ, "MIMAMORI_KAFKA": kafka.bootstrap, "MIMAMORI_TOPIC_PREFIX": "bench.",
               "MIMAMORI_GATEWAY_KEY": KEY, "MIMAMORI_GATEWAY_PORT": str(port),
               "MIMAMORI_GATEWAY_TLS_CERT": str(certs.cert), "MIMAMORI_GATEWAY_TLS_KEY": str(certs.key)}
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
        log = open(workdir / "gateway.log", "wb")
        gateway = subprocess.Popen([*pin, sys.executable, "-m", "mimamori.cli", "gateway", "--host", "127.0.0.1",
                                    "--loglevel", "warning"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url, ca = f"https://127.0.0.1:{port}", str(certs.ca)
        deadline = time.monotonic() + 60
        probe = GatewayClient(url, ca_file=ca)
        while True:
            try:
                if probe.post("/v1/events", work[0][1], work[0][2]).status == 202:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not start: {(workdir / 'gateway.log').read_text()[-2000:]}")
            time.sleep(0.5)
        probe.close()
        pinned = "pinned to core 0" if pin else "not pinned"
        body_bytes = statistics.mean(len(b) for _, _, b in work)
        print(f"bench_gateway: one gateway process ({pinned}), HTTPS, requests of {BATCH} events "
              f"({body_bytes / 1024:.0f} KiB NDJSON) from 100 UTMs; broker {kafka.bootstrap} on this machine; "
              f"{args.clients} client processes x {args.threads} connections; {os.cpu_count()} cores")

        ctx = mp.get_context("fork")
        queue: "mp.Queue[tuple[int, int, list[float]]]" = ctx.Queue()
        # warm-up, then the closed-loop throughput run
        for seconds, label in ((3.0, None), (args.seconds, "throughput")):
            cpu0, started = _cpu_seconds(gateway.pid), time.monotonic()
            until = started + seconds
            procs = [ctx.Process(target=_closed_loop, args=(url, ca, work[c::args.clients], until, args.threads, queue))
                     for c in range(args.clients)]
            for p in procs:
                p.start()
            requests, events, latencies = _gather(procs, queue)
            elapsed, cpu = time.monotonic() - started, _cpu_seconds(gateway.pid) - cpu0
            if label:
                rate = events / elapsed
                print(f"throughput: {rate:,.0f} events/s acknowledged ({requests / elapsed:,.0f} requests/s) over "
                      f"{elapsed:.1f} s; gateway CPU {cpu / elapsed:.2f} cores, {events / max(cpu, 1e-9):,.0f} events "
                      f"per CPU-second; latency p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, "
                      f"p99 {_percentile(latencies, 0.99) * 1000:.1f} ms (saturated)")
        half = rate / 2 / BATCH
        count = int(half * args.seconds)
        start = time.monotonic() + 1.0
        procs = [ctx.Process(target=_open_loop, args=(url, ca, work, start, 1 / half, count, c, args.clients,
                                                       args.threads, queue)) for c in range(args.clients)]
        cpu0 = _cpu_seconds(gateway.pid)
        for p in procs:
            p.start()
        requests, events, latencies = _gather(procs, queue)
        cpu = _cpu_seconds(gateway.pid) - cpu0
        print(f"latency at half that rate ({half * BATCH:,.0f} events/s, {half:.0f} requests/s, {requests} requests): "
              f"p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, p99 {_percentile(latencies, 0.99) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.1f} ms; gateway CPU {cpu / args.seconds:.2f} cores")
    finally:
        if gateway is not None:
            gateway.terminate()
            try:
                gateway.wait(60)
            except subprocess.TimeoutExpired:
                gateway.kill()
        kafka.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
