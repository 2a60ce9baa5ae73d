"""`mimamori account issue TENANT_ID EMAIL` / `disable USER` / `reset USER`: portal accounts.

Temporary credentials go by mail (kind `portal-account`) through the outbox like every other mail;
they are never printed."""
from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timezone

import orjson

from pipeline.config import Settings

HELP = "portal accounts: issue one (its temporary credentials are mailed), disable or reset one"
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def _email(text: str) -> str:
    if not _EMAIL.match(text) or len(text) > 254:
        raise argparse.ArgumentTypeError(f"expected a plain address local@domain, got {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    issue = actions.add_parser("issue", help="create an account for a tenant and mail its temporary id and password")
    issue.add_argument("tenant_id", metavar="TENANT_ID")
    issue.add_argument("email", metavar="EMAIL", type=_email)
    disable = actions.add_parser("disable", help="disable an account (its sessions end at once)")
    disable.add_argument("user", metavar="USER", help="the user id (or account id)")
    reset = actions.add_parser("reset", help="new temporary credentials mailed to the account's address; "
                                             "two-step verification off, lock lifted, sessions ended")
    reset.add_argument("user", metavar="USER", help="the user id (or account id)")
    for sub in (issue, disable, reset):
        sub.add_argument("--store", metavar="URL", help="overrides MIMAMORI_CLICKHOUSE")
    for sub in (issue, reset):
        sub.add_argument("--kafka", help="bootstrap servers (overrides MIMAMORI_KAFKA)")
        sub.add_argument("--portal-url", help="the portal's address written in the mail "
                                              "(default http://localhost:MIMAMORI_PORTAL_PORT/)")


def _send(kafka: str, settings: Settings, mail: object) -> int:
    from mimamori.producer import KafkaSender, open_kafka_producer
    from pipeline.io.kafka_admin import ensure_topics, topic_specs

    ensure_topics(kafka, [s for s in topic_specs(settings.topics) if s.name == settings.topics.outbox])
    sender = KafkaSender(open_kafka_producer(kafka))
    try:
        sender(settings.topics.outbox, mail.tenant_id.encode(), orjson.dumps(mail.to_record()))  # type: ignore[attr-defined]
    finally:
        sender.close()
    for failure in sender.failures:
        print(f"mimamori account: the mail was not sent: {failure}", file=sys.stderr)
    return 1 if sender.failures else 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.io.report_gather import read_tenant
    from pipeline.io.store.backends import StoreError, open_store
    from portal import accounts as acc
    from portal.mail import account_mail

    now = datetime.now(timezone.utc)
    url = getattr(args, "portal_url", None) or f"http://localhost:{settings.portal_port}/"
    try:
        store = open_store(args.store or settings.clickhouse)
    except StoreError as exc:
        print(f"mimamori account: {exc}", file=sys.stderr)
        return 1
    try:
        book = acc.AccountBook(store)
        if args.action == "issue":
            tenant = read_tenant(store, args.tenant_id)
            if tenant is None or not tenant.active:
                print(f"mimamori account: no active tenant {args.tenant_id!r} in the store", file=sys.stderr)
                return 1
            account, password = acc.new_account(tenant.tenant_id, args.email, now)
            book.save(account)
            print(f"account {account.account_id} issued for tenant {tenant.tenant_id}; temporary credentials "
                  f"mailed to {args.email}", file=sys.stderr)
            return _send(args.kafka or settings.kafka, settings, account_mail(account, password, tenant, url, now, settings.tz))
        account = book.find(args.user)
        if account is None:
            print(f"mimamori account: no account {args.user!r}", file=sys.stderr)
            return 1
        if args.action == "disable":
            book.save(acc.disable(account, now))
            print(f"account {account.account_id} ({account.login}) disabled", file=sys.stderr)
            return 0
        tenant = read_tenant(store, account.tenant_id)
        if tenant is None:
            print(f"mimamori account: tenant {account.tenant_id!r} of the account is not in the store", file=sys.stderr)
            return 1
        account, password = acc.reset(account, now)
        book.save(account)
        print(f"account {account.account_id} reset; temporary credentials mailed to {account.email}", file=sys.stderr)
        return _send(args.kafka or settings.kafka, settings, account_mail(account, password, tenant, url, now,
                                                                           settings.tz, reset=True))
    except StoreError as exc:
        print(f"mimamori account: {exc} (has `mimamori migrate` run?)", file=sys.stderr)
        return 1
    finally:
        store.close()
