"""`mimamori account issue/reset/disable` on the real broker: the temporary credentials travel in a
`portal-account` mail through the outbox topic (never on the terminal), and they open the portal."""
from __future__ import annotations

import email
import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from email import policy
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from pipeline.models import Mail
from pipeline.io.store.backends import open_store
from portal.accounts import AccountBook
from tests.support.portal import running_portal
from tests.support.services import ROOT, KafkaService

pytestmark = pytest.mark.integration


def mimamori(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mimamori.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def outbox_mails(bootstrap: str, topic: str, count: int) -> list[Mail]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    found: list[Mail] = []
    deadline = time.monotonic() + 60
    try:
        while len(found) < count and time.monotonic() < deadline:
            found += [Mail.from_record(orjson.loads(message.value)) for message in consumer]
    finally:
        consumer.close()
    return found


def credentials(mail: Mail) -> tuple[str, str]:
    body = email.message_from_string(mail.raw, policy=policy.default).get_body(("plain",)).get_content()
    login = re.search(r"仮ユーザID: (\S+)", body).group(1)  # type: ignore[union-attr]
    password = re.search(r"仮パスワード: (\S+)", body).group(1)  # type: ignore[union-attr]
    return login, password


def logs_in(base: str, user: str, password: str) -> str:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(base + "/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    try:
        return opener.open(base + "/login", urllib.parse.urlencode(
            {"csrf": csrf, "user": user, "password": password}).encode()).geturl()
    except urllib.error.HTTPError as exc:
        return f"refused {exc.code}"


def test_issue_reset_and_disable(kafka: KafkaService, tmp_path: Path) -> None:
    registry = {"tenants": [{"tenant_id": "t-acc", "name": "株式会社アカウント", "notify_emails": ["sec@t-acc.example.jp"],
                             "service_start": "2026-01-01", "active": True}],
                "utms": [{"utm_id": "utm-acc", "tenant_id": "t-acc", "active": True}]}
    (tmp_path / "registry.json").write_bytes(orjson.dumps(registry))
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    (tmp_path / "events.jsonl").write_bytes(orjson.dumps({"v": 1, "utm_id": "utm-acc", "ts": now}) + b"\n")
    store = f"chdb://{tmp_path / 'store'}"
    prefix = f"acc{int(time.time())}."
    env = {**os.environ, "MIMAMORI_KAFKA": kafka.bootstrap, "MIMAMORI_TOPIC_PREFIX": prefix,
           "MIMAMORI_TZ": "Asia/Tokyo"}
    done = mimamori("replay", str(tmp_path / "events.jsonl"), "--registry", str(tmp_path / "registry.json"),
                    "--store", store, env=env)
    assert done.returncode == 0, done.stderr
    refused = mimamori("account", "issue", "t-acc", "Boss <boss@t-acc.example.jp>", "--store", store, env=env)
    assert refused.returncode == 2 and "local@domain" in refused.stderr
    assert mimamori("account", "issue", "t-none", "it@t-acc.example.jp", "--store", store, env=env).returncode == 1
    issued = mimamori("account", "issue", "t-acc", "it@t-acc.example.jp", "--store", store,
                      "--portal-url", "https://portal.example.jp/", env=env)
    assert issued.returncode == 0, issued.stderr
    [mail] = outbox_mails(kafka.bootstrap, prefix + "mail.outbox", 1)
    assert (mail.kind, mail.tenant_id, mail.to) == ("portal-account", "t-acc", ("it@t-acc.example.jp",))
    login, password = credentials(mail)
    assert password not in issued.stdout + issued.stderr, "temporary credentials go by mail only"
    assert "https://portal.example.jp/" in mail.raw or "portal.example.jp" in email.message_from_string(
        mail.raw, policy=policy.default).get_body(("plain",)).get_content()

    reset = mimamori("account", "reset", login, "--store", store, env=env)
    assert reset.returncode == 0, reset.stderr
    mails = outbox_mails(kafka.bootstrap, prefix + "mail.outbox", 2)
    assert len(mails) == 2 and mails[1].message_id != mails[0].message_id
    new_login, new_password = credentials(mails[1])
    opened = open_store(store)
    try:
        with running_portal(opened) as (_, base):
            assert logs_in(base, login, password) == "refused 401", "the reset ended the first credentials"
            assert logs_in(base, new_login, new_password) == base + "/setup"
        account = AccountBook(opened).by_login(new_login)
        assert account is not None and account.temporary
    finally:
        opened.close()
    disabled = mimamori("account", "disable", new_login, "--store", store, env=env)
    assert disabled.returncode == 0, disabled.stderr
    opened = open_store(store)
    try:
        with running_portal(opened) as (_, base):
            assert logs_in(base, new_login, new_password) == "refused 401"
    finally:
        opened.close()
