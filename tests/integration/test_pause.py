"""A paused worker (issue 19): two workers of one deployment while 12 UTMs beat every second; one is
stopped with SIGSTOP for longer than the group's session timeout and than the UTMs' heartbeat
timeout, so the other takes its partitions over, then resumed. Its timers and half-done batch wake
up on state that is old: Kafka transactions fence it, and silence is judged only over time whose
records were read. No UTM that kept beating is ever mailed `utm-down` or `utm-recovered`; a UTM
that really stops afterwards is mailed `utm-down` exactly once."""
from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path

from pipeline.io.kafka_admin import PARTITIONS
from pipeline.registry_file import registry_from_data
from mimamori.producer import registry_records
from tests.support.heartbeats import Heartbeats
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, one_tenant_registry, produce, settle, wait_for

TIMEOUT = "8s"
UTMS = [f"utm-p{i:02d}" for i in range(12)]


def _kinds(smtp: SmtpSink) -> collections.Counter[tuple[str, str]]:
    return collections.Counter((m.get("X-Mimamori-Kind", ""), m.get("X-Mimamori-Utm", "")) for m in smtp.received())


def _owned(worker: WorkerProcess) -> int:
    return len(worker.health().get("partitions", {}).get("detect", []))


def test_a_paused_worker_mails_nobody_wrongly(kafka: KafkaService, own_smtp_server: SmtpSink, tmp_path: Path) -> None:
    env = {"MIMAMORI_HEARTBEAT_TIMEOUT": TIMEOUT, "MIMAMORI_CLICKHOUSE": f"chdb://{tmp_path / 'clickhouse'}"}
    a = WorkerProcess(kafka.bootstrap, tmp_path / "a", own_smtp_server.url, extra_env=dict(env))
    b = WorkerProcess(kafka.bootstrap, tmp_path / "b", own_smtp_server.url, extra_env=dict(env), prefix=a.prefix)
    registry = registry_from_data(one_tenant_registry("tenant-p", "一時停止株式会社", ["p@example.com"], UTMS))
    try:
        a.start()
        produce(kafka.bootstrap, registry_records(registry, a.topics))
        b.start()
        wait_for(lambda: _owned(a) + _owned(b) == PARTITIONS and _owned(a) > 0 and _owned(b) > 0, timeout=120,
                 message="both workers own detect partitions")
        with Heartbeats(a, UTMS) as beats:
            wait_for(lambda: all(n >= 12 for n in beats.sent.values()), timeout=60, message="12 s of heartbeats")
            assert a.proc is not None
            os.kill(a.proc.pid, signal.SIGSTOP)
            try:
                wait_for(lambda: _owned(b) == PARTITIONS, timeout=90, message="the other worker takes every partition")
                time.sleep(float(TIMEOUT[:-1]) + 4)  # the paused worker's state grows older than the timeout
            finally:
                os.kill(a.proc.pid, signal.SIGCONT)
            wait_for(lambda: _owned(a) > 0 and _owned(a) + _owned(b) == PARTITIONS, timeout=120,
                     message="the resumed worker rejoins")
            settle(a, b)  # the checks of both workers have run on fresh input; a wrong mail would have come
            wrong = {k: n for k, n in _kinds(own_smtp_server).items() if k[0].startswith("utm-")}
            assert wrong == {}, f"UTM mails for UTMs that kept beating: {wrong}"
            beats.silent.add(UTMS[0])
            wait_for(lambda: _kinds(own_smtp_server)[("utm-down", UTMS[0])] >= 1, timeout=90,
                     message="the UTM that really stopped is mailed")
            settle(a, b)  # a second mail would have come
        kinds = _kinds(own_smtp_server)
        assert kinds[("utm-down", UTMS[0])] == 1
        assert {k: n for k, n in kinds.items() if k[0].startswith("utm-") and k[1] != UTMS[0]} == {}
    finally:
        for worker in (a, b):
            if worker.proc is not None and worker.proc.poll() is None:
                os.kill(worker.proc.pid, signal.SIGCONT)
            worker.stop()
