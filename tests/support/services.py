"""Start and stop the project's real local services for tests (scripts/*.sh), on free loopback ports."""
from __future__ import annotations

import os
import random
from collections import Counter
from contextlib import contextmanager
import socket
import subprocess
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from threading import Lock
from typing import Iterable, Iterator

ROOT = Path(__file__).resolve().parents[2]


def _port_slice() -> range:
    """This test process's ports: outside the kernel's ephemeral range, one slice per xdist worker.

    A port taken with bind(0) comes from the ephemeral range, the one the kernel also gives every
    outgoing connection (each Kafka client's). A test that keeps a port across a restart (a worker's
    web port, a broker's, an SMTP sink's) then found it taken by some client's socket now and then:
    CI saw a restarted worker fail with EADDRINUSE. The kernel never hands out a port outside the
    range; the slices keep two xdist workers from choosing the same one.
    """
    try:
        ephemeral_low, ephemeral_high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        ephemeral_low, ephemeral_high = 32768, 60999
    low, high = (10000, ephemeral_low) if ephemeral_low >= 14000 else (ephemeral_high + 1, 65536)
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    count = max(index + 1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    size = (high - low) // count
    return range(low + index * size, low + (index + 1) * size)


_handed_out: set[int] = set()
_port_lock = Lock()


def free_port() -> int:
    """A loopback port free now, never handed out before by this process (see `_port_slice`)."""
    ports = _port_slice()
    with _port_lock:
        start = random.randrange(len(ports))
        for step in range(len(ports)):
            port = ports[(start + step) % len(ports)]
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {ports}")


def _script(name: str, action: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / name), action], env={**os.environ, **env},
        capture_output=True, text=True, timeout=180,
    )
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{name} {action} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class ScriptService:
    """A service run by one of the project's scripts, with its ports and data in a test directory."""

    script: str
    env: dict[str, str]

    def start(self) -> str:
        return _script(self.script, "start", self.env)

    def stop(self) -> str:
        return _script(self.script, "stop", self.env)

    def status(self) -> str:
        return _script(self.script, "status", self.env)


