"""Every metric the dashboard and the alert rules name is one the worker's Metrics define.

(tests/integration/test_worker_flow.py asks the same of a running worker's /metrics.)"""
from __future__ import annotations

from prometheus_client import generate_latest

from pipeline.io.metrics import Metrics
from tests.support.monitoring import dashboard_exprs, names_in, rule_exprs, served_names


def test_the_dashboard_and_the_rules_name_only_served_metrics() -> None:
    used = names_in(dashboard_exprs()) | names_in(rule_exprs())
    assert len(used) >= 20
    assert not used - served_names(generate_latest(Metrics().registry).decode())


def test_a_misspelt_name_would_be_caught() -> None:
    served = served_names(generate_latest(Metrics().registry).decode())
    assert names_in(['rate(mimamori_record_total{job="x"}[5m])']) - served == {"mimamori_record_total"}
    assert names_in(["mimamori:urgent_notices:rate5m", 'x{le="mimamori_x"}']) == set()
    assert {"mimamori_alert_to_smtp_seconds_bucket", "mimamori_consumer_lag_records",
            "mimamori_records_total"} <= served
