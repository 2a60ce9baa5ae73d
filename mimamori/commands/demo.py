"""`mimamori demo`: the whole pipeline once, on local Kafka, the embedded ClickHouse and a maildir."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pipeline.config import Settings

HELP = "run the whole pipeline once on simulated traffic: local Kafka, embedded ClickHouse, maildir"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="var/demo", help="where the demo writes its files, store and mail (default var/demo; emptied first)")
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--utms-per-tenant", type=int, default=2)
    parser.add_argument("--rate", type=float, default=5.0, help="background events per second of simulated time")
    parser.add_argument("--seed", type=int, default=1)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mimamori.demo import DemoPlan, demo_settings, run_demo

    directory = Path(args.dir).resolve()
    settings = demo_settings(settings, directory, str(int(time.time())), lambda name: name in os.environ)
    plan = DemoPlan(directory, tenants=args.tenants, utms_per_tenant=args.utms_per_tenant, rate=args.rate, seed=args.seed)
    try:
        return run_demo(settings, plan, sys.stdout)
    except TimeoutError as exc:
        print(f"mimamori demo: {exc}", file=sys.stderr)
        return 1
