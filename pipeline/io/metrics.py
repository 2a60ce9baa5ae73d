"""Prometheus metrics of a worker: what SRE dashboards and alert rules read from `/metrics`.

Names carry their unit (`_seconds`, `_records`, `_total`); labels are bounded (topic, partition,
grade, kind, reason, table, agent, status), never a tenant, UTM, alert or mail id. The chart's
dashboard and PrometheusRule (helm/mimamori/files/) name these metrics; a test checks that each
one they name is served by a running worker.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

GRADES = ("3", "2", "1", "0")
"""Alert grades as label values: ★★★, ★★☆, ★☆☆, under investigation."""

MAIL_GRADES = (*GRADES, "none")
"""A mail's grade as a label value: the highest grade of its alerts, `none` for mails without one
(UTM, notice and report mails)."""

ATTEMPT_OUTCOMES = ("accepted", "deferred", "refused")

UTM_STATUSES = ("online", "offline")
"""The statuses of UTMs that have shown a sign of life; each UTM counts under exactly one."""

EVENT_TO_ALERT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
NOTICE_BUCKETS = tuple(float(s) for s in range(1, 31)) + (
    45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 360.0, 450.0, 600.0, 900.0, 1800.0, 3600.0)
"""Alert-to-SMTP buckets: every whole second up to 30 s, so the notification objective (the
urgent wait + 1 s, 11 s by default) is a bucket boundary for any urgent wait of 0-29 s; the chart
refuses an urgent wait whose objective is not one."""


def mail_grade(grade: int | str | None) -> str:
    label = "none" if grade is None else str(grade)
    return label if label in MAIL_GRADES else "none"


class _Ages(Collector):
    """Gauges of ages computed at scrape time from remembered instants (Unix seconds)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.waiting_mails: dict[str, tuple[float, str]] = {}
        self.newest_rows: dict[str, float] = {}
        self.store_holder: Callable[[], tuple[bool, int, int]] | None = None
        """(running, RSS bytes, restarts) of the embedded-store process, in the worker that holds it."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        oldest = GaugeMetricFamily(
            "mimamori_mail_oldest_undelivered_age_seconds",
            "Age of the oldest mail not yet delivered to all its recipients, nor dead-lettered, by the mail's "
            "grade (0 when none waits)", labels=["grade"])
        since: dict[str, float] = {}
        for at, grade in self.waiting_mails.values():
            since[grade] = min(at, since.get(grade, at))
        for grade in MAIL_GRADES:
            oldest.add_metric([grade], max(0.0, now - since[grade]) if grade in since else 0.0)
        yield oldest
        newest = GaugeMetricFamily(
            "mimamori_store_newest_row_age_seconds",
            "Age of the newest row this worker inserted into a ClickHouse table", labels=["table"])
        for table, at in sorted(self.newest_rows.items()):
            newest.add_metric([table], max(0.0, now - at))
        yield newest
        if self.store_holder is not None:
            up, rss, restarts = self.store_holder()
            yield GaugeMetricFamily("mimamori_store_holder_up", "1 while this worker's embedded-store process runs "
                                    "(only the worker that holds the embedded store has one)", value=1.0 if up else 0.0)
            yield GaugeMetricFamily("mimamori_store_holder_rss_bytes",
                                    "Resident memory of this worker's embedded-store process", value=float(rss))
            yield CounterMetricFamily("mimamori_store_holder_restarts", "Embedded-store processes started again "
                                      "after one ended (killed, out of memory)", value=float(restarts))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter("mimamori_records_total", "Input records taken", ["topic"], registry=r)
        self.rejections = Counter("mimamori_rejections_total", "Input records refused", ["reason"], registry=r)
        self.duplicates = Counter("mimamori_duplicates_total", "Events dropped as duplicates", registry=r)
        self.late = Counter("mimamori_late_events_total", "Events too late to join an alert", registry=r)
        self.alert_changes = Counter("mimamori_alert_changes_total", "Alert changes published", ["grade"], registry=r)
        self.mails = Counter("mimamori_mails_total", "Mails put in the outbox", ["kind"], registry=r)
        self.mails_delivered = Counter("mimamori_mails_delivered_total", "Mails delivered", ["kind"], registry=r)
        self.mail_failures = Counter("mimamori_mail_failures_total", "Failed delivery attempts", ["transient"], registry=r)
        self.mails_stuck = Gauge("mimamori_mails_undelivered", "Mails waiting for a retry", registry=r)
        self.mails_parked = Gauge(
            "mimamori_mails_parked", "Mails of this worker's partitions parked until their next attempt (a "
            "recipient deferred), by the mail's grade", ["grade"], registry=r)
        self.mail_attempts = Counter(
            "mimamori_mail_attempts_total", "Delivery attempts per recipient, by the relay's answer", ["outcome"],
            registry=r)
        self.store_rows = Counter("mimamori_store_rows_total", "Rows inserted into ClickHouse", ["table"], registry=r)
        self.store_failures = Counter("mimamori_store_failures_total", "Failed ClickHouse inserts", ["table"], registry=r)
        self.store_latency = Histogram("mimamori_store_insert_seconds", "ClickHouse insert latency", ["table"], registry=r)
        self.agent_errors = Counter("mimamori_agent_errors_total", "Records an agent could not process", ["agent"], registry=r)
        self.agent_last_progress = Gauge("mimamori_agent_last_progress_seconds", "Unix time an agent last made progress", ["agent"], registry=r)
        self.utms = Gauge("mimamori_utms", "UTMs by status, of this worker's input partitions only (sums over workers)",
                          ["status"], registry=r)
        self.mass_outage = Gauge("mimamori_mass_outage", "1 while a mass outage of UTMs is declared", registry=r)
        self.registry_refused = Counter(
            "mimamori_registry_records_refused_total",
            "Records of the registry topics refused by their schema (the previous version of the tenant or UTM stays)",
            ["kind"], registry=r)
        self.batch_seconds = Histogram("mimamori_batch_seconds", "Time to process one input batch", ["agent"], registry=r)
        self.batch_stage_seconds = Histogram(
            "mimamori_batch_stage_seconds", "Time one partition's batch spends per stage (handle: the logic; "
            "commit: its Kafka transaction)", ["processor", "stage"], registry=r)
        self.restore_seconds = Histogram(
            "mimamori_restore_seconds", "Time to read a partition's saved state after its assignment",
            ["processor"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600), registry=r)

        # Are customers told in time? (issue 13)
        self.event_to_alert = Histogram(
            "mimamori_event_to_alert_seconds",
            "From an event's arrival (its Kafka record timestamp) to the alert change it caused being acknowledged by Kafka",
            buckets=EVENT_TO_ALERT_BUCKETS, registry=r)
        self.alert_to_smtp = Histogram(
            "mimamori_alert_to_smtp_seconds",
            "From an alert's arrival at the mail desk to its mail being accepted by the SMTP server, per alert, by grade",
            ["grade"], buckets=NOTICE_BUCKETS, registry=r)
        self.consumer_lag = Gauge(
            "mimamori_consumer_lag_records",
            "Records of an input partition assigned to this worker not yet processed (high watermark - position)",
            ["topic", "partition"], registry=r)
        self._ages = _Ages(clock)
        r.register(self._ages)
        for grade in GRADES:
            self.alert_to_smtp.labels(grade)
            self.alert_changes.labels(grade)
        for kind in ("tenant", "utm"):
            self.registry_refused.labels(kind)
        for status in UTM_STATUSES:
            self.utms.labels(status)
        for transient in ("true", "false"):
            self.mail_failures.labels(transient)
        for grade in MAIL_GRADES:
            self.mails_parked.labels(grade)
        for outcome in ATTEMPT_OUTCOMES:
            self.mail_attempts.labels(outcome)

    # --- what the runtime calls ---------------------------------------------------------------

    def observe_notice(self, grade: int | None, seconds: float) -> None:
        """One alert of a mail handed to SMTP, `seconds` after it reached the mail desk."""
        label = str(grade) if grade is not None and str(grade) in GRADES else "0"
        self.alert_to_smtp.labels(label).observe(max(0.0, seconds))

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """The lag of every input partition this worker holds now; partitions it no longer holds
        disappear, so summing over workers counts each partition once."""
        self.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(max(0, lag))

    def set_utms(self, counts: Mapping[str, int]) -> None:
        """UTMs of this worker's partitions by status; a status not given is 0."""
        unknown = set(counts) - set(UTM_STATUSES)
        if unknown:
            raise ValueError(f"unknown UTM status {sorted(unknown)}; expected {UTM_STATUSES}")
        for kind in ("tenant", "utm"):
            self.registry_refused.labels(kind)
        for status in UTM_STATUSES:
            self.utms.labels(status).set(counts.get(status, 0))

    def mail_waiting(self, message_id: str, since: float, grade: int | str | None = None) -> None:
        """A mail taken for delivery at `since` (Unix seconds); it counts until `mail_done`."""
        self._ages.waiting_mails.setdefault(message_id, (since, mail_grade(grade)))

    def set_parked(self, counts: Mapping[str, int]) -> None:
        """Parked mails of this worker's partitions by grade label; a grade not given is 0."""
        for grade in MAIL_GRADES:
            self.mails_parked.labels(grade).set(counts.get(grade, 0))

    def mail_done(self, message_id: str) -> None:
        """Handed to SMTP, or dead-lettered: no longer waiting."""
        self._ages.waiting_mails.pop(message_id, None)

    def forget_mails(self, message_ids: Iterable[str]) -> None:
        """Mails of partitions this worker gave away."""
        for message_id in message_ids:
            self._ages.waiting_mails.pop(message_id, None)

    def watch_store_holder(self, state: Callable[[], tuple[bool, int, int]]) -> None:
        """Export the embedded-store process's state, read at each scrape: (running, RSS bytes, restarts)."""
        self._ages.store_holder = state

    def row_stored(self, table: str, row_time: float) -> None:
        """A row whose own time (arrival, for events) is `row_time` is in ClickHouse."""
        if row_time > self._ages.newest_rows.get(table, float("-inf")):
            self._ages.newest_rows[table] = row_time
