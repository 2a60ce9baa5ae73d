"""The whole worker through the real broker: simulated UTM traffic in; rejections, alerts, store
rows and mails out, compared with what `mimamori replay` makes of the same lines."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.models import REJECTION_REASONS
from pipeline.simulate import Simulation
from tests.support.flows import final_alerts, publish_registry, send_lines, store_counts
from tests.support.services import KafkaService, SmtpSink
from tests.support.worker import WorkerProcess, read_to_end, read_topic, wait_for


@pytest.fixture(scope="module")
def flow(kafka: KafkaService, smtp_server: SmtpSink, sim: Simulation,
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One clean run: registry, then every line, then the worker stops and its store is read."""
    worker = WorkerProcess(kafka.bootstrap, tmp_path_factory.mktemp("worker"), smtp_server.url)
    worker.create_topics()
    publish_registry(worker, sim)  # a worker reads the registry topics to their end before it takes events
    worker.start()
    try:
        mails_before = len(smtp_server.received())
        send_lines(worker, sim.lines)
        rejected = read_topic(kafka.bootstrap, worker.topics.rejected,
                              expect=sum(sim.expected["counts"]["rejections"].values()), timeout=120)
        worker.caught_up("detect")  # every line taken
        alerts = read_to_end(kafka.bootstrap, worker.topics.alerts)
        wait_for(lambda: len(smtp_server.received()) > mails_before, timeout=60, message="a mail")
        wait_for(lambda: worker.metric("mimamori_alert_to_smtp_seconds_count") >= 1, timeout=60,
                 message="a mail handed to SMTP timed")
        worker.caught_up()  # every processor at the end of its inputs
        wait_for(lambda: "heartbeat-check" in worker.health().get("progress", {}), timeout=60,
                 message="a heartbeat check")
        metrics = worker.metrics()
        health = worker.health()
    finally:
        worker.stop()
    return {
        "rejected": [orjson.loads(v) for _, v in rejected],
        "alerts": [orjson.loads(v) for _, v in alerts],
        "mails": smtp_server.received()[mails_before:],
        "store": store_counts(worker.store_url),
        "metrics": metrics,
        "health": health,
        "log": worker.log_text(),
        "prefix": worker.prefix,
    }


def test_every_refused_line_is_in_the_rejection_topic_with_its_reason(flow: dict[str, Any], sim: Simulation) -> None:
    reasons = collections.Counter(r["reason"] for r in flow["rejected"])
    assert dict(reasons) == sim.expected["counts"]["rejections"]
    for rejection in flow["rejected"]:
        assert rejection["detail"]
        assert rejection["value"] is not None or rejection["value_base64"] is not None


def test_the_counts_add_up(sim: Simulation) -> None:
    counts = sim.expected["counts"]
    assert counts["lines"] == len(sim.lines) >= 10_000
    assert set(counts["rejections"]) == set(REJECTION_REASONS) and all(counts["rejections"].values())
    assert counts["lines"] == (counts["events"] + counts["duplicates"] + counts["heartbeats"]
                               + counts["ignored_heartbeats"] + sum(counts["rejections"].values()))


def test_every_valid_event_reaches_the_store_once(flow: dict[str, Any], sim: Simulation,
                                                  replayed: tuple[list, Path]) -> None:
    _, replay_store = replayed
    expected = store_counts(f"chdb://{replay_store}")
    assert flow["store"]["events"] == expected["events"] == sim.expected["counts"]["events"]
    counts = collections.Counter()
    for line in flow["log"].splitlines():
        if "Traceback" in line:
            counts["traceback"] += 1
    assert counts["traceback"] == 0, flow["log"][-3000:]


def test_the_scripted_incidents_come_out_with_their_grades(flow: dict[str, Any], sim: Simulation) -> None:
    latest = final_alerts(flow["alerts"])
    by_host: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for record in flow["alerts"]:
        if latest[record["alert_id"]] == record["grade"]:
            by_host[(record["utm_id"], record["host_mac"] or record["host_ip"])].append(record)
    for incident in sim.expected["incidents"]:
        if "grade" not in incident:
            continue
        host = incident["host"]["mac"] or incident["host"]["ip"]
        found = by_host.get((incident["utm_id"], host))
        assert found, f"no alert for {incident['kind']}"
        assert found[-1]["grade"] == incident["grade"], incident["kind"]
        assert found[-1]["status"] == incident["status"], incident["kind"]


