"""The Helm chart (helm/mimamori) against the settings it has to deliver.

values.yaml names every MIMAMORI_* variable of pipeline.config.ENVIRONMENT, with the contract's
defaults, and the chart's env block sets each. With the `helm` that scripts/tools.sh builds (the
tests fail without it): `helm lint` and `helm template` with the default values and with
ci/production-values.yaml, values.schema.json refusing wrong values, and the rendered worker
environment loads with pipeline.config.load_settings. No PyYAML here: values.yaml and the rendered manifests are read
with the small line parsers below, which only need the chart's own plain layout.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from pipeline.config import ENVIRONMENT, Settings, load_settings
from pipeline.io.kafka_admin import PARTITIONS
from tests.support import tools

CHART = Path(__file__).resolve().parents[2] / "helm" / "mimamori"
KUBE_VERSION = "1.30.0"

# variable -> the values.yaml key that sets it
VALUE_OF_VARIABLE = {
    "MIMAMORI_KAFKA": "kafka.bootstrap",
    "MIMAMORI_CLICKHOUSE": "clickhouse.host",
    "MIMAMORI_SMTP": "smtp.url",
    "MIMAMORI_TZ": "config.tz",
    "MIMAMORI_DEDUP_WINDOW": "config.dedupWindow",
    "MIMAMORI_CORRELATION_WINDOW": "config.correlationWindow",
    "MIMAMORI_MAIL_GROUP_WAIT": "config.mailGroupWait",
    "MIMAMORI_MAIL_GROUP_INTERVAL": "config.mailGroupInterval",
    "MIMAMORI_MAIL_URGENT_WAIT": "config.mailUrgentWait",
    "MIMAMORI_HEARTBEAT_TIMEOUT": "config.heartbeatTimeout",
    "MIMAMORI_HEARTBEAT_DAILY_AT": "config.heartbeatDailyAt",
    "MIMAMORI_WEB_PORT": "config.webPort",
    "MIMAMORI_LOG_FORMAT": "config.logFormat",
    "MIMAMORI_REPORT_AT": "config.reportAt",
    "MIMAMORI_REPORT_MAIL_RATE": "config.reportMailRate",
    "MIMAMORI_RULES": "rules.enabled",
    "MIMAMORI_NOTICE_MAIL_RATE": "config.noticeMailRate",
    "MIMAMORI_MAIL_GIVE_UP": "config.mailGiveUp",
    "MIMAMORI_TOPIC_PREFIX": "kafka.topicPrefix",
    "MIMAMORI_MAX_POLL_INTERVAL": "config.maxPollInterval",
    "MIMAMORI_GATEWAY_PORT": "gateway.port",
    "MIMAMORI_GATEWAY_MAX_BODY": "gateway.maxBody",
    "MIMAMORI_GATEWAY_KEY": "gateway.key",
    "MIMAMORI_GATEWAY_TLS_CERT": "gateway.tls.secretName",
    "MIMAMORI_GATEWAY_TLS_KEY": "gateway.tls.secretName",
    "MIMAMORI_GATEWAY_ACK_TIMEOUT": "gateway.ackTimeout",
    "MIMAMORI_KAFKA_SECURITY": "kafka.security",
    "MIMAMORI_KAFKA_SASL_MECHANISM": "kafka.sasl.mechanism",
    "MIMAMORI_KAFKA_USERNAME": "kafka.sasl.username",
    "MIMAMORI_KAFKA_PASSWORD": "kafka.sasl.existingSecret",
    "MIMAMORI_KAFKA_CA_FILE": "kafka.tls.caSecret",
    "MIMAMORI_PORTAL_PORT": "portal.port",
    "MIMAMORI_PORTAL_KEY": "portal.key",
}
GATEWAY_ONLY = {v for v in VALUE_OF_VARIABLE if v.startswith(("MIMAMORI_GATEWAY_", "MIMAMORI_PORTAL_"))}
"""Settings of the gateway's or the portal's pods only (templates/gateway.yaml, portal.yaml); the
worker's pods do not get them."""
KAFKA_SASL_AND_CA = {"MIMAMORI_KAFKA_SASL_MECHANISM", "MIMAMORI_KAFKA_USERNAME", "MIMAMORI_KAFKA_PASSWORD",
                     "MIMAMORI_KAFKA_CA_FILE"}
