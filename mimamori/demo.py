"""`mimamori demo`: the whole pipeline once, on local Kafka, the embedded ClickHouse and a maildir.

It simulates half an hour of traffic from a few customers (ending now), runs a worker and the HTTPS
ingest gateway in this process while the UTMs upload the traffic through the gateway, has an
analyst close the investigation of one alert, then stops the worker and shows what the customers
and the portal got.
"""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable, TextIO

import orjson

from mimamori.printing import plain, write_rows
from pipeline.config import Settings, format_duration
from pipeline.io.kafka_security import kafka_python_options
from pipeline.io.kafka_admin import ensure_topics, topic_specs
from pipeline.models import Verdict
from mimamori.producer import open_kafka_producer, registry_records
from pipeline.redact import redact_url
from pipeline.registry_file import registry_from_data
from pipeline.simulate import Simulation, simulate
from pipeline.io.store.backends import open_store
from pipeline.io.store.migrate import apply_migrations
from pipeline.io.store.views import read_view

DEMO_TIMINGS = {"mail_group_wait": timedelta(seconds=3), "mail_group_interval": timedelta(seconds=10),
                "mail_urgent_wait": timedelta(seconds=1)}


@dataclass
class DemoPlan:
    directory: Path
    tenants: int = 3
    utms_per_tenant: int = 2
    rate: float = 5.0
    duration: timedelta = timedelta(minutes=30)
    seed: int = 1
    settle: float = 25.0


def demo_settings(settings: Settings, directory: Path, run_id: str, env_has: Callable[[str], bool]) -> Settings:
    """The demo's own prefix, store and maildir; quicker mail timings unless the user set them."""
    changes: dict[str, object] = {
        "topics": settings.topics.prefixed(f"demo-{run_id}."),
        "clickhouse": f"chdb://{directory / 'clickhouse'}",
        "smtp": f"maildir://{directory / 'mail'}",
    }
    for name, value in DEMO_TIMINGS.items():
        if not env_has("MIMAMORI_" + name.upper()):
            changes[name] = value
    return settings.with_overrides(**changes)


def run_demo(settings: Settings, plan: DemoPlan, out: TextIO) -> int:
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731
    if plan.directory.exists():
        shutil.rmtree(plan.directory)
    plan.directory.mkdir(parents=True)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = simulate(tenants=plan.tenants, utms_per_tenant=plan.utms_per_tenant, rate=plan.rate,
                   duration=plan.duration, start=now - plan.duration - timedelta(minutes=1), seed=plan.seed)
    (plan.directory / "registry.json").write_bytes(orjson.dumps(sim.registry, option=orjson.OPT_INDENT_2))
    (plan.directory / "events.jsonl").write_bytes(b"\n".join(sim.lines) + b"\n")
    (plan.directory / "expected.json").write_bytes(orjson.dumps(sim.expected, option=orjson.OPT_INDENT_2))
    say(f"demo: {len(sim.lines)} simulated lines from {plan.tenants * plan.utms_per_tenant} UTMs "
        f"in {plan.directory}/events.jsonl")
    say(f"demo: Kafka {settings.kafka}, topics {settings.topics.events} ..., store {redact_url(settings.clickhouse)}, "
        f"mail {redact_url(settings.smtp)}; mail wait {format_duration(settings.mail_group_wait)}, "
        f"interval {format_duration(settings.mail_group_interval)}")
    store = open_store(settings.clickhouse, create=True)
    try:
        applied = apply_migrations(store, settings.tz.key, now)
        say(f"demo: store migrated ({len(applied)} migrations)")
        ensure_topics(settings.kafka, topic_specs(settings.topics), options=kafka_python_options(settings))
        asyncio.run(_run_worker(settings, store, sim, plan, say))
        _show(settings, store, plan, say)
    finally:
        store.close()
    return 0


