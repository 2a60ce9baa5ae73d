"""The chart's monitoring: the Grafana dashboard ConfigMap and the PrometheusRule, checked with the
real tools (helm renders them, promtool checks the rules and runs their unit tests below).

Each case of ALERT_CASES is a promtool unit test: input series, and the alerts that must (or must
not) be firing at a time. The expected annotations are read from the rendered rule itself (promtool
compares them whole); that each alert has a level and a runbook line is asserted separately.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support import tools

CHART = Path(__file__).resolve().parents[2] / "helm" / "mimamori"
KUBE_VERSION = "1.30.0"
JOB = 'job="rel-mimamori"'


def render(*sets: str, show: str, check: bool = True) -> str:
    flags = [flag for item in sets for flag in ("--set", item)]
    result = tools.run("helm", "template", "rel", str(CHART), "--kube-version", KUBE_VERSION, *flags,
                       "--show-only", f"templates/{show}", check=check, timeout=60)
    return result.stdout if check else result.stderr


def rule_file(*sets: str) -> str:
    """The PrometheusRule's spec as a plain Prometheus rule file (what promtool reads)."""
    doc = render("monitoring.prometheusRule.enabled=true", *sets, show="prometheusrule.yaml")
    spec = doc.split("\nspec:\n", 1)[1]
    return "\n".join(line[2:] for line in spec.splitlines()) + "\n"


def alerts_of(rules: str) -> dict[str, dict[str, str]]:
    """alert name -> its labels and annotations, read from the rendered rule file."""
    found: dict[str, dict[str, str]] = {}
    for block in re.split(r"^\s+- (?=alert: )", rules, flags=re.M)[1:]:
        name = re.match(r"alert: (\w+)", block).group(1)  # type: ignore[union-attr]
        fields = dict(re.findall(r"^\s+(level|severity|summary|runbook|runbook_url): (.+)$", block, re.M))
        found[name] = {k: json.loads(v) if v.startswith('"') else v for k, v in fields.items()}
    return found


@pytest.fixture(scope="module")
def rules() -> str:
    return rule_file()


def test_every_alert_has_a_fault_level_and_a_runbook_line(rules: str) -> None:
    alerts = alerts_of(rules)
    assert set(alerts) == {
        "MimamoriUrgentNoticesLate", "MimamoriMailsStuck", "MimamoriMailsDeadLettered",
        "MimamoriMailDeliveryRetrying", "MimamoriConsumerLagGrowing", "MimamoriStoreInsertsFailing",
        "MimamoriStoreStale", "MimamoriRejectionSpike", "MimamoriMassOutage", "MimamoriNoInput",
        "MimamoriWorkerDown", "MimamoriAllWorkersDown"}
    for name, alert in alerts.items():
        assert alert["level"] in ("A", "B", "Z"), name
        assert {"A": "critical", "B": "warning", "Z": "info"}[alert["level"]] == alert["severity"]
        assert len(alert["runbook"]) > 40 and alert["summary"], name
    assert alerts["MimamoriUrgentNoticesLate"]["level"] == "A" and alerts["MimamoriWorkerDown"]["level"] == "Z"


def test_promtool_accepts_the_rules(rules: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rules)
    checked = tools.run("promtool", "check", "rules", str(tmp_path / "rules.yaml"))
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_the_objective_follows_the_urgent_wait_and_runbook_urls_the_base() -> None:
    rules = rule_file("config.mailUrgentWait=20s", "monitoring.prometheusRule.runbookUrl=https://wiki/mimamori")
    assert 'le="21.0"' in rules and 'le="11.0"' not in rules
    assert alerts_of(rules)["MimamoriMailsStuck"]["runbook_url"] == "https://wiki/mimamori#mimamorimailsstuck"
    refused = render("monitoring.prometheusRule.enabled=true", "config.mailUrgentWait=1m",
                     show="prometheusrule.yaml", check=False)
    assert "config.mailUrgentWait 1m" in refused and "at most 30 s" in refused


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    matchers = ",".join([*(f'{k}="{v}"' for k, v in labels.items()), JOB])
    return {"series": f"{name}{{{matchers}}}", "values": values}


UP = series("up", "1x120", instance="w1")
FLOWING = series("mimamori_records_total", "0+600x120", topic="utm.events", instance="w1")