"""Rendered only when kafka.security asks for them (SASL) and a CA Secret is named."""


def _strip_comment(line: str) -> str:
    quote = ""
    for i, char in enumerate(line):
        if char in "\"'" and not quote:
            quote = char
        elif char == quote:
            quote = ""
        elif char == "#" and not quote and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def parse_values(text: str) -> dict[str, str | None]:
    """Dotted key -> scalar text (unquoted), or None for a key that opens a nested mapping.
    List items and flow collections are kept as their raw text."""
    keys: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not line.strip() or line.lstrip().startswith("- "):
            continue
        match = re.match(r"^( *)([A-Za-z0-9_.\-/]+):(?: (.*))?$", line)
        assert match, f"values.yaml line the test parser does not read: {raw!r}"
        indent, key, value = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        if value is None:
            keys[path] = None
            stack.append((indent, key))
        else:
            keys[path] = value[1:-1] if value[:1] in "\"'" and value[-1:] == value[:1] else value
    return keys


@pytest.fixture(scope="module")
def values() -> dict[str, str | None]:
    return parse_values((CHART / "values.yaml").read_text(encoding="utf-8"))


def test_the_test_table_names_exactly_the_settings_of_the_contract() -> None:
    assert set(VALUE_OF_VARIABLE) == set(ENVIRONMENT)


def test_values_have_a_key_for_every_setting(values: dict[str, str | None]) -> None:
    missing = {var: key for var, key in VALUE_OF_VARIABLE.items() if key not in values}
    assert not missing


def test_values_carry_the_contract_defaults(values: dict[str, str | None]) -> None:
    """Each plain setting's value, read as the worker reads it, equals the Settings default.
    The store and the mail URL differ on purpose (a server and a Secret in production); no rules
    file means the built-in policy, as in the contract; no Kafka user, password or CA by default."""
    defaults = Settings()
    plain = {var: key for var, key in VALUE_OF_VARIABLE.items()
             if var not in ("MIMAMORI_CLICKHOUSE", "MIMAMORI_SMTP", "MIMAMORI_RULES", "MIMAMORI_GATEWAY_KEY",
                            "MIMAMORI_GATEWAY_TLS_CERT", "MIMAMORI_GATEWAY_TLS_KEY", "MIMAMORI_KAFKA_USERNAME",
                            "MIMAMORI_KAFKA_PASSWORD", "MIMAMORI_KAFKA_CA_FILE", "MIMAMORI_PORTAL_KEY")}
    read = {var: ENVIRONMENT[var][1](values[key] or "") for var, key in plain.items()}
    assert read == {var: getattr(defaults, ENVIRONMENT[var][0]) for var in plain}
    assert values["rules.enabled"] == "false" and defaults.rules_file is None
    assert values["kafka.sasl.username"] == values["kafka.sasl.password"] == values["kafka.tls.caSecret"] == ""


def test_the_production_store_is_a_clickhouse_server_with_the_password_from_a_secret(
        values: dict[str, str | None]) -> None:
    assert values["clickhouse.embedded.enabled"] == "false"
    assert {"clickhouse.existingSecret", "clickhouse.existingSecretKey", "smtp.existingSecret"} <= set(values)
    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    assert "clickhouse://%s:$(CLICKHOUSE_PASSWORD)@" in helpers


def test_the_env_block_sets_every_variable() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    named = set(re.findall(r"- name: (MIMAMORI_\w+)", helpers))
    assert named == set(ENVIRONMENT)


def test_the_parser_reads_nesting_quotes_and_comments() -> None:
    parsed = parse_values('a:\n  b: "09:00"  # c\n  d:\n    e: x # y\nf: {cpu: 1}\n  # g: 2\n')
    assert parsed == {"a": None, "a.b": "09:00", "a.d": None, "a.d.e": "x", "f": "{cpu: 1}"}


