"""A declared maintenance window silences UTM-down through the real worker, broker and SMTP server:
16 of 100 UTMs fall silent inside an emergency maintenance window published with `mimamori notice
publish`; 15 come back within the grace after it (one heartbeat timeout) and get no mail at all, the
one that stays silent gets exactly one utm-down. 16 of 100 is below the mass-outage share (20%), so
without the window each of the 16 would get its utm-down: only the window keeps them quiet."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.message import Message
from pathlib import Path

import orjson
import pytest

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from tests.integration.test_notices_flow import cli
from tests.support.services import KafkaService, SmtpSink
from tests.support.heartbeats import Heartbeats
from tests.support.worker import WorkerProcess, one_tenant_registry, produce, settle, wait_for

pytestmark = pytest.mark.integration

TIMEOUT_S = 6
WINDOW_S = 20
TENANT = "t-mw"
UTMS = [f"utm-mw-{n:03d}" for n in range(100)]
SILENT = UTMS[:16]
STAYS_SILENT = SILENT[-1]


def utm_mails(sink: SmtpSink) -> list[Message]:
    return [m for m in sink.received()
            if m["X-Mimamori-Tenant"] == TENANT and str(m["X-Mimamori-Kind"]).startswith("utm-")]


def test_utms_silent_in_a_window_get_no_utm_down_and_one_silent_past_the_grace_gets_exactly_one(
        kafka: KafkaService, own_smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    sink = own_smtp_server
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("mw-worker"), sink.url,
                           extra_env={"MIMAMORI_HEARTBEAT_TIMEOUT": f"{TIMEOUT_S}s"})
    worker.create_topics()
    produce(kafka.bootstrap, registry_records(registry_from_data(
        one_tenant_registry(TENANT, "保守 株式会社", ["noc@mw.example.jp"], UTMS)), worker.topics))
    worker.start()
    started = time.monotonic()
    try:
        with Heartbeats(worker, UTMS) as beats:
            wait_for(lambda: worker.metric("mimamori_utms", status="online") == len(UTMS), timeout=60,
                     message="every UTM online")
            time.sleep(max(0.0, started + TIMEOUT_S - time.monotonic()))  # past the start-up grace (one timeout)
            start = datetime.now(timezone.utc)
            end = start + timedelta(seconds=WINDOW_S)
            notice = tmp_path / "emergency.json"
            notice.write_text(orjson.dumps({
                "notice_id": "emg-1", "kind": "maintenance-emergency", "starts_at": start.isoformat(),
                "ends_at": end.isoformat(), "audience": {"all": True},
                "title": {"ja": "緊急メンテナンス"}, "body": {"ja": "受信を停止します。"}}).decode(), encoding="utf-8")
            assert cli(worker, "publish", str(notice)) == 0
            wait_for(lambda: any(m["X-Mimamori-Kind"] == "maintenance-emergency" for m in sink.received()),
                     timeout=60, message="the emergency notice mail")
            beats.silent.update(SILENT)
            silenced_at = time.monotonic()
            remaining = (end - datetime.now(timezone.utc)).total_seconds()
            assert remaining > TIMEOUT_S, "the window ended before the UTMs had been silent for a timeout"
            time.sleep(remaining + TIMEOUT_S / 2)  # past the window's end, within its grace
            beats.silent = {STAYS_SILENT}
            assert utm_mails(sink) == [], "no UTM mail inside the window or its grace"
            wait_for(lambda: len(utm_mails(sink)) >= 1, timeout=TIMEOUT_S * 8, message="the utm-down past the grace")
            settle(worker)  # anything more would have come
        assert time.monotonic() - silenced_at > WINDOW_S / 2
        mails = utm_mails(sink)
        assert [(m["X-Mimamori-Kind"], m["X-Mimamori-Utm"]) for m in mails] == [("utm-down", STAYS_SILENT)]
    finally:
        worker.stop()
