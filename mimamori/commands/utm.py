"""`mimamori utm credential UTM_ID [--rotate [--overlap D] | --revoke]`: a UTM's upload token."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from pipeline.config import Settings, parse_duration

HELP = "a UTM's upload credential: print its token, rotate it (with an overlap) or revoke it"


def _overlap(text: str) -> object:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    credential = actions.add_parser(
        "credential", help="print the UTM's upload token (issuing it, or a new one after a revocation)",
        description="Print the token a UTM sends as `Authorization: Bearer TOKEN` to the gateway. Without an option "
                    "it prints the current token (the same one again while it is valid; a new version after a "
                    "revocation). Needs MIMAMORI_GATEWAY_KEY, the deployment's key, and Kafka (the credential "
                    "topic every gateway follows).")
    credential.add_argument("utm_id", metavar="UTM_ID")
    change = credential.add_mutually_exclusive_group()
    change.add_argument("--rotate", action="store_true",
                        help="issue a new version; the current one stays valid for --overlap")
    change.add_argument("--revoke", action="store_true", help="end every version of the UTM's token now")
    credential.add_argument("--overlap", type=_overlap, default="24h",
                            help="how long the previous token stays valid after --rotate (default 24h)")
    credential.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mimamori.credentials import change_credential

    if not settings.gateway_key:
        print("mimamori utm credential: configuration: MIMAMORI_GATEWAY_KEY is required", file=sys.stderr)
        return 2
    action = "revoke" if args.revoke else "rotate" if args.rotate else "issue"
    token, state = change_credential(args.kafka or settings.kafka, settings, args.utm_id, action,
                                     datetime.now(timezone.utc), overlap=args.overlap)
    if token is None:
        print(f"revoked: every token of UTM {args.utm_id} is refused from now on (version {state.version})",
              file=sys.stderr)
        return 0
    note = f"UTM {args.utm_id}, credential version {state.version}"
    if state.previous is not None and state.previous_until is not None:
        note += f"; version {state.previous} stays valid until {state.previous_until.isoformat()}"
    print(note, file=sys.stderr)
    print(token)
    return 0
