"""The worker's metrics as Prometheus reads them: names with units, bounded labels, sums over workers."""
from __future__ import annotations

import re

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.io.metrics import GRADES, NOTICE_BUCKETS, Metrics


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_every_name_carries_a_unit_or_is_a_count_and_no_label_is_an_id() -> None:
    text = generate_latest(Metrics().registry).decode()
    families = list(text_string_to_metric_families(text))
    assert families
    units = ("_seconds", "_records", "_total", "_age_seconds")
    counts = {"mimamori_utms", "mimamori_mails_undelivered", "mimamori_mails_parked", "mimamori_mass_outage"}
    for family in (f for f in families if not f.name.endswith("_created")):
        assert family.name.startswith("mimamori_")
        assert family.name in counts or family.name.endswith(units) or family.type == "counter", family.name
    labels = set(re.findall(r"[{,](\w+)=", text))
    assert not {label for label in labels if label.endswith("_id") or label in ("tenant", "utm", "alert")}


def test_notice_latency_is_observed_by_grade_with_the_objective_as_a_bucket() -> None:
    metrics = Metrics()
    metrics.observe_notice(3, 4.2)
    metrics.observe_notice(3, 12.0)
    metrics.observe_notice(None, 1.0)
    samples = scrape(metrics)
    assert value(samples, "mimamori_alert_to_smtp_seconds_bucket", grade="3", le="11.0") == 1
    assert value(samples, "mimamori_alert_to_smtp_seconds_count", grade="3") == 2
    assert value(samples, "mimamori_alert_to_smtp_seconds_count", grade="0") == 1
    assert value(samples, "mimamori_alert_to_smtp_seconds_count", grade="2") == 0  # present before any mail
    assert all(float(s) in NOTICE_BUCKETS for s in range(1, 31))
    assert set(GRADES) == {"0", "1", "2", "3"}


def test_consumer_lag_keeps_only_the_partitions_held_now() -> None:
    metrics = Metrics()
    metrics.set_consumer_lag({("utm.events", 0): 5, ("utm.events", 1): 7})
    metrics.set_consumer_lag({("utm.events", 1): 3, ("utm.heartbeats", 1): -2})
    samples = {k: v for k, v in scrape(metrics).items() if k[0] == "mimamori_consumer_lag_records"}
    assert samples == {
        ("mimamori_consumer_lag_records", (("partition", "1"), ("topic", "utm.events"))): 3,
        ("mimamori_consumer_lag_records", (("partition", "1"), ("topic", "utm.heartbeats"))): 0,
    }


def test_utms_by_status_sum_over_workers_to_the_whole_fleet() -> None:
    """Two workers, each reporting the UTMs of its own partitions: the sum by status is the fleet."""
    first, second = Metrics(), Metrics()
    first.set_utms({"online": 4, "offline": 1})
    second.set_utms({"online": 2})
    total: dict[str, float] = {}
    for worker in (first, second):
        for (name, labels), v in scrape(worker).items():
            if name == "mimamori_utms":
                status = dict(labels)["status"]
                total[status] = total.get(status, 0) + v
    assert total == {"online": 6, "offline": 1}
    with pytest.raises(ValueError, match="seen"):
        first.set_utms({"seen": 3})


def test_oldest_undelivered_mail_age_follows_the_clock_and_the_deliveries_per_grade() -> None:
    clock = Clock(1000.0)
    metrics = Metrics(clock=clock)
    name = "mimamori_mail_oldest_undelivered_age_seconds"
    assert {value(scrape(metrics), name, grade=g) for g in ("3", "2", "1", "0", "none")} == {0}
    metrics.mail_waiting("<a@x>", 900.0, 3)
    metrics.mail_waiting("<b@x>", 950.0, 3)
    metrics.mail_waiting("<c@x>", 980.0, None)
    metrics.mail_waiting("<a@x>", 990.0, 3)  # taken again after a retry: still waiting since 900
    assert value(scrape(metrics), name, grade="3") == 100
    assert value(scrape(metrics), name, grade="none") == 20
    assert value(scrape(metrics), name, grade="1") == 0
    clock.now = 1010.0
    metrics.mail_done("<a@x>")
    assert value(scrape(metrics), name, grade="3") == 60
    metrics.forget_mails(["<b@x>", "<c@x>"])
    assert value(scrape(metrics), name, grade="3") == value(scrape(metrics), name, grade="none") == 0


def test_parked_mails_by_grade_and_attempts_by_answer() -> None:
    metrics = Metrics()
    metrics.set_parked({"3": 2, "none": 1})
    samples = scrape(metrics)
    assert value(samples, "mimamori_mails_parked", grade="3") == 2
    assert value(samples, "mimamori_mails_parked", grade="none") == 1
    assert value(samples, "mimamori_mails_parked", grade="1") == 0
    metrics.set_parked({})
    assert value(scrape(metrics), "mimamori_mails_parked", grade="3") == 0
    metrics.mail_attempts.labels("deferred").inc(2)
    samples = scrape(metrics)
    assert value(samples, "mimamori_mail_attempts_total", outcome="deferred") == 2
    assert value(samples, "mimamori_mail_attempts_total", outcome="accepted") == 0


def test_newest_row_age_per_table() -> None:
    clock = Clock(500.0)
    metrics = Metrics(clock=clock)
    assert not [k for k in scrape(metrics) if k[0] == "mimamori_store_newest_row_age_seconds"]
    metrics.row_stored("events", 400.0)
    metrics.row_stored("events", 300.0)  # an older row does not make the table look staler
    metrics.row_stored("alerts", 490.0)
    samples = scrape(metrics)
    assert value(samples, "mimamori_store_newest_row_age_seconds", table="events") == 100
    assert value(samples, "mimamori_store_newest_row_age_seconds", table="alerts") == 10


def test_event_to_alert_latency_is_a_histogram_in_seconds() -> None:
    metrics = Metrics()
    metrics.event_to_alert.observe(0.2)
    samples = scrape(metrics)
    assert value(samples, "mimamori_event_to_alert_seconds_bucket", le="0.25") == 1
    assert value(samples, "mimamori_event_to_alert_seconds_bucket", le="0.1") == 0