async def _run_worker(settings: Settings, store: object, sim: Simulation, plan: DemoPlan,
                      say: Callable[[str], None]) -> None:
    from agents.worker import build_app

    app = build_app(settings, store=store, web=False, create_topics=False)  # type: ignore[arg-type]
    await app.start()
    try:
        producer = open_kafka_producer(settings.kafka, kafka_python_options(settings))
        for topic, key, value in registry_records(registry_from_data(sim.registry), settings.topics):
            producer.send(topic, key=key, value=value)
        producer.flush()
        await _wait(lambda: len(app.mimamori.registry.utms) >= len(sim.registry["utms"]), 30)
        async with _gateway(settings, plan.directory, say) as (url, ca_file, gateway_settings):
            say(f"demo: registry loaded; the UTMs upload their traffic through the gateway at {url}")
            report = await asyncio.get_running_loop().run_in_executor(
                None, lambda: _upload(gateway_settings, url, ca_file, sim))
            say(f"demo: {report.summary()}")
            if report.failures:
                raise TimeoutError(f"uploads failed: {report.failures[:3]}")
        metrics = app.mimamori.metrics
        expected_records = report.accepted
        await _wait(lambda: _records(metrics) >= expected_records, 120)
        say(f"demo: the worker took all {expected_records} accepted lines; waiting {plan.settle:.0f}s for mails")
        await asyncio.sleep(plan.settle / 2)
        investigated = await asyncio.get_running_loop().run_in_executor(None, _investigated_alert, settings)
        if investigated:
            verdict = Verdict(investigated, 2, "The file was a known-bad tool; a full scan is recommended.",
                              datetime.now(timezone.utc))
            producer.send(settings.topics.verdicts, key=investigated.encode(), value=orjson.dumps(verdict.to_record()))
            producer.flush()
            say(f"demo: an analyst graded alert {investigated} ★★☆ (an investigation report follows)")
        producer.close()
        await asyncio.sleep(plan.settle / 2)
    finally:
        await app.stop()


def _upload(settings: Settings, url: str, ca_file: str | None, sim: Simulation) -> Any:
    from mimamori.credentials import tokens_for
    from mimamori.uploader import record_utm, upload_lines

    tokens = tokens_for(settings, sorted({u for u in map(record_utm, sim.lines) if u is not None}))
    return upload_lines(url, tokens, sim.lines, ca_file=ca_file)


def _self_signed(directory: Path) -> tuple[Path, Path] | None:
    """A certificate for 127.0.0.1 made with the openssl command, or None where there is none."""
    if not shutil.which("openssl"):
        return None
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "gateway.pem", directory / "gateway.key"
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], capture_output=True, timeout=60)
    return (cert, key) if done.returncode == 0 else None


@contextlib.asynccontextmanager
async def _gateway(settings: Settings, directory: Path,
                   say: Callable[[str], None]) -> AsyncIterator[tuple[str, str | None, Settings]]:
    """`mimamori gateway` in this process, on a free loopback port: HTTPS with a certificate of its own
    (plain HTTP when there is no openssl command), a key of its own unless MIMAMORI_GATEWAY_KEY is set."""
    import uvicorn

    from gateway.app import Gateway
    from gateway.server import server_config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tls = _self_signed(directory / "tls")
    settings = settings.with_overrides(
        gateway_port=port, gateway_key=settings.gateway_key or secrets.token_urlsafe(32),
        gateway_tls_cert=tls[0] if tls else None, gateway_tls_key=tls[1] if tls else None)
    gateway = Gateway(settings, create_topics=False)
    server = uvicorn.Server(server_config(settings, gateway, host="127.0.0.1"))
    serving = asyncio.create_task(server.serve())
    try:
        await _wait(lambda: gateway.ready or serving.done(), 60)
        if serving.done():
            serving.result()
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", str(tls[0]) if tls else None, settings
    finally:
        server.should_exit = True
        await serving


def _records(metrics: object) -> float:
    return sum(sample.value for family in metrics.records.collect()  # type: ignore[attr-defined]
               for sample in family.samples if sample.name.endswith("_total"))


async def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo worker did not get there in time; is Kafka running?")
        await asyncio.sleep(0.5)


