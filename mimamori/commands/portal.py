"""`mimamori portal`: the customer portal (README, "The portal")."""
from __future__ import annotations

import argparse
import sys

from pipeline.config import Settings

HELP = "serve the customer portal (server-rendered Japanese pages over the portal views)"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1-65535, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_port, help="port (overrides MIMAMORI_PORTAL_PORT, default 8080)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument("--store", metavar="URL", help="overrides MIMAMORI_CLICKHOUSE")
    parser.add_argument("--insecure-cookies", action="store_true",
                        help="session cookies without the Secure flag (plain http on a workstation only; behind "
                             "TLS leave it off)")
    parser.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.logs import configure

    changes: dict[str, object] = {}
    if args.port:
        changes["portal_port"] = args.port
    if args.store:
        changes["clickhouse"] = args.store
    settings = settings.with_overrides(**changes)
    if not settings.portal_key:
        print("mimamori portal: configuration: MIMAMORI_PORTAL_KEY is required (it signs the session cookies and "
              "encrypts the TOTP secrets)", file=sys.stderr)
        return 2
    configure(settings.log_format, args.loglevel)
    from pipeline.io.store.backends import StoreError
    from portal.server import serve

    try:
        serve(settings, host=args.host, secure_cookie=not args.insecure_cookies)
    except StoreError as exc:
        print(f"mimamori portal: {exc}", file=sys.stderr)
        return 1
    return 0