@dataclass
class KafkaService(ScriptService):
    port: int = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def kafka_service(workdir: Path) -> KafkaService:
    port, controller = free_port(), free_port()
    env = {"KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller), "KAFKA_DIR": str(workdir / "kafka")}
    return KafkaService("kafka.sh", env, port=port)


@dataclass
class SaslSslKafkaService(KafkaService):
    """The broker with a SASL_SSL listener too (scripts/kafka.sh), its certificate from a test CA.
    `bootstrap` stays the plaintext listener (for the test's own reads and writes)."""

    sasl_port: int = 0
    ca_file: Path = Path()
    users: dict[str, str] = field(default_factory=dict)

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def client_env(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        """The MIMAMORI_KAFKA* settings of a client of the SASL_SSL listener."""
        return {"MIMAMORI_KAFKA": self.sasl_bootstrap, "MIMAMORI_KAFKA_SECURITY": "sasl_ssl",
                "MIMAMORI_KAFKA_SASL_MECHANISM": mechanism, "MIMAMORI_KAFKA_USERNAME": user,
                "MIMAMORI_KAFKA_PASSWORD": password, "MIMAMORI_KAFKA_CA_FILE": str(self.ca_file)}


def sasl_ssl_kafka_service(workdir: Path, users: dict[str, str]) -> SaslSslKafkaService:
    """Certificates made with openssl (a CA, the broker's for 127.0.0.1, a PKCS#12 keystore) and a
    broker whose SCRAM users are written when its storage is formatted."""
    from tests.support.tls import make_certificates

    certificates = make_certificates(workdir / "certs")
    keystore, store_password = workdir / "certs" / "broker.p12", "keystore-pw"
    subprocess.run(["openssl", "pkcs12", "-export", "-in", str(certificates.cert), "-inkey", str(certificates.key),
                    "-out", str(keystore), "-passout", f"pass:{store_password}", "-name", "broker"],
                   check=True, capture_output=True, timeout=60)
    port, controller, sasl_port = free_port(), free_port(), free_port()
    env = {"KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller), "KAFKA_DIR": str(workdir / "kafka"),
           "KAFKA_SASL_SSL_PORT": str(sasl_port), "KAFKA_SSL_KEYSTORE": str(keystore),
           "KAFKA_SSL_KEYSTORE_PASSWORD": store_password,
           "KAFKA_SASL_USERS": ",".join(f"{user}:{password}" for user, password in users.items())}
    return SaslSslKafkaService("kafka.sh", env, port=port, sasl_port=sasl_port, ca_file=certificates.ca, users=users)


@dataclass
class ClickHouseServerService(ScriptService):
    port: int = 0

    @property
    def url(self) -> str:
        return f"clickhouse://default:@127.0.0.1:{self.port}/default"


def clickhouse_server_service(workdir: Path) -> ClickHouseServerService:
    port, http = free_port(), free_port()
    env = {"CLICKHOUSE_PORT": str(port), "CLICKHOUSE_HTTP_PORT": str(http), "CLICKHOUSE_DIR": str(workdir / "ch")}
    return ClickHouseServerService("clickhouse-server.sh", env, port=port)


KILL_REPEAT_WINDOW = 15.0
"""Seconds between an SMTP server's acceptance of a mail and the commit of the ledger's outcome that
a loaded machine may take: a SIGKILL in that window is the one cause of a repeated mail."""


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

    port: int = 0
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """time.time() at which each message arrived."""
    _lock: Lock = field(default_factory=Lock)
    _controller: object | None = None

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # aiosmtpd hook
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[attr-defined]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))  # type: ignore[attr-defined]
            self.arrivals.append(time.time())
        return "250 OK"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        if self._controller is not None:
            return
        self.port = self.port or free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()  # type: ignore[attr-defined]
            self._controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def received(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def unexplained_repeats(self, kills: list[float], window: float = KILL_REPEAT_WINDOW,
                            kind: str | None = None) -> list[str]:
        """The Message-IDs (of `kind`, or all) that arrived more than once for no reason the sender
        owns up to (`copies_unexplained_by_kills`), for a mail sent one at a time: a repeat is
        explained when it arrived twice, its first copy shortly before a kill, and there are no more
        repeated mails than kills."""
        with self._lock:
            arrived = [(str(m["Message-ID"]), at) for m, at in zip(self.messages, self.arrivals)
                       if kind is None or m["X-Mimamori-Kind"] == kind]
        counts = Counter(message_id for message_id, _ in arrived)
        repeated = [mid for mid, n in counts.items() if n > 1]
        unexplained = set(copies_unexplained_by_kills(arrived, kills, window))
        unexplained.update(mid for mid in repeated if counts[mid] > 2)
        return repeated if len(repeated) > len(kills) else [mid for mid in repeated if mid in unexplained]


def copies_unexplained_by_kills(arrivals: Iterable[tuple[str, float]], kills: list[float],
                                window: float = KILL_REPEAT_WINDOW) -> dict[str, int]:
    """The sender's one admitted repeat (agents/processors/sender.py): SMTP has no way to take a mail
    back, so a SIGKILL between the server's acceptance and the commit of the ledger's outcome makes
    the next owner send that mail again, under the same Message-ID. Of `arrivals` ((Message-ID,
    time) in arrival order), those with a copy, but the last, not followed by a kill within
    `window` seconds -> their number of copies."""
    copies: dict[str, list[float]] = {}
    for message_id, at in arrivals:
        copies.setdefault(message_id, []).append(at)
    return {message_id: len(times) for message_id, times in copies.items()
            if any(not any(at <= kill <= at + window for kill in kills) for at in times[:-1])}


@contextmanager
def running_smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
