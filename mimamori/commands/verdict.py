"""`mimamori verdict ALERT_ID --grade G --note TEXT`: publish an analyst's verdict on an alert."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any, Mapping

import orjson

from pipeline.clock import SystemClock
from pipeline.config import Settings
from pipeline.io.kafka_security import kafka_python_options, unless_refused
from pipeline.models import Verdict

HELP = "publish an analyst's verdict (grade 0-3 and a note for the customer) on an alert"


def grade(text: str) -> int:
    if text not in ("0", "1", "2", "3"):
        raise argparse.ArgumentTypeError(f"expected a grade 0-3, got {text!r}")
    return int(text)


def note(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the note must not be empty")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("alert_id", metavar="ALERT_ID", help="the alert's id, e.g. al-0123456789abcdef0123")
    parser.add_argument("--grade", required=True, type=grade, help="0 (nothing found: closes the alert) to 3 (★★★)")
    parser.add_argument("--note", required=True, type=note, help="text for the customer")
    parser.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")


def verdict_message(verdict: Verdict) -> tuple[bytes, bytes]:
    """(key, value) of the record on the verdicts topic."""
    return verdict.alert_id.encode(), orjson.dumps(verdict.to_record())


def publish(bootstrap: str, topic: str, verdict: Verdict, timeout_s: float = 30.0,
            options: Mapping[str, Any] | None = None) -> None:
    from kafka import KafkaProducer

    producer = unless_refused(lambda: KafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="mimamori-verdict",
                                                    **(options or {})))
    try:
        key, value = verdict_message(verdict)
        producer.send(topic, key=key, value=value).get(timeout=timeout_s)
    finally:
        producer.close(timeout=5)


def run(args: argparse.Namespace, settings: Settings, now: datetime | None = None) -> int:
    from kafka.errors import KafkaError

    verdict = Verdict(alert_id=args.alert_id, grade=args.grade, note=args.note, ts=now or SystemClock().now())
    try:
        publish(args.kafka or settings.kafka, settings.topics.verdicts, verdict,
                options=kafka_python_options(settings))
    except KafkaError as exc:
        print(f"mimamori verdict: not published: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"verdict on {verdict.alert_id}: grade {verdict.grade} published to {settings.topics.verdicts}")
    return 0
