"""`mimamori notice publish FILE [--short-notice]` / `notice cancel ID` / `notice list`: service notices
on the compacted `service.notices` topic (README, "Service notices")."""
from __future__ import annotations

import argparse
import sys

import orjson

from pipeline.clock import SystemClock
from pipeline.config import Settings
from pipeline.io.kafka_security import kafka_python_options
from pipeline.models import iso
from pipeline.notices.check import NoticeError, cancellation_of, load_notice_file, notice_from_file_data, notice_problems
from pipeline.notices.model import ServiceNotice
from pipeline.registry_file import RegistryFileError, load_registry_file

HELP = "publish, cancel or list service notices (maintenance, faults, firmware)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    publish = actions.add_parser(
        "publish", help="check FILE and publish it as the next version of its notice",
        description="check a notice file and publish it (version 1, or the next version of a notice already "
                    "published); a refused file names each problem and publishes nothing")
    publish.add_argument("file", metavar="FILE", help="a notice file (JSON; README, 'Service notices')")
    publish.add_argument("--short-notice", action="store_true",
                         help="publish a planned maintenance starting less than 30 days ahead; the notice says so")
    publish.add_argument("--check", action="store_true", help="only check the file as a new notice; need no Kafka")
    publish.add_argument("--registry", metavar="FILE",
                         help="check the audience's tenants against this registry file (with --check; without it, "
                              "publish reads the registry topic)")
    publish.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")
    cancel = actions.add_parser("cancel", help="cancel a notice (publishes its next version, cancelled)",
                                description="cancel a notice: its next version says it is cancelled, and the "
                                            "tenants that got it are mailed a cancellation")
    cancel.add_argument("notice_id", metavar="ID")
    cancel.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")
    listing = actions.add_parser("list", help="list the current version of every notice",
                                 description="list the current version of every notice on the notices topic")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")


def _current(kafka: str, settings: Settings) -> dict[str, ServiceNotice]:
    from pipeline.io.kafka_admin import ensure_topics, topic_specs
    from mimamori.notice_topic import read_notices

    ensure_topics(kafka, [s for s in topic_specs(settings.topics) if s.name == settings.topics.notices],
                  options=kafka_python_options(settings))
    return read_notices(kafka, settings.topics.notices, options=kafka_python_options(settings)).notices


def _publish(kafka: str, settings: Settings, notice: ServiceNotice) -> int:
    from mimamori.producer import KafkaSender, open_kafka_producer

    sender = KafkaSender(open_kafka_producer(kafka, kafka_python_options(settings)))
    try:
        sender(settings.topics.notices, notice.notice_id.encode(), orjson.dumps(notice.to_record()))
    finally:
        sender.close()
    for failure in sender.failures:
        print(f"delivery failed: {failure}", file=sys.stderr)
    return 1 if sender.failures else 0


def _refuse(where: str, problems: list[str]) -> int:
    for problem in problems:
        print(f"{where}: {problem}", file=sys.stderr)
    print(f"refused: {len(problems)} problem(s), nothing published", file=sys.stderr)
    return 1


def run(args: argparse.Namespace, settings: Settings) -> int:
    kafka = args.kafka or settings.kafka
    now = SystemClock().now()
    if args.action == "publish":
        try:
            data = load_notice_file(args.file)
        except NoticeError as exc:
            return _refuse(args.file, exc.problems)
        listed = isinstance(data, dict) and isinstance(data.get("audience"), dict) and "tenants" in data["audience"]
        known: set[str] | None = None
        if args.registry:
            try:
                known = set(load_registry_file(args.registry).tenants)
            except RegistryFileError as exc:
                return _refuse(args.registry, exc.problems)
        if args.check:
            problems = notice_problems(data, now, short_notice=args.short_notice, known_tenants=known)
            if problems:
                return _refuse(args.file, problems)
            print(f"{args.file}: ok (check only, nothing published)")
            return 0
        previous = _current(kafka, settings).get(data.get("notice_id")) if isinstance(data, dict) else None
        if known is None and listed:
            from mimamori.notice_topic import read_registry_tenants

            known = read_registry_tenants(kafka, settings.topics.tenants, options=kafka_python_options(settings))
        try:
            notice = notice_from_file_data(data, now, short_notice=args.short_notice, previous=previous,
                                           known_tenants=known)
        except NoticeError as exc:
            return _refuse(args.file, exc.problems)
        status = _publish(kafka, settings, notice)
        if status == 0:
            note = " (short notice: the notice says so)" if notice.short_notice else ""
            print(f"published notice {notice.notice_id} version {notice.version}{note}")
        return status
    if args.action == "cancel":
        try:
            notice = cancellation_of(_current(kafka, settings).get(args.notice_id), args.notice_id, now)
        except NoticeError as exc:
            return _refuse(args.notice_id, exc.problems)
        status = _publish(kafka, settings, notice)
        if status == 0:
            print(f"cancelled notice {notice.notice_id} (version {notice.version})")
        return status
    notices = sorted(_current(kafka, settings).values(), key=lambda n: (n.published_at or now, n.notice_id))
    if args.format == "json":
        for notice in notices:
            sys.stdout.write(orjson.dumps(notice.to_record()).decode() + "\n")
        return 0
    from mimamori.printing import write_rows

    write_rows([{"notice_id": n.notice_id, "version": n.version, "kind": n.kind, "level": n.level or "",
                 "starts_at": iso(n.starts_at) or "", "ends_at": iso(n.ends_at) or "",
                 "state": "cancelled" if n.cancelled else "published", "mailed": "yes" if n.mailed else "no",
                 "short_notice": "yes" if n.short_notice else "", "published_at": iso(n.published_at) or "",
                 "title": n.title["ja"]} for n in notices], "table", sys.stdout)
    return 0