def test_the_workers_replicas_stop_at_the_partition_count() -> None:
    """The chart cannot import PARTITIONS: its schema's bound and the values' comment follow it here."""
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert schema["properties"]["replicaCount"]["maximum"] == PARTITIONS
    assert f"({PARTITIONS} per topic)" in (CHART / "values.yaml").read_text(encoding="utf-8")
    runbook = (CHART / "templates" / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert f"({PARTITIONS} at most, the partition count)" in runbook


# --- with the helm binary (scripts/tools.sh builds it; required, never skipped) ----------------

PRODUCTION = CHART / "ci" / "production-values.yaml"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return tools.run("helm", *args, check=check, timeout=60)


def render(*sets: str, values_file: Path | None = None) -> list[str]:
    flags = [flag for item in sets for flag in ("--set", item)]
    flags += ["-f", str(values_file)] if values_file else []
    out = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, *flags).stdout
    return [doc for doc in re.split(r"^---$", out, flags=re.M) if doc.strip()]


def kind_of(doc: str) -> str:
    match = re.search(r"^kind: (\w+)", doc, re.M)
    return match.group(1) if match else ""


def secret_data(docs: list[str]) -> dict[tuple[str, str], str]:
    data: dict[tuple[str, str], str] = {}
    for doc in docs:
        if kind_of(doc) != "Secret":
            continue
        name = re.search(r"^  name: (\S+)", doc, re.M).group(1)  # type: ignore[union-attr]
        body = doc.split("stringData:\n", 1)[1]
        for key, value in re.findall(r"^  (\S+): \"(.*)\"$", body, re.M):
            data[(name, key)] = value
    return data


def worker_environment(docs: list[str], password: str, component: str = "worker") -> dict[str, str]:
    """The worker's (or gateway's) container env as the kubelet would give it, the chart's Secrets resolved."""
    worker = next(doc for doc in docs if kind_of(doc) in ("Deployment", "StatefulSet")
                  and f"app.kubernetes.io/component: {component}" in doc)
    secrets = secret_data(docs)
    env: dict[str, str] = {"CLICKHOUSE_PASSWORD": password}
    entry = re.compile(r"- name: (\w+)\n\s+(?:value: \"?(.*?)\"?\n|valueFrom:\n\s+secretKeyRef:\n"
                       r"\s+name: (\S+)\n\s+key: (\S+)\n)")
    for name, value, secret, key in entry.findall(worker.split("env:\n", 1)[1].split("ports:", 1)[0]):
        if secret:
            env[name] = secrets.get((secret, key), password)
        else:
            env[name] = value.replace("$(CLICKHOUSE_PASSWORD)", env["CLICKHOUSE_PASSWORD"])
    return env


def test_helm_lint_passes_with_defaults_production_values_and_every_option() -> None:
    helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART))
    helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), "-f", str(PRODUCTION))
    helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), "--set", "clickhouse.embedded.enabled=true",
         "--set", "rules.enabled=true", "--set", "rules.content=x", "--set", "serviceMonitor.enabled=true")


def test_rendered_worker_environment_loads_as_the_default_settings() -> None:
    docs = render("clickhouse.password=p%40ss")
    kinds = sorted(kind_of(doc) for doc in docs)
    assert kinds == ["ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Secret", "Secret", "Service", "ServiceAccount"]
    env = worker_environment(docs, "from the chart's Secret")
    assert set(ENVIRONMENT) - set(env) == {"MIMAMORI_RULES"} | GATEWAY_ONLY | KAFKA_SASL_AND_CA
    settings = load_settings({k: v for k, v in env.items() if k.startswith("MIMAMORI_")})
    assert settings.clickhouse == "clickhouse://mimamori:p%40ss@clickhouse:9000/mimamori"
    assert unquote(urlsplit(settings.clickhouse).password or "") == "p@ss"  # as ServerStore reads it
    assert settings.with_overrides(clickhouse=Settings().clickhouse, smtp=Settings().smtp) == Settings()