def test_the_worker_and_replay_make_the_same_alerts(flow: dict[str, Any], replayed: tuple[list, Path]) -> None:
    replay_records, _ = replayed
    from_replay = final_alerts([r for r in replay_records if r["record"] == "alert"])
    assert final_alerts(flow["alerts"]) == from_replay


def test_alert_mails_reach_the_smtp_server_once_each(flow: dict[str, Any], sim: Simulation) -> None:
    ids = [m["Message-ID"] for m in flow["mails"]]
    assert ids and len(ids) == len(set(ids))
    tenants = {t["tenant_id"]: t for t in sim.registry["tenants"]}
    for mail in flow["mails"]:
        tenant = tenants[mail["X-Mimamori-Tenant"]]
        assert sorted(a.strip() for a in mail["To"].split(",")) == sorted(tenant["notify_emails"])
        if mail["X-Mimamori-Kind"] == "alert":
            stars = {"3": "★★★", "2": "★★☆", "1": "★☆☆", "0": "※調査中※"}[mail["X-Mimamori-Grade"]]
            assert stars in str(mail["Subject"])


def test_metrics_count_what_happened(flow: dict[str, Any], sim: Simulation) -> None:
    text = flow["metrics"]
    assert 'mimamori_rejections_total{reason="too_large"} 1.0' in text
    assert f"mimamori_duplicates_total {float(sim.expected['counts']['duplicates'])}" in text


def test_the_worker_is_healthy_after_the_run(flow: dict[str, Any]) -> None:
    assert flow["health"]["status"] == "ok", flow["health"]
    assert not flow["health"]["crashed"] and not flow["health"]["stalled"]
    assert {"detect", "mail-due", "heartbeat-check"} <= set(flow["health"]["progress"])


def test_every_metric_of_the_dashboard_and_the_rules_is_served_by_the_worker(flow: dict[str, Any]) -> None:
    from tests.support.monitoring import dashboard_exprs, names_in, rule_exprs, served_names

    used = names_in(dashboard_exprs()) | names_in(rule_exprs())
    assert used and not used - served_names(flow["metrics"])


def test_the_counters_moved_by_exactly_what_was_produced_rejected_and_alerted(flow: dict[str, Any],
                                                                              sim: Simulation) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for family in text_string_to_metric_families(flow["metrics"]):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                totals[sample.name][key] = sample.value
    assert sum(totals["mimamori_records_total"].values()) == len(sim.lines)
    rejected = {key.removeprefix("reason="): n for key, n in totals["mimamori_rejections_total"].items() if n}
    assert rejected == sim.expected["counts"]["rejections"]
    assert sum(totals["mimamori_alert_changes_total"].values()) == len(flow["alerts"])


def test_the_latency_lag_and_age_signals_are_populated(flow: dict[str, Any], sim: Simulation) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(flow["metrics"]) for s in family.samples}
    assert samples[("mimamori_event_to_alert_seconds_count", ())] >= 1
    handed = sum(v for (name, _), v in samples.items() if name == "mimamori_alert_to_smtp_seconds_count")
    assert handed >= 1, "no alert mail handed to SMTP was timed"
    lags = {labels: v for (name, labels), v in samples.items() if name == "mimamori_consumer_lag_records"}
    assert any(dict(labels)["topic"] == f"{flow['prefix']}utm.events" for labels in lags), lags
    assert samples[("mimamori_store_newest_row_age_seconds", (("table", "events"),))] < 300
    assert ("mimamori_mail_oldest_undelivered_age_seconds", (("grade", "3"),)) in samples
    utms = {dict(labels)["status"]: v for (name, labels), v in samples.items() if name == "mimamori_utms"}
    assert set(utms) == {"online", "offline"} and 0 < sum(utms.values()) <= len(sim.registry["utms"])