def _investigated_alert(settings: Settings) -> str | None:
    """An alert under investigation, as the `alerts` topic tells it (what an analyst's tool reads)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topics.alerts, bootstrap_servers=settings.kafka, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=2000,
                             **kafka_python_options(settings))
    try:
        latest = {}
        for message in consumer:
            alert = orjson.loads(message.value)
            latest[alert["alert_id"]] = alert
    finally:
        consumer.close()
    return next((a for a, alert in sorted(latest.items()) if alert["status"] == "investigating"), None)


def _show(settings: Settings, store: object, plan: DemoPlan, say: Callable[[str], None]) -> None:
    import io

    for view in ("portal_alerts", "portal_utm_status", "portal_detections_daily", "portal_peer_average_daily"):
        rows = read_view(store, view, tz=settings.tz.key, every_tenant=True)  # type: ignore[arg-type]
        buffer = io.StringIO()
        write_rows([{k: plain(v) for k, v in row.items()} for row in rows[:12]], "table", buffer)
        say(f"\n== {view} ({len(rows)} rows) ==\n{buffer.getvalue().rstrip()}")
    mails = sorted((plan.directory / "mail" / "new").glob("*")) if (plan.directory / "mail" / "new").exists() else []
    say(f"\n== mails in {plan.directory / 'mail' / 'new'} ({len(mails)}) ==")
    from email import message_from_bytes, policy

    for path in mails:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        say(f"{message['X-Mimamori-Kind']:<21} {message['To']:<32} {message['Subject']}")
    _show_report(settings, store, plan, say)
    _show_portal(settings, store, plan, say)
    say(f"\ndemo: done. Replay the same lines offline with:\n  mimamori replay {plan.directory}/events.jsonl "
        f"--registry {plan.directory}/registry.json")


def _show_report(settings: Settings, store: object, plan: DemoPlan, say: Callable[[str], None]) -> None:
    """The first tenant's monthly report, month to date, rendered to files (`mimamori report` does the same)."""
    from pipeline.report.files import write_report
    from pipeline.io.report_gather import build_report, read_tenant
    from pipeline.report.schedule import Month

    tenant_id = orjson.loads((plan.directory / "registry.json").read_bytes())["tenants"][0]["tenant_id"]
    tenant = read_tenant(store, tenant_id)  # type: ignore[arg-type]
    now = datetime.now(timezone.utc)
    month = Month.of(now.astimezone(settings.tz).date())
    if tenant is None:
        say(f"\ndemo: no monthly report: tenant {tenant_id} is not in the store")
        return
    try:
        eml = write_report(build_report(store, tenant, month, settings.tz, now), plan.directory / "reports")  # type: ignore[arg-type]
    except ValueError as exc:
        say(f"\ndemo: no monthly report: {exc}")
        return
    say(f"\n== monthly report ==\n{tenant_id}, {month} to date (not sent): {eml}\n"
        f"  the HTML and the charts lie beside it: {eml.with_suffix('.html')}, {eml.stem}-*.png")


def _show_portal(settings: Settings, store: object, plan: DemoPlan, say: Callable[[str], None]) -> None:
    """A demo account of the first tenant (own id and password already set, no TOTP) and how to
    open the portal on the demo's store; the portal key goes to a file beside it, not on screen."""
    import secrets
    from dataclasses import replace

    from portal.accounts import AccountBook, new_account, set_credentials

    tenant_id = orjson.loads((plan.directory / "registry.json").read_bytes())["tenants"][0]["tenant_id"]
    now = datetime.now(timezone.utc)
    login, password = f"demo-{tenant_id}", secrets.token_urlsafe(9)
    account, _ = new_account(tenant_id, f"demo@{tenant_id}.example.jp", now)
    account = replace(set_credentials(account, login, password, now), totp_decided=True)
    AccountBook(store).save(account)  # type: ignore[arg-type]
    key_file = plan.directory / "portal-key"
    key_file.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    port = settings.portal_port
    say(f"\n== portal ==\nOpen the customer portal on the demo's data ({tenant_id}):\n"
        f"  MIMAMORI_PORTAL_KEY=$(cat {key_file}) mimamori portal --store {settings.clickhouse} --port {port} "
        f"--insecure-cookies\n"
        f"  then http://localhost:{port}/ with user id {login} and password {password}")
