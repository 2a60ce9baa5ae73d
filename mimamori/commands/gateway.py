"""`mimamori gateway`: the HTTPS ingest gateway the UTMs upload to (README, "UTM upload over HTTPS")."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config import Settings

HELP = "serve the UTMs' HTTPS upload endpoint (POST /v1/events, /v1/heartbeats) in front of Kafka"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1-65535, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")
    parser.add_argument("--port", type=_port, help="port (overrides MIMAMORI_GATEWAY_PORT, default 8443)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM", help="certificate chain (overrides MIMAMORI_GATEWAY_TLS_CERT)")
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="private key (overrides MIMAMORI_GATEWAY_TLS_KEY)")
    parser.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.logs import configure

    changes: dict[str, object] = {}
    for name, value in (("kafka", args.kafka), ("gateway_port", args.port), ("gateway_tls_cert", args.tls_cert),
                        ("gateway_tls_key", args.tls_key)):
        if value:
            changes[name] = value
    settings = settings.with_overrides(**changes)
    if not settings.gateway_key:
        print("mimamori gateway: configuration: MIMAMORI_GATEWAY_KEY is required (the deployment key UTM tokens "
              "are derived from)", file=sys.stderr)
        return 2
    if bool(settings.gateway_tls_cert) != bool(settings.gateway_tls_key):
        print("mimamori gateway: give both a TLS certificate and its key, or neither", file=sys.stderr)
        return 2
    for path in (settings.gateway_tls_cert, settings.gateway_tls_key):
        if path and not path.is_file():
            print(f"mimamori gateway: cannot read {path}", file=sys.stderr)
            return 2
    configure(settings.log_format, args.loglevel)
    from gateway.server import serve

    serve(settings, host=args.host)
    return 0
