"""`mimamori`: the command line. Each command lives in `mimamori.commands.<name>`."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from typing import NoReturn, Sequence

from mimamori import commands
from mimamori.commands import UsageError
from pipeline.config import ConfigError, Settings, load_settings
from pipeline.io.kafka_security import refusal, watch_refusals
from pipeline.logs import configure as configure_logging
from pipeline.redact import RedactingStream, remember_secrets, url_secrets


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _command_modules() -> list[tuple[str, object]]:
    found = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"mimamori.commands.{info.name}")
        found.append((info.name.replace("_", "-"), module))
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mimamori", description="mimamori: UTM detections to graded alerts, mails and portal data.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in _command_modules():
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)  # type: ignore[attr-defined]
        module.add_arguments(command)  # type: ignore[attr-defined]
        command.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mimamori: configuration: {exc}", file=sys.stderr)
        return 2
    remember_secrets(secrets_of(settings, args))
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(stdout), RedactingStream(stderr)  # type: ignore[assignment]
    try:
        configure_logging(settings.log_format, getattr(args, "loglevel", None) or "warning")
        watch_refusals()
        return int(args._run(args, settings) or 0)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - the traceback still goes out, without a password in it
        refused = refusal(settings)
        if refused is not None:  # what the Kafka clients only logged, said once and clearly
            print(f"mimamori {args.command}: {refused}", file=sys.stderr)
        else:
            sys.stderr.write(traceback.format_exc())
        return 1
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def secrets_of(settings: Settings, args: argparse.Namespace) -> list[str]:
    """Every secret this run knows of, masked in whatever it prints (pipeline.redact)."""
    urls = [settings.clickhouse, settings.smtp] + [value for value in vars(args).values()
                                                   if isinstance(value, str) and "://" in value]
    return [settings.kafka_password, getattr(settings, "gateway_key", None), getattr(settings, "portal_key", None),
            *[secret for url in urls for secret in url_secrets(url)]]


if __name__ == "__main__":
    sys.exit(main())
