"""Real `mimamori gateway` processes (HTTPS with a test CA) for integration tests, and topic reading."""
from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import Topics
from pipeline.io.kafka_admin import ensure_topics, topic_specs
from tests.support.services import ROOT, free_port
from tests.support.tls import Certificates

GATEWAY_KEY = "integration-test-deployment-key-5f1c"


@dataclass
class GatewayProcess:
    bootstrap: str
    certs: Certificates
    workdir: Path
    prefix: str = field(default_factory=lambda: f"g{uuid.uuid4().hex[:8]}.")
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def topics(self) -> Topics:
        return Topics().prefixed(self.prefix)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "MIMAMORI_KAFKA": self.bootstrap, "MIMAMORI_TOPIC_PREFIX": self.prefix,
                "MIMAMORI_GATEWAY_KEY": GATEWAY_KEY, "MIMAMORI_GATEWAY_PORT": str(self.port),
                "MIMAMORI_GATEWAY_TLS_CERT": str(self.certs.cert), "MIMAMORI_GATEWAY_TLS_KEY": str(self.certs.key),
                **self.extra_env}

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"gateway-{self.port}-*.log")))

    def start(self, wait: float = 60.0) -> None:
        ensure_topics(self.bootstrap, topic_specs(self.topics))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = open(self.workdir / f"gateway-{self.port}-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "mimamori.cli", "gateway", "--host", "127.0.0.1",
                                      "--loglevel", "debug"], cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        self.wait_healthy(wait)

    def health(self) -> int:
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5, context=context) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ValueError):
            return 0

    def wait_healthy(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while self.health() != 200:
            assert self.proc is not None and self.proc.poll() is None, self.logs()[-3000:]
            assert time.monotonic() < deadline, f"gateway not healthy in {wait}s:\n{self.logs()[-3000:]}"
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()

