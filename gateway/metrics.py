"""Prometheus metrics of a gateway (`/metrics`). Bounded labels (endpoint, code, reason, why);
per-UTM upload age as a distribution over UTMs, never a UTM id as a label."""
from __future__ import annotations

import time
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

AGE_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 6 * 3600.0, 86400.0)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _UploadAges(Collector):
    """How long since each UTM's last upload this gateway acknowledged, as a gauge histogram over the
    UTMs it has seen, and the oldest of them."""

    def __init__(self, last_upload: dict[str, float], clock: Callable[[], float]) -> None:
        self.last_upload = last_upload
        self.clock = clock

    def collect(self) -> Iterator[GaugeHistogramMetricFamily | GaugeMetricFamily]:
        now = self.clock()
        ages = [max(0.0, now - at) for at in self.last_upload.values()]
        buckets = [(str(b), float(sum(1 for a in ages if a <= b))) for b in AGE_BUCKETS] + [("+Inf", float(len(ages)))]
        yield GaugeHistogramMetricFamily(
            "mimamori_gateway_utm_upload_age_seconds",
            "UTMs by the age of their last upload acknowledged by this gateway", buckets=buckets, gsum_value=sum(ages))
        oldest = GaugeMetricFamily("mimamori_gateway_oldest_utm_upload_age_seconds",
                                   "Age of the oldest last upload among the UTMs this gateway has seen (0 when none)")
        oldest.add_metric([], max(ages, default=0.0))
        yield oldest


class GatewayMetrics:
    def __init__(self, last_upload: dict[str, float], registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.requests = Counter("mimamori_gateway_requests_total", "Upload requests answered", ["endpoint", "code"],
                                registry=r)
        self.records = Counter("mimamori_gateway_records_total", "Records received", ["endpoint", "outcome"], registry=r)
        self.refusals = Counter("mimamori_gateway_refusals_total", "Records refused, by reason", ["reason"], registry=r)
        self.auth_failures = Counter("mimamori_gateway_auth_failures_total", "Requests answered 401, by why", ["why"],
                                     registry=r)
        self.ack_seconds = Histogram("mimamori_gateway_ack_seconds",
                                     "From handing an upload's records to the producer to the broker's acknowledgement",
                                     buckets=ACK_BUCKETS, registry=r)
        self.request_seconds = Histogram("mimamori_gateway_request_seconds", "Upload request time, answered 202",
                                         buckets=ACK_BUCKETS, registry=r)
        self.in_flight = Gauge("mimamori_gateway_requests_in_flight", "Upload requests being handled", registry=r)
        self.broker_up = Gauge("mimamori_gateway_broker_up", "1 while the broker acknowledges, 0 while it does not",
                               registry=r)
        self.broker_up.set(1)
        r.register(_UploadAges(last_upload, clock))