def test_rendered_options_reach_the_settings(tmp_path: Path) -> None:
    docs = render("kafka.bootstrap=k1:9092\\,k2:9092", "kafka.topicPrefix=prod.", "config.webPort=7070",
                  "config.dedupWindow=48h", "rules.enabled=true", "rules.content=[policy]",
                  "clickhouse.params=secure=1", "smtp.existingSecret=mail", "serviceMonitor.enabled=true",
                  "kafka.security=sasl_ssl", "kafka.sasl.mechanism=SCRAM-SHA-256", "kafka.sasl.username=worker",
                  "kafka.sasl.password=kafka pw", "kafka.tls.caSecret=kafka-ca")
    env = worker_environment(docs, "pw")
    assert set(env) >= set(ENVIRONMENT) - GATEWAY_ONLY
    assert env["MIMAMORI_KAFKA_CA_FILE"] == "/etc/mimamori-kafka-ca/ca.crt"
    worker = next(doc for doc in docs if kind_of(doc) == "Deployment" and "component: worker" in doc)
    assert re.search(r"- name: kafka-ca\n\s+secret:\n\s+secretName: kafka-ca\n", worker)
    assert re.search(r"- name: kafka-ca\n\s+mountPath: /etc/mimamori-kafka-ca\n\s+readOnly: true", worker)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("the CA the Secret mounts\n")
    settings = load_settings({**{k: v for k, v in env.items() if k.startswith("MIMAMORI_")},
                              "MIMAMORI_SMTP": "smtp://relay:587", "MIMAMORI_KAFKA_CA_FILE": str(ca_file)})
    assert (settings.kafka_security, settings.kafka_sasl_mechanism, settings.kafka_username, settings.kafka_password) \
        == ("sasl_ssl", "SCRAM-SHA-256", "worker", "kafka pw")  # the password from the chart's own Secret
    assert (settings.kafka, settings.topics.events, settings.web_port) == ("k1:9092,k2:9092", "prod.utm.events", 7070)
    assert settings.clickhouse.endswith("/mimamori?secure=1") and str(settings.rules_file) == "/etc/mimamori/rules.toml"
    assert {kind_of(doc) for doc in docs} >= {"ConfigMap", "ServiceMonitor"}
    service = next(doc for doc in docs if kind_of(doc) == "Service")
    assert 'prometheus.io/port: "7070"' in service and "port: 7070" in service


def test_the_embedded_store_is_one_pod_with_its_own_volume_and_no_migrate_job() -> None:
    docs = render("clickhouse.embedded.enabled=true")
    kinds = {kind_of(doc) for doc in docs}
    assert "StatefulSet" in kinds and "Job" not in kinds and "Deployment" not in kinds
    env = worker_environment(docs, "unused")
    assert env["MIMAMORI_CLICKHOUSE"] == "chdb:///var/lib/mimamori/clickhouse"
    refused = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION,
                   "--set", "clickhouse.embedded.enabled=true", "--set", "replicaCount=2", check=False)
    assert refused.returncode != 0 and "replicaCount: 1" in refused.stderr


def test_pods_run_as_non_root_on_a_read_only_root_with_probes_on_the_web_port() -> None:
    docs = render()
    for doc in (d for d in docs if kind_of(d) in ("Deployment", "Job")):
        assert "runAsNonRoot: true" in doc and "readOnlyRootFilesystem: true" in doc
        assert re.search(r"- name: tmp\n\s+mountPath: /tmp", doc)
    worker = next(doc for doc in docs if kind_of(doc) == "Deployment")
    assert re.search(r"livenessProbe:\n\s+httpGet:\n\s+path: /health\n\s+port: web", worker)
    assert re.search(r"readinessProbe:\n\s+tcpSocket:\n\s+port: web", worker)
    job = next(doc for doc in docs if kind_of(doc) == "Job")
    assert "helm.sh/hook: pre-install,pre-upgrade" in job and "- migrate" in job