# (what the case shows, input series, [(minute, alert name, fires?)])
ALERT_CASES: list[tuple[str, list[dict[str, str]], list[tuple[int, str, bool]]]] = [
    ("a fifth of the ★★★ notices late: level A",
     [UP, FLOWING,
      series("mimamori_alert_to_smtp_seconds_count", "0+10x120", grade="3", instance="w1"),
      series("mimamori_alert_to_smtp_seconds_bucket", "0+8x120", grade="3", le="11.0", instance="w1")],
     [(20, "MimamoriUrgentNoticesLate", True)]),
    ("every ★★★ notice in time, the grade-2 ones slow: nothing fires",
     [UP, FLOWING,
      series("mimamori_alert_to_smtp_seconds_count", "0+10x120", grade="3", instance="w1"),
      series("mimamori_alert_to_smtp_seconds_bucket", "0+10x120", grade="3", le="11.0", instance="w1"),
      series("mimamori_alert_to_smtp_seconds_count", "0+10x120", grade="2", instance="w1"),
      series("mimamori_alert_to_smtp_seconds_bucket", "0x120", grade="2", le="11.0", instance="w1")],
     [(20, "MimamoriUrgentNoticesLate", False), (90, "MimamoriUrgentNoticesLate", False)]),
    ("every delivered ★★★ notice in time, but a ★★★ mail parked for 5 minutes: level A",
     [UP, FLOWING,
      series("mimamori_alert_to_smtp_seconds_count", "0+10x120", grade="3", instance="w1"),
      series("mimamori_alert_to_smtp_seconds_bucket", "0+10x120", grade="3", le="11.0", instance="w1"),
      series("mimamori_mails_parked", "0x20 1x5 0x95", grade="3", instance="w1"),
      series("mimamori_mails_parked", "0x20 1x5 0x95", grade="3", instance="w2"),
      series("mimamori_mails_parked", "3x120", grade="1", instance="w1")],
     [(19, "MimamoriUrgentNoticesLate", False), (24, "MimamoriUrgentNoticesLate", True),
      (40, "MimamoriUrgentNoticesLate", False)]),
    ("a mail waiting 20 minutes for SMTP: level A; a retried one: level B",
     [UP, FLOWING,
      series("mimamori_mail_oldest_undelivered_age_seconds", "0+60x120", instance="w1"),
      series("mimamori_mail_failures_total", "0+1x120", transient="true", instance="w1")],
     [(5, "MimamoriMailsStuck", False), (20, "MimamoriMailsStuck", True),
      (30, "MimamoriMailDeliveryRetrying", True), (30, "MimamoriMailsDeadLettered", False)]),
    ("a mail refused for good: level A at once",
     [UP, FLOWING, series("mimamori_mail_failures_total", "0x10 1x30", transient="false", instance="w1")],
     [(5, "MimamoriMailsDeadLettered", False), (12, "MimamoriMailsDeadLettered", True)]),
    ("workers up, input stopped after 10 minutes: level A after 15 more",
     [UP, series("mimamori_records_total", "0+600x10 6000x110", topic="utm.events", instance="w1")],
     [(20, "MimamoriNoInput", False), (45, "MimamoriNoInput", True)]),
    ("input flowing: no NoInput",
     [UP, FLOWING], [(45, "MimamoriNoInput", False), (45, "MimamoriAllWorkersDown", False)]),
    ("one of two workers down: Z; both down: A",
     [series("up", "1x10 0x60", instance="w1"), series("up", "1x40 0x30", instance="w2"), FLOWING],
     [(20, "MimamoriWorkerDown", True), (20, "MimamoriAllWorkersDown", False), (50, "MimamoriAllWorkersDown", True)]),
    ("a mass outage declared: level A",
     [UP, FLOWING, series("mimamori_mass_outage", "0x5 1x30", instance="w1")],
     [(4, "MimamoriMassOutage", False), (10, "MimamoriMassOutage", True)]),
    ("lag growing for 10 minutes past 1000 records; store failing; a tenth rejected: level B",
     [UP, FLOWING,
      series("mimamori_consumer_lag_records", "0+200x120", topic="utm.events", partition="0", instance="w1"),
      series("mimamori_store_failures_total", "0+3x120", table="events", instance="w1"),
      series("mimamori_rejections_total", "0+60x120", reason="schema", instance="w1")],
     [(30, "MimamoriConsumerLagGrowing", True), (30, "MimamoriStoreInsertsFailing", True),
      (30, "MimamoriRejectionSpike", True)]),
    ("a steady lag, store fine, 1% rejected: none of those",
     [UP, FLOWING,
      series("mimamori_consumer_lag_records", "5000x120", topic="utm.events", partition="0", instance="w1"),
      series("mimamori_store_failures_total", "0x120", table="events", instance="w1"),
      series("mimamori_rejections_total", "0+6x120", reason="schema", instance="w1")],
     [(30, "MimamoriConsumerLagGrowing", False), (30, "MimamoriStoreInsertsFailing", False),
      (30, "MimamoriRejectionSpike", False)]),
    ("no event reached the store for 40 minutes while input flows: level B",
     [UP, FLOWING, series("mimamori_store_newest_row_age_seconds", "0+60x120", table="events", instance="w1")],
     [(20, "MimamoriStoreStale", False), (45, "MimamoriStoreStale", True)]),
]


