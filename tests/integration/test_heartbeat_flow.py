"""UTM heartbeat loss through the real broker (issue 6): one UTM falls silent and comes back; its
tenant gets exactly one `utm-down` and one `utm-recovered` at a real SMTP server, the other UTMs
none, and the status changes reach the store."""
from __future__ import annotations

import time
from email.message import Message
from typing import Any

import pytest

from mimamori.producer import registry_records
from pipeline.registry_file import registry_from_data
from pipeline.io.store.backends import open_store
from pipeline.io.store.sqlfiles import query_sql
from tests.support.services import KafkaService, SmtpSink
from tests.support.heartbeats import Heartbeats
from tests.support.worker import WorkerProcess, one_tenant_registry, produce, settle, wait_for

TIMEOUT_S = 6
TENANT = "t-hb"
UTMS = [f"utm-hb-{n:02d}" for n in range(1, 6)]
SILENT = UTMS[2]
REGISTRY = one_tenant_registry(TENANT, "Heartbeat 株式会社", ["noc@hb.example.jp"], UTMS, industry="manufacturing")




def utm_mails(sink: SmtpSink) -> list[Message]:
    return [m for m in sink.received() if m["X-Mimamori-Tenant"] == TENANT]


def kinds_for(mails: list[Message], utm_id: str) -> list[str]:
    return [str(m["X-Mimamori-Kind"]) for m in mails if m["X-Mimamori-Utm"] == utm_id]


def read_status(url: str) -> dict[str, dict[str, Any]]:
    """utm_id -> its row of `portal_utm_status`; only once the worker stopped (one process per chdb)."""
    store = open_store(url)
    try:
        rows = store.query(query_sql("view_portal_utm_status"), {"tenant": TENANT, "every_tenant": 0})
    finally:
        store.close()
    return {row["utm_id"]: row for row in rows}


@pytest.fixture(scope="module")
def flow(kafka: KafkaService, own_smtp_server: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every UTM beats; one stops (utm-down); the worker stops and its store is read; it starts again
    while that UTM is still silent (nothing repeated); the UTM resumes (utm-recovered)."""
    smtp = own_smtp_server
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("hb-worker"), smtp.url,
                           extra_env={"MIMAMORI_HEARTBEAT_TIMEOUT": f"{TIMEOUT_S}s"})
    worker.start()
    timings: dict[str, float] = {}
    try:
        produce(worker.bootstrap, registry_records(registry_from_data(REGISTRY), worker.topics))
        with Heartbeats(worker, UTMS, firmware="7.2.1") as beats:
            wait_for(lambda: worker.metric("mimamori_utms", status="online") == len(UTMS), timeout=60,
                     message="every UTM online")
            assert utm_mails(smtp) == [], "no mail while every UTM beats"
            beats.silent.add(SILENT)
            stopped = time.monotonic()
            wait_for(lambda: "utm-down" in kinds_for(utm_mails(smtp), SILENT), timeout=TIMEOUT_S * 6,
                     every=0.1, message="utm-down mail")
            timings["down_after_s"] = time.monotonic() - stopped
            worker.caught_up("detect", "store")  # the status change stored
            worker.stop()
            while_offline = read_status(worker.store_url)
            restarted = time.monotonic()
            worker.start()
            timings["restart_s"] = time.monotonic() - restarted
            wait_for(lambda: worker.metric("mimamori_utms", status="offline") == 1, timeout=60,
                     message="the restarted worker knows the silent UTM offline")
            # its start-up grace (one heartbeat timeout, configured) and checks after it, the UTM still silent
            time.sleep(max(0.0, restarted + TIMEOUT_S - time.monotonic()))
            settle(worker)
            mails_while_silent = kinds_for(utm_mails(smtp), SILENT)
            beats.silent.clear()
            resumed = time.monotonic()
            wait_for(lambda: "utm-recovered" in kinds_for(utm_mails(smtp), SILENT), timeout=TIMEOUT_S * 6,
                     every=0.1, message="utm-recovered mail")
            timings["recovered_after_s"] = time.monotonic() - resumed
            settle(worker)  # a second mail would have come
        sent = dict(beats.sent)
    finally:
        worker.stop()
    print("heartbeat flow timings:", timings)
    return {"mails": utm_mails(smtp), "mails_while_silent": mails_while_silent, "timings": timings, "sent": sent,
            "while_offline": while_offline, "after": read_status(worker.store_url)}


def test_the_silent_utm_gets_one_down_and_one_recovered_mail(flow: dict[str, Any]) -> None:
    assert flow["mails_while_silent"] == ["utm-down"], "a restart repeats or loses nothing"
    assert kinds_for(flow["mails"], SILENT) == ["utm-down", "utm-recovered"]
    for mail in flow["mails"]:
        assert mail["To"] == "noc@hb.example.jp"
    assert flow["timings"]["down_after_s"] < TIMEOUT_S + 10


def test_the_other_utms_get_no_mail(flow: dict[str, Any]) -> None:
    assert [m["X-Mimamori-Utm"] for m in flow["mails"]] == [SILENT, SILENT]
    # the others beat all along: over three timeouts in which a wrong utm-down would have been mailed
    assert all(flow["sent"][utm_id] > 3 * TIMEOUT_S for utm_id in UTMS if utm_id != SILENT)
    assert flow["sent"][SILENT] > 0


def test_the_status_changes_reach_the_store(flow: dict[str, Any]) -> None:
    offline = flow["while_offline"]
    assert set(offline) == set(UTMS)
    assert offline[SILENT]["status"] == "offline"
    assert offline[SILENT]["offline_since"] is not None
    assert offline[SILENT]["last_seen"] < offline[SILENT]["offline_since"]
    assert {offline[u]["status"] for u in UTMS if u != SILENT} == {"online"}
    after = flow["after"]
    assert {row["status"] for row in after.values()} == {"online"}
    assert after[SILENT]["last_seen"] > offline[SILENT]["offline_since"]


def test_a_recovered_utm_has_no_offline_since_in_the_portal(flow: dict[str, Any]) -> None:
    assert flow["after"][SILENT]["offline_since"] is None
