"""`mimamori produce [FILE|-]`: check JSON lines and produce the good ones to Kafka, keyed by utm_id."""
from __future__ import annotations

import argparse
import sys

from pipeline.clock import SystemClock
from pipeline.config import Settings
from pipeline.io.kafka_security import kafka_python_options

HELP = "check JSON lines (events, heartbeats) and produce them to Kafka, keyed by utm_id"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", metavar="FILE", help="JSON lines file, or - for stdin (default)")
    parser.add_argument("--topic", help="send every line to this topic and check it as such (default: each line to "
                                        "utm.events when it has a `type`, else to utm.heartbeats)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only check the lines; send nothing, need no Kafka")
    mode.add_argument("--no-validate", action="store_true", help="send every line as it is (to try the rejection path)")
    parser.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mimamori.producer import KafkaSender, numbered_lines, open_kafka_producer, produce_lines, read_input
    from mimamori.progress import Progress, file_size

    try:
        stream = read_input(args.file, sys.stdin)
    except OSError as exc:
        print(f"mimamori produce: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    sender = None if args.check else KafkaSender(open_kafka_producer(args.kafka or settings.kafka, kafka_python_options(settings)))
    from kafka.errors import KafkaTimeoutError

    try:
        report = produce_lines(
            numbered_lines(Progress("produce", total=file_size(args.file)).track(stream, size=len)), sender, SystemClock(), topics=settings.topics, topic=args.topic,
            validate=not args.no_validate, report_problem=lambda problem: print(problem, file=sys.stderr),
        )
    except KafkaTimeoutError as exc:
        print(f"mimamori produce: {exc} (the broker does not create topics by itself: "
              "`python -m pipeline.io.kafka_admin` creates the contract's topics)", file=sys.stderr)
        return 1
    finally:
        if sender is not None:
            sender.close()
    failed = len(sender.failures) if sender else 0
    for failure in (sender.failures if sender else [])[:10]:
        print(f"delivery failed: {failure}", file=sys.stderr)
    summary = report.summary() if not failed else f"read {report.read}, sent {report.sent - failed}, " \
                                                  f"refused {report.refused}, failed {failed}"
    print(summary + (" (check only, nothing sent)" if args.check else ""))
    return 1 if report.refused or failed else 0
