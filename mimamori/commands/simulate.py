"""`mimamori simulate`: a seeded registry, event stream and expected outcomes, to files or straight to Kafka."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.config import Settings, parse_duration
from pipeline.io.kafka_security import kafka_python_options

HELP = "write (or send to Kafka) a seeded, realistic registry and stream with scripted incidents and expectations"


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected events per second >= 0, got {text!r}")
    return value


def _duration(text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value.total_seconds() < 600:
        raise argparse.ArgumentTypeError(f"expected at least 10m, got {text!r}")
    return value


def _start(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None  # type: ignore[assignment]
    if value is None or value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"expected an RFC 3339 time with offset, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=_positive_int, default=3, help="active tenants (default 3)")
    parser.add_argument("--utms-per-tenant", type=_positive_int, default=2, help="UTMs per tenant (default 2)")
    parser.add_argument("--rate", type=_rate, default=5.0, help="background events per second, all UTMs (default 5)")
    parser.add_argument("--duration", type=_duration, default="30m", help="length of the stream (default 30m, at least 10m)")
    parser.add_argument("--start", type=_start, default="2026-11-20T00:00:00+09:00", help="first instant (RFC 3339)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, metavar="DIR", help="write DIR/registry.json, events.jsonl, expected.json")
    parser.add_argument("--kafka", nargs="?", const="", metavar="BOOTSTRAP",
                        help="publish the registry and send every line as is (default servers: MIMAMORI_KAFKA)")
    parser.add_argument("--gateway", metavar="URL",
                        help="publish the registry to Kafka, then upload every line through the HTTPS gateway at URL "
                             "(https://host:8443) as its UTM would, with each UTM's token (needs MIMAMORI_GATEWAY_KEY)")
    parser.add_argument("--gateway-ca", metavar="PEM", help="CA certificate to trust for the gateway (default: the system's)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from mimamori.progress import Progress
    from pipeline.simulate import simulate

    if args.out is None and args.kafka is None and args.gateway is None:
        print("mimamori simulate: give --out DIR, --kafka or --gateway URL", file=sys.stderr)
        return 2
    if args.gateway is not None and not settings.gateway_key:
        print("mimamori simulate: --gateway needs MIMAMORI_GATEWAY_KEY (the UTMs' tokens derive from it)", file=sys.stderr)
        return 2
    sim = simulate(tenants=args.tenants, utms_per_tenant=args.utms_per_tenant, rate=args.rate, duration=args.duration,
                   start=args.start, seed=args.seed)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "registry.json").write_bytes(orjson.dumps(sim.registry, option=orjson.OPT_INDENT_2) + b"\n")
        with open(args.out / "events.jsonl", "wb") as events:
            for line in Progress("simulate: writing", total=len(sim.lines)).track(sim.lines):
                events.write(line + b"\n")
        (args.out / "expected.json").write_bytes(orjson.dumps(sim.expected, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"wrote {args.out}/registry.json, events.jsonl ({len(sim.lines)} lines), expected.json")
    if args.gateway is not None:
        return _upload(sim, args.gateway, args.gateway_ca, args.kafka or settings.kafka, settings)
    if args.kafka is not None:
        return _send(sim, args.kafka or settings.kafka, settings)
    return 0


def _upload(sim: object, url: str, ca_file: str | None, bootstrap: str, settings: Settings) -> int:
    """The registry to Kafka (the operator's side), the lines through the gateway (the UTMs' side)."""
    from mimamori.credentials import tokens_for
    from mimamori.producer import KafkaSender, open_kafka_producer, registry_records
    from mimamori.uploader import record_utm, upload_lines
    from pipeline.registry_file import registry_from_data

    sender = KafkaSender(open_kafka_producer(bootstrap, kafka_python_options(settings)))
    try:
        for topic, key, value in registry_records(registry_from_data(sim.registry), settings.topics):  # type: ignore[attr-defined]
            sender(topic, key, value)
    finally:
        sender.close()
    if sender.failures:
        print(f"delivery failed: {sender.failures[0]}", file=sys.stderr)
        return 1
    utm_ids = sorted({u for u in map(record_utm, sim.lines) if u is not None})  # type: ignore[attr-defined]
    tokens = tokens_for(settings, utm_ids, bootstrap)
    report = upload_lines(url, tokens, sim.lines, ca_file=ca_file)  # type: ignore[attr-defined]
    for failure in report.failures[:10]:
        print(f"upload failed: {failure}", file=sys.stderr)
    print(report.summary())
    return 1 if report.failures else 0


def _send(sim: object, bootstrap: str, settings: Settings) -> int:
    from pipeline.clock import SystemClock
    from mimamori.producer import KafkaSender, open_kafka_producer, produce_lines, registry_records
    from mimamori.progress import Progress
    from pipeline.registry_file import registry_from_data

    sender = KafkaSender(open_kafka_producer(bootstrap, kafka_python_options(settings)))
    try:
        for topic, key, value in registry_records(registry_from_data(sim.registry), settings.topics):  # type: ignore[attr-defined]
            sender(topic, key, value)
        lines = Progress("simulate: sending", total=len(sim.lines)).track(sim.lines)  # type: ignore[attr-defined]
        report = produce_lines(enumerate(lines, start=1), sender, SystemClock(), topics=settings.topics,  # type: ignore[attr-defined]
                               validate=False)
    finally:
        sender.close()
    for failure in sender.failures[:10]:
        print(f"delivery failed: {failure}", file=sys.stderr)
    print(f"sent registry and {report.sent - len(sender.failures)} of {report.read} lines to {bootstrap}")
    return 1 if sender.failures else 0
