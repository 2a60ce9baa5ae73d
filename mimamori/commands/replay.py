"""`mimamori replay EVENTS.jsonl --registry REGISTRY.json`: the worker's logic over recorded lines."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from pipeline.config import Settings

HELP = "run the pipeline's logic offline over recorded events and heartbeats; print JSON lines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("events", metavar="EVENTS.jsonl", help="recorded events and heartbeats, one JSON per line ('-' for stdin)")
    parser.add_argument("--registry", required=True, metavar="REGISTRY.json", help='{"tenants": [...], "utms": [...]}')
    parser.add_argument("--store", metavar="URL", help="also write to this ClickHouse store (chdb:///PATH or clickhouse://...)")
    parser.add_argument("--mail", metavar="URL", help="also send the mails (smtp://..., maildir:///PATH)")
    parser.add_argument("--until", metavar="TIME", help="run the clock on to this RFC 3339 time after the last record")
    parser.add_argument("--rules", metavar="FILE", help="grading rules file (default: MIMAMORI_RULES or the shipped policy)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mimamori.commands import UsageError
    from pipeline.models import parse_time
    from pipeline.registry_file import RegistryFileError, load_registry_file
    from pipeline.io.replay import Replay, ReplayWriter
    from pipeline.rules import PolicyError, load_policy
    from mimamori.progress import Progress, file_size

    try:
        until = parse_time(args.until) if args.until else None
    except ValueError:
        raise UsageError(f"mimamori replay: --until: expected an RFC 3339 time with offset, got {args.until!r}")
    try:
        registry = load_registry_file(Path(args.registry))
    except RegistryFileError as exc:
        print(f"mimamori replay: {args.registry}: " + "; ".join(exc.problems), file=sys.stderr)
        return 2
    except OSError as exc:
        raise UsageError(f"mimamori replay: {exc}")
    try:
        policy = load_policy(Path(args.rules) if args.rules else settings.rules_file)
    except PolicyError as exc:
        print(f"mimamori replay: rules: {exc}", file=sys.stderr)
        return 2
    if args.events != "-" and not Path(args.events).is_file():
        raise UsageError(f"mimamori replay: {args.events}: no such file")

    out = sys.stdout.buffer

    def emit(record: dict) -> None:
        out.write(orjson.dumps(record) + b"\n")

    writer = ReplayWriter(settings, registry, args.store, args.mail) if (args.store or args.mail) else None
    replay = Replay(settings, registry, policy, emit, writer)
    source = sys.stdin.buffer if args.events == "-" else open(args.events, "rb")
    progress = Progress("replay", total=file_size(args.events))
    with source:
        counts = replay.run(progress.track(source, size=len), until)
    out.flush()
    print(f"replay: {counts.lines} lines, {counts.accepted} accepted, {counts.rejected} rejected, "
          f"{counts.duplicates} duplicates, {counts.late} late, {counts.mails} mails", file=sys.stderr)
    return 0
