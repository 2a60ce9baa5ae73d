"""`mimamori worker`: run the worker (its processors and timers, in a Faust shell) against the configured Kafka."""
from __future__ import annotations

import argparse
from datetime import datetime

from pipeline.clock import ShiftedClock
from pipeline.config import Settings
from pipeline.models import parse_time

HELP = "run the pipeline: the worker consuming the UTM topics"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")
    parser.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--clock-start", metavar="TIME", type=_time,
                        help="start the worker's clock at TIME (RFC 3339 with offset) and run it at wall speed: "
                             "a rehearsal of what the worker does then (e.g. the monthly report); not for production")


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time such as 2026-11-30T22:59:00Z, got {text!r}") from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    from agents.runtime.memory import collect_less, large_blocks_mapped
    from agents.runtime.shell import Worker
    from agents.worker import build_app
    from pipeline.logs import logging_config

    large_blocks_mapped()  # before the worker allocates: large short-lived buffers never stay in its heap

    if args.kafka:
        settings = settings.with_overrides(kafka=args.kafka)
    clock = ShiftedClock(args.clock_start) if args.clock_start else None
    app = build_app(settings, clock=clock)
    collect_less()
    # Faust's worker sets logging up again at start: it gets the same configuration as every command.
    worker = Worker(app, loglevel=args.loglevel, quiet=True,
                    logging_config=logging_config(settings.log_format, args.loglevel))
    worker.execute_from_commandline()
    return 0