def test_production_values_render_a_scaled_worker_on_a_tls_server_with_secrets(tmp_path: Path) -> None:
    docs = render(values_file=PRODUCTION)
    worker = next(doc for doc in docs if kind_of(doc) == "Deployment" and "component: worker" in doc)
    assert "replicas: 3" in worker and "image: registry.example.jp/security/mimamori:0.1.0" in worker
    assert {kind_of(doc) for doc in docs} >= {"Deployment", "Job", "ServiceMonitor", "PodDisruptionBudget"}
    assert "Secret" not in {kind_of(doc) for doc in docs}  # both come from existing Secrets
    env = worker_environment(docs, "pw")
    (tmp_path / "ca.crt").write_text("the CA the Secret mounts\n")
    settings = load_settings({**{k: v for k, v in env.items() if k.startswith("MIMAMORI_")},
                              "MIMAMORI_SMTP": "smtp://relay:587", "MIMAMORI_KAFKA_CA_FILE": str(tmp_path / "ca.crt")})
    assert settings.clickhouse == "clickhouse://mimamori:pw@clickhouse.db.svc:9440/mimamori?secure=1"
    assert settings.topics.events == "prod.utm.events" and settings.kafka.count(",") == 2
    assert (settings.kafka_security, settings.kafka_username, settings.kafka_password) == ("sasl_ssl", "mimamori", "pw")
    assert env["MIMAMORI_KAFKA_CA_FILE"] == "/etc/mimamori-kafka-ca/ca.crt"  # mounted from the CA Secret


def test_sasl_without_a_user_or_a_password_is_refused_at_install() -> None:
    for sets, complaint in ((["kafka.security=sasl_ssl", "kafka.sasl.password=x"], "kafka.sasl.username is required"),
                            (["kafka.security=sasl_ssl", "kafka.sasl.username=u"], "kafka.sasl.password or")):
        flags = [flag for item in sets for flag in ("--set", item)]
        refused = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, *flags, check=False)
        assert refused.returncode != 0 and complaint in refused.stderr, refused.stderr


@pytest.mark.parametrize("setting, complaint", [
    ("config.mailUrgentWait=ten", "/config/mailUrgentWait"),
    ("config.heartbeatDailyAt=9am", "/config/heartbeatDailyAt"),
    ("config.webPort=70000", "/config/webPort"),
    ("replicaCount=two", "/replicaCount"),
    ("kafka.bootstrap=no-port", "/kafka/bootstrap"),
    ("kafka.security=sasl", "/kafka/security"),
    ("kafka.sasl.mechanism=SCRAM-SHA-1", "/kafka/sasl/mechanism"),
    ("smtp.url=http://relay", "/smtp/url"),
    ("worker.loglevel=verbose", "/worker/loglevel"),
    ("confg.tz=UTC", "confg"),
])
def test_the_schema_refuses_a_wrong_value_at_install(setting: str, complaint: str) -> None:
    refused = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting, check=False)
    assert refused.returncode != 0 and complaint in refused.stderr, refused.stderr
    assert "values don't meet the specifications of the schema" in refused.stderr


def test_the_gateway_renders_replicas_an_autoscaler_a_service_and_its_settings() -> None:
    docs = render("gateway.enabled=true", "gateway.key=0123456789abcdef-key", "gateway.maxBody=8MiB",
                  "gateway.tls.secretName=upload-tls", "kafka.topicPrefix=prod.")
    gateway = [doc for doc in docs if "component: gateway" in doc]
    assert sorted(kind_of(doc) for doc in gateway) == ["Deployment", "HorizontalPodAutoscaler", "Secret", "Service"]
    env = worker_environment(docs, "unused", component="gateway")
    settings = load_settings({k: v for k, v in env.items() if k.startswith("MIMAMORI_")})
    assert settings.gateway_key == "0123456789abcdef-key" and settings.gateway_max_body == 8 << 20
    assert (settings.gateway_port, settings.topics.events) == (8443, "prod.utm.events")
    assert str(settings.gateway_tls_cert) == "/etc/mimamori/tls/tls.crt"
    deployment = next(doc for doc in gateway if kind_of(doc) == "Deployment")
    assert "secretName: upload-tls" in deployment and "- gateway" in deployment
    assert "runAsNonRoot: true" in deployment and "readOnlyRootFilesystem: true" in deployment
    hpa = next(doc for doc in gateway if kind_of(doc) == "HorizontalPodAutoscaler")
    assert "minReplicas: 2" in hpa and "maxReplicas: 6" in hpa and "averageUtilization: 70" in hpa
    assert not any("MIMAMORI_GATEWAY" in doc for doc in docs if "component: worker" in doc)


