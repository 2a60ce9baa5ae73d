"""Prometheus metrics of a worker: what SRE dashboards read from `/metrics`."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
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
        self.store_rows = Counter("mimamori_store_rows_total", "Rows inserted into ClickHouse", ["table"], registry=r)
        self.store_failures = Counter("mimamori_store_failures_total", "Failed ClickHouse inserts", ["table"], registry=r)
        self.store_latency = Histogram("mimamori_store_insert_seconds", "ClickHouse insert latency", ["table"], registry=r)
        self.agent_errors = Counter("mimamori_agent_errors_total", "Records an agent could not process", ["agent"], registry=r)
        self.agent_last_progress = Gauge("mimamori_agent_last_progress_seconds", "Unix time an agent last made progress", ["agent"], registry=r)
        self.utms = Gauge("mimamori_utms", "UTMs by status, on this worker", ["status"], registry=r)
        self.mass_outage = Gauge("mimamori_mass_outage", "1 while a mass outage of UTMs is declared", registry=r)
        self.batch_seconds = Histogram("mimamori_batch_seconds", "Time to process one input batch", ["agent"], registry=r)
