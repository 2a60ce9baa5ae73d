"""Prometheus metrics of a portal replica (`/metrics`): bounded labels (route template, code, outcome)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

PAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)


class PortalMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.requests = Counter("mimamori_portal_requests_total", "Requests answered, by route and code",
                                ["route", "code"], registry=r)
        self.seconds = Histogram("mimamori_portal_request_seconds", "Time to answer a request, by route",
                                 ["route"], buckets=PAGE_BUCKETS, registry=r)
        self.logins = Counter("mimamori_portal_logins_total", "Login attempts, by outcome (ok, wrong, locked, "
                              "disabled, expired, totp_wrong)", ["outcome"], registry=r)
        self.store_failures = Counter("mimamori_portal_store_failures_total",
                                      "Requests the store could not answer", registry=r)
        self.csrf_refused = Counter("mimamori_portal_csrf_refused_total", "Forms refused for a missing or wrong "
                                    "CSRF token", registry=r)