def promtool_tests(rules: str) -> dict:
    alerts = alerts_of(rules)
    tests = []
    for title, inputs, expectations in ALERT_CASES:
        checks = []
        for minute, name, fires in expectations:
            expected = []
            if fires:
                alert = alerts[name]
                labels = {"level": alert["level"], "severity": alert["severity"]}
                labels.update(json.loads("{%s}" % ",".join(
                    f'"{k}":"{v}"' for k, v in re.findall(r'(\w+)="([^"]*)"', _firing_labels(name, inputs)))))
                expected.append({"exp_labels": labels, "exp_annotations": {
                    k: alert[k] for k in ("summary", "runbook", "runbook_url") if k in alert}})
            checks.append({"eval_time": f"{minute}m", "alertname": name, "exp_alerts": expected})
        tests.append({"name": title, "interval": "1m", "input_series": inputs, "alert_rule_test": checks})
    return {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}


def _firing_labels(name: str, inputs: list[dict[str, str]]) -> str:
    """The labels an alert keeps from its expression: only `up == 0` keeps the series' own."""
    if name == "MimamoriWorkerDown":
        return next(s["series"] for s in inputs if s["series"].startswith("up{") and "0x" in s["values"]
                    and s["values"].startswith("1x10"))
    return ""  # an aggregation or absent() of an expression keeps no labels


def test_promtool_unit_tests_of_the_alerts(rules: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rules)
    (tmp_path / "alerts_test.json").write_text(json.dumps(promtool_tests(rules), ensure_ascii=False, indent=1))
    result = tools.run("promtool", "test", "rules", str(tmp_path / "alerts_test.json"), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_a_wrongly_expected_alert_fails_promtool(rules: str, tmp_path: Path) -> None:
    """The unit tests above can fail: the same input with the opposite expectation is refused."""
    (tmp_path / "rules.yaml").write_text(rules)
    suite = promtool_tests(rules)
    suite["tests"] = [suite["tests"][1]]
    suite["tests"][0]["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"level": "A", "severity": "critical"}}]
    (tmp_path / "wrong_test.json").write_text(json.dumps(suite, ensure_ascii=False))
    result = tools.run("promtool", "test", "rules", str(tmp_path / "wrong_test.json"), check=False)
    assert result.returncode != 0 and "MimamoriUrgentNoticesLate" in result.stdout + result.stderr


def test_the_slo_recording_rule_is_the_share_in_time(rules: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rules)
    suite = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            series("mimamori_alert_to_smtp_seconds_count", "0+30x120", grade="3", instance="w1"),
            series("mimamori_alert_to_smtp_seconds_bucket", "0+27x120", grade="3", le="11.0", instance="w1"),
            series("mimamori_alert_to_smtp_seconds_count", "0+30x120", grade="3", instance="w2"),
            series("mimamori_alert_to_smtp_seconds_bucket", "0+30x120", grade="3", le="11.0", instance="w2"),
            series("mimamori_alert_to_smtp_seconds_count", "0+50x120", grade="1", instance="w1"),
        ],
        "promql_expr_test": [
            {"expr": "mimamori:urgent_notices_in_time:ratio_rate5m", "eval_time": "30m",
             "exp_samples": [{"labels": "mimamori:urgent_notices_in_time:ratio_rate5m", "value": 0.95}]},
            {"expr": "mimamori:urgent_notices:rate1h", "eval_time": "90m",
             "exp_samples": [{"labels": "mimamori:urgent_notices:rate1h", "value": 1.0}]},
        ],
    }]}
    (tmp_path / "slo_test.json").write_text(json.dumps(suite))
    result = tools.run("promtool", "test", "rules", str(tmp_path / "slo_test.json"), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the dashboard ------------------------------------------------------------------------------

def dashboard() -> dict:
    return json.loads((CHART / "files" / "dashboard.json").read_text(encoding="utf-8"))


def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_json() -> None:
    doc = render(show="configmap-dashboard.yaml")
    assert 'grafana_dashboard: "1"' in doc and "kind: ConfigMap" in doc
    body = doc.split("mimamori.json: |-\n", 1)[1]
    assert json.loads("\n".join(line[4:] for line in body.splitlines())) == dashboard()
    off = render("monitoring.dashboard.enabled=false", show="configmap-dashboard.yaml", check=False)
    assert "could not find template" in off


def test_the_dashboard_shows_the_notification_path_first() -> None:
    panels = dashboard()["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows[0].startswith("Notifications") and len(rows) >= 4
    first_row = panels[1:panels.index(next(p for p in panels[1:] if p["type"] == "row"))]
    exprs = " ".join(t["expr"] for p in first_row for t in p["targets"])
    for name in ("mimamori:urgent_notices_in_time:ratio_rate1h", "mimamori_alert_to_smtp_seconds_bucket",
                 "mimamori_mail_oldest_undelivered_age_seconds", "mimamori_mail_failures_total"):
        assert name in exprs
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] for p in panels if p["type"] != "row")
