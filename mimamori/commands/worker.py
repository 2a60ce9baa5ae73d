"""`mimamori worker`: run the pipeline (the Faust worker) against the configured Kafka."""
from __future__ import annotations

import argparse

from pipeline.config import Settings

HELP = "run the pipeline: the Faust worker consuming the UTM topics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")
    parser.add_argument("--app-id", default="mimamori", help="consumer group and state prefix (default: mimamori)")
    parser.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace, settings: Settings) -> int:
    from faust import Worker

    from agents.worker import build_app

    if args.kafka:
        settings = settings.with_overrides(kafka=args.kafka)
    app = build_app(settings, args.app_id)
    worker = Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0
