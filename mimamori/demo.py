"""`mimamori demo`: the whole pipeline once, on local Kafka, the embedded ClickHouse and a maildir.

It simulates half an hour of traffic from a few customers (ending now), runs a worker in this
process while the traffic goes through Kafka, has an analyst close the investigation of one alert,
then stops the worker and shows what the customers and the portal got.
"""
from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, TextIO

import orjson

from mimamori.commands.query import plain, write_rows
from pipeline.config import Settings, format_duration
from pipeline.kafka_security import kafka_python_options
from pipeline.kafka_admin import ensure_topics, topic_specs
from pipeline.models import Verdict
from mimamori.producer import open_kafka_producer, registry_records, topic_for, utm_key
from pipeline.registry_file import registry_from_data
from pipeline.simulate import Simulation, simulate
from pipeline.store.backends import open_store
from pipeline.store.migrate import apply_migrations
from pipeline.store.views import read_view

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
    say(f"demo: Kafka {settings.kafka}, topics {settings.topics.events} ..., store {settings.clickhouse}, "
        f"mail {settings.smtp}; mail wait {format_duration(settings.mail_group_wait)}, "
        f"interval {format_duration(settings.mail_group_interval)}")
    store = open_store(settings.clickhouse)
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
        say("demo: registry loaded; sending the traffic through Kafka")
        for line in sim.lines:
            producer.send(topic_for(line, settings.topics), key=utm_key(line), value=line)
        producer.flush()
        metrics = app.mimamori.metrics
        expected_records = len(sim.lines)
        await _wait(lambda: _records(metrics) >= expected_records, 120)
        say(f"demo: the worker took all {expected_records} lines; waiting {plan.settle:.0f}s for mails")
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
    say(f"\ndemo: done. Replay the same lines offline with:\n  mimamori replay {plan.directory}/events.jsonl "
        f"--registry {plan.directory}/registry.json")


def _show_report(settings: Settings, store: object, plan: DemoPlan, say: Callable[[str], None]) -> None:
    """The first tenant's monthly report, month to date, rendered to files (`mimamori report` does the same)."""
    from pipeline.report.files import write_report
    from pipeline.report.gather import build_report, read_tenant
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
