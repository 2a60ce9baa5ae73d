"""`mimamori registry load FILE` / `registry remove`: publish tenants and UTMs to the compacted registry topics."""
from __future__ import annotations

import argparse
import sys

from pipeline.config import Settings
from pipeline.io.kafka_security import kafka_python_options

HELP = "load a registry file (tenants, UTMs) into the registry topics, or remove a tenant or UTM"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser("load", help="check FILE and publish every tenant and UTM in it",
                              description="check FILE and publish every tenant and UTM in it; a refused file "
                                          "names each problem and publishes nothing")
    load.add_argument("file", metavar="FILE", help='registry file {"tenants": [...], "utms": [...]}')
    load.add_argument("--check", action="store_true", help="only check the file; publish nothing, need no Kafka")
    load.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")
    remove = actions.add_parser("remove", help="remove a tenant or a UTM (publishes a null record)",
                                description="remove a tenant or a UTM from the registry (publishes a null record)")
    which = remove.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", metavar="ID")
    which.add_argument("--utm", metavar="ID")
    remove.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mimamori.producer import KafkaSender, open_kafka_producer, registry_records
    from pipeline.registry_file import RegistryFileError, load_registry_file

    if args.action == "load":
        try:
            registry = load_registry_file(args.file)
        except RegistryFileError as exc:
            for problem in exc.problems:
                print(f"{args.file}: {problem}", file=sys.stderr)
            print(f"refused: {len(exc.problems)} problem(s), nothing published", file=sys.stderr)
            return 1
        records = registry_records(registry, settings.topics)
        if args.check:
            print(f"{len(registry.tenants)} tenants, {len(registry.utms)} UTMs: ok (check only, nothing published)")
            return 0
    elif args.tenant:
        records = [(settings.topics.tenants, args.tenant.encode(), None)]
    else:
        records = [(settings.topics.utms, args.utm.encode(), None)]
    sender = KafkaSender(open_kafka_producer(args.kafka or settings.kafka, kafka_python_options(settings)))
    try:
        for topic, key, value in records:
            sender(topic, key, value)
    finally:
        sender.close()
    if sender.failures:
        for failure in sender.failures[:10]:
            print(f"delivery failed: {failure}", file=sys.stderr)
        return 1
    if args.action == "load":
        print(f"published {len(registry.tenants)} tenants, {len(registry.utms)} UTMs")
    else:
        print(f"removed {'tenant ' + args.tenant if args.tenant else 'UTM ' + args.utm}")
    return 0