def test_the_gateway_connects_to_kafka_as_the_worker_does(tmp_path: Path) -> None:
    docs = render("gateway.enabled=true", "gateway.key=0123456789abcdef-key", "kafka.security=sasl_ssl",
                  "kafka.sasl.username=gw", "kafka.sasl.existingSecret=kafka-login", "kafka.tls.caSecret=kafka-ca")
    env = worker_environment(docs, "kafka pw", component="gateway")
    (tmp_path / "ca.crt").write_text("the CA the Secret mounts\n")
    settings = load_settings({**{k: v for k, v in env.items() if k.startswith("MIMAMORI_")},
                              "MIMAMORI_KAFKA_CA_FILE": str(tmp_path / "ca.crt")})
    assert (settings.kafka_security, settings.kafka_username, settings.kafka_password) == ("sasl_ssl", "gw", "kafka pw")
    deployment = next(doc for doc in docs if kind_of(doc) == "Deployment" and "component: gateway" in doc)
    assert re.search(r"- name: kafka-ca\n\s+mountPath: /etc/mimamori-kafka-ca\n", deployment)
    assert "name: rel-mimamori-kafka\n" not in "".join(docs)  # the password comes from the existing Secret


def test_the_gateway_needs_a_key_and_production_values_put_it_behind_a_tls_ingress() -> None:
    refused = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", "gateway.enabled=true",
                   check=False)
    assert refused.returncode != 0 and "gateway.existingSecret" in refused.stderr
    docs = render(values_file=PRODUCTION)
    ingress = next(doc for doc in docs if kind_of(doc) == "Ingress")
    assert "secretName: mimamori-upload-tls" in ingress and 'host: "upload.mimamori.example.jp"' in ingress
    assert "name: mimamori-gateway-key" in next(doc for doc in docs if kind_of(doc) == "Deployment"
                                                 and "component: gateway" in doc)
    hpa = next(doc for doc in docs if kind_of(doc) == "HorizontalPodAutoscaler")
    assert "minReplicas: 3" in hpa and "maxReplicas: 8" in hpa
    monitors = [doc for doc in docs if kind_of(doc) == "ServiceMonitor"]
    assert len(monitors) == 2 and any("port: upload" in doc and "component: gateway" in doc for doc in monitors)
    refused = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", "gateway.maxBody=lots",
                   check=False)
    assert refused.returncode != 0 and "/gateway/maxBody" in refused.stderr


def test_the_portal_renders_a_deployment_a_service_an_ingress_and_its_settings() -> None:
    docs = render("portal.enabled=true", "portal.key=0123456789abcdef-portal", "portal.ingress.enabled=true",
                  "portal.ingress.host=portal.example.jp", "portal.ingress.tlsSecretName=portal-tls",
                  "clickhouse.password=pw")
    portal = [doc for doc in docs if "component: portal" in doc]
    assert sorted(kind_of(doc) for doc in portal) == ["Deployment", "Ingress", "Secret", "Service"]
    env = worker_environment(docs, "pw", component="portal")
    settings = load_settings({k: v for k, v in env.items() if k.startswith("MIMAMORI_")})
    assert settings.portal_key == "0123456789abcdef-portal" and settings.portal_port == 8080
    assert settings.clickhouse == "clickhouse://mimamori:pw@clickhouse:9000/mimamori"
    deployment = next(doc for doc in portal if kind_of(doc) == "Deployment")
    assert "- portal" in deployment and "path: /health" in deployment and "--insecure-cookies" not in deployment
    ingress = next(doc for doc in portal if kind_of(doc) == "Ingress")
    assert "secretName: portal-tls" in ingress and 'host: "portal.example.jp"' in ingress


def test_the_portal_needs_a_key_and_the_clickhouse_server() -> None:
    refused = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", "portal.enabled=true",
                   check=False)
    assert refused.returncode != 0 and "portal.existingSecret" in refused.stderr
    refused = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", "portal.enabled=true",
                   "--set", "portal.key=0123456789abcdef-portal", "--set", "clickhouse.embedded.enabled=true",
                   check=False)
    assert refused.returncode != 0 and "ClickHouse server" in refused.stderr
    docs = render(values_file=PRODUCTION)
    assert "name: mimamori-portal-key" in next(doc for doc in docs if kind_of(doc) == "Deployment"
                                                and "component: portal" in doc)
