"""The portal's rules without a browser: accounts (lockout, temporary credentials, TOTP, secrets at
rest), signed sessions and CSRF tokens, periods, the SVG charts and the credentials mail (issue 23)."""
from __future__ import annotations

import email
from datetime import date, datetime, timedelta, timezone
from email import policy
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import pyotp
import pytest

from pipeline.models import Tenant
from pipeline.io.store.backends import Store, open_store
from pipeline.io.store.migrate import apply_migrations
from portal import accounts as acc
from portal import sessions as ses
from portal.charts import availability_strip, daily_chart
from portal.data import Period, TenantData, period_of, report_id
from portal.mail import account_mail

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)
TZ = ZoneInfo("Asia/Tokyo")
KEY = b"k" * 32


def fresh() -> tuple[acc.Account, str]:
    return acc.new_account("t-001", "it@t-001.example.jp", NOW)


# -- accounts -------------------------------------------------------------------------------------

def test_a_new_account_has_temporary_credentials_hashed_with_argon2id() -> None:
    account, password = fresh()
    assert account.temporary and account.login.startswith("tmp-") and len(password) >= 16
    assert account.password_hash.startswith("$argon2id$") and password not in account.password_hash
    assert acc.check_password(account, password, NOW).ok


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one() -> None:
    account, password = fresh()
    for attempt in range(acc.MAX_FAILURES):
        result = acc.check_password(account, "wrong", NOW)
        assert not result.ok and result.reason == "wrong"
        account = result.account
    assert account.locked(NOW)
    locked = acc.check_password(account, password, NOW + timedelta(minutes=1))
    assert (locked.ok, locked.reason) == (False, "locked")
    later = acc.check_password(account, password, NOW + acc.LOCK_FOR + timedelta(seconds=1))
    assert later.ok and later.account.failures == 0 and later.account.locked_until is None


def test_a_right_password_resets_the_count_of_failures() -> None:
    account, password = fresh()
    for _ in range(acc.MAX_FAILURES - 1):
        account = acc.check_password(account, "wrong", NOW).account
    account = acc.check_password(account, password, NOW).account
    assert account.failures == 0
    assert not acc.check_password(account, "wrong", NOW).account.locked(NOW)


def test_temporary_credentials_expire_and_unknown_ids_cost_a_hash_too() -> None:
    account, password = fresh()
    assert acc.check_password(account, password, NOW + acc.TEMPORARY_FOR).reason == "expired"
    assert acc.check_password(None, password, NOW).reason == "wrong"


def test_own_credentials_end_the_temporary_ones_and_every_session() -> None:
    account, password = fresh()
    own = acc.set_credentials(account, "alice-01", "a-long-password", NOW)
    assert not own.temporary and own.session_epoch == account.session_epoch + 1 and own.version > account.version
    assert not acc.check_password(own, password, NOW).ok and acc.check_password(own, "a-long-password", NOW).ok


def test_reset_gives_new_temporary_credentials_and_turns_totp_off() -> None:
    account, _ = fresh()
    enrolled = acc.set_totp(acc.set_credentials(account, "alice-01", "a-long-password", NOW), "secret", NOW)
    again, password = acc.reset(enrolled, NOW)
    assert again.temporary and not again.uses_totp and not again.totp_decided and again.login.startswith("tmp-")
    assert again.session_epoch > enrolled.session_epoch and acc.check_password(again, password, NOW).ok
    assert acc.check_password(acc.disable(again, NOW), password, NOW).reason == "disabled"


@pytest.mark.parametrize("login,password,confirm,ok", [
    ("alice-01", "a-long-password", "a-long-password", True),
    ("al", "a-long-password", "a-long-password", False),
    ("tmp-alice", "a-long-password", "a-long-password", False),
    ("alice 01", "a-long-password", "a-long-password", False),
    ("alice-01", "short", "short", False),
    ("alice-01", "a-long-password", "another-password", False),
])
def test_own_id_and_password_rules(login: str, password: str, confirm: str, ok: bool) -> None:
    assert (acc.login_problem(login) or acc.password_problem(password, confirm, login)) is None if ok else \
        (acc.login_problem(login) or acc.password_problem(password, confirm, login)) is not None


def test_totp_secrets_are_encrypted_with_the_portal_key_and_codes_check_by_rfc6238() -> None:
    secrets = acc.Secrets("portal-key-0123456789")
    secret = acc.new_totp_secret()
    sealed = secrets.encrypt(secret)
    assert secret not in sealed and secrets.decrypt(sealed) == secret
    assert acc.Secrets("another-key-0123456789").decrypt(sealed) is None
    code = pyotp.TOTP(secret).at(NOW)
    assert acc.totp_ok(secret, code, NOW) and acc.totp_ok(secret, code, NOW + timedelta(seconds=30))
    assert not acc.totp_ok(secret, code, NOW + timedelta(minutes=5)) and not acc.totp_ok(secret, "12345", NOW)
    with pytest.raises(ValueError):
        acc.Secrets("short")


# -- sessions and CSRF ----------------------------------------------------------------------------

def test_a_session_cookie_is_signed_and_ends_after_its_lifetime() -> None:
    now = NOW.timestamp()
    session = ses.logged_in("acc-1", 3, ses.FULL, now)
    value = ses.encode(session, KEY)
    assert ses.decode(value, KEY, now + 60) == session
    assert ses.decode(value, b"x" * 32, now) is None
    body, mac = value.split(".")
    forged = ses.encode(ses.logged_in("acc-2", 3, ses.FULL, now), b"x" * 32).split(".")[0] + "." + mac
    assert ses.decode(forged, KEY, now) is None
    assert ses.decode(value, KEY, now + ses.LIFETIME_S + 1) is None
    assert ses.decode("garbage", KEY, now) is None and ses.decode(None, KEY, now) is None


def test_csrf_tokens_belong_to_one_session_and_change_at_login() -> None:
    anonymous = ses.anonymous(NOW.timestamp())
    token = ses.csrf_token(anonymous, KEY)
    assert ses.csrf_ok(anonymous, token, KEY)
    assert not ses.csrf_ok(anonymous, None, KEY) and not ses.csrf_ok(anonymous, "", KEY)
    after_login = ses.logged_in("acc-1", 1, ses.FULL, NOW.timestamp())
    assert not ses.csrf_ok(after_login, token, KEY)


# -- data, charts, mail ---------------------------------------------------------------------------

def test_a_period_stays_inside_the_90_days_kept() -> None:
    today = date(2026, 11, 20)
    assert period_of(None, None, today) == Period(today - timedelta(days=29), today)
    assert period_of("2020-01-01", "2030-01-01", today) == Period(today - timedelta(days=89), today)
    assert period_of("2026-11-10", "2026-11-01", today) == Period(date(2026, 11, 1), date(2026, 11, 1))
    assert period_of("nonsense", "2026-11-05", today, 7) == Period(date(2026, 10, 30), date(2026, 11, 5))


def test_the_portal_reads_nothing_without_a_tenant_and_report_ids_are_per_tenant() -> None:
    with pytest.raises(ValueError):
        TenantData(None, "", TZ)  # type: ignore[arg-type]
    assert report_id("t-001", "2026-11") != report_id("t-002", "2026-11")


def test_the_daily_chart_draws_the_numbers_beside_it() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(3)]
    own = {days[0]: {"av": 2, "ips": 1, "url": 0}, days[1]: {"av": 0, "ips": 0, "url": 0}, days[2]: {"av": 0, "ips": 0, "url": 7}}
    svg = daily_chart(days, own, {days[0]: {"av": 1.5, "ips": 0.5, "url": 0.0}})
    assert 'data-day="2026-11-01" data-total="3" data-peer="2.00"' in svg
    assert 'data-day="2026-11-02" data-total="0">' in svg and 'data-day="2026-11-03" data-total="7">' in svg
    assert "<script" not in svg and "style=" not in svg


def test_a_utm_online_for_the_last_hour_is_drawn_online_not_unseen() -> None:
    start = NOW - timedelta(days=2)
    svg = availability_strip([("utm-1", [(start, NOW - timedelta(hours=1), "never_seen"),
                                         (NOW - timedelta(hours=1), NOW, "online")])], start, NOW, TZ)
    online = svg.split('data-status="online"')[0].rsplit("<rect", 1)[1]
    width = float(online.split('width="')[1].split('"')[0])
    assert width >= 2.0


def test_the_credentials_mail_goes_to_the_account_through_the_outbox_format() -> None:
    account, password = fresh()
    tenant = Tenant(tenant_id="t-001", name="株式会社テスト", notify_emails=("alerts@t-001.example.jp",))
    mail = account_mail(account, password, tenant, "https://portal.example.jp/", NOW, TZ)
    assert mail.kind == "portal-account" and mail.to == ("it@t-001.example.jp",) and mail.tenant_id == "t-001"
    assert mail.message_id == account_mail(account, password, tenant, "https://portal.example.jp/", NOW, TZ).message_id
    message = email.message_from_string(mail.raw, policy=policy.default)
    body = message.get_body(("plain",)).get_content()
    assert account.login in body and password in body and message["X-Mimamori-Kind"] == "portal-account"
    again, new_password = acc.reset(account, NOW)
    assert account_mail(again, new_password, tenant, "u", NOW, TZ, reset=True).message_id != mail.message_id


# -- the accounts table (chdb) --------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("portal-chdb")
    opened = open_store(f"chdb://{path}")
    apply_migrations(opened, "Asia/Tokyo", datetime.now(timezone.utc))
    try:
        yield opened
    finally:
        opened.close()


def test_accounts_are_kept_in_the_store_latest_version_first(store: Store) -> None:
    book = acc.AccountBook(store)
    account, password = fresh()
    book.save(account)
    assert book.by_login(account.login) == account and book.by_id(account.account_id) == account
    failed = acc.check_password(account, "wrong", NOW).account
    book.save(failed)
    assert book.by_login(account.login).failures == 1
    own = acc.set_credentials(failed, "alice-store", "a-long-password", NOW)
    book.save(own)
    assert book.by_login(account.login) is None and book.find("alice-store").account_id == account.account_id
    other, _ = fresh()
    assert book.login_taken("alice-store", other.account_id) and not book.login_taken("alice-store", own.account_id)


def test_on_a_server_with_row_policies_every_tenant_query_names_its_tenant() -> None:
    from portal.data import BoundStore, binds_tenant

    class Recorder:
        url = "clickhouse://portal@ch:9000/mimamori"

        def __init__(self, version: tuple[int, ...]) -> None:
            self.sql: list[str] = []
            self._version = version

        def version(self) -> tuple[int, ...]:
            return self._version

        def query(self, sql: str, params: dict | None = None) -> list[dict]:
            self.sql.append(sql)
            return [{"n": 0}] if "count()" in sql else []

    server = Recorder((24, 10, 1))
    assert binds_tenant(server) and not binds_tenant(Recorder((18, 16, 1)))
    data = TenantData(server, "t-'1", TZ, bind=binds_tenant(server))  # type: ignore[arg-type]
    data.detections(Period(date(2026, 11, 1), date(2026, 11, 2)), NOW)
    data.detections(Period(date(2026, 11, 1), date(2026, 11, 2)), NOW, alert="al-1")
    data.utms()
    assert len(server.sql) == 4
    assert all(sql.endswith(" SETTINGS SQL_mimamori_tenant = 't-\\'1'") for sql in server.sql)
    assert BoundStore(server, "t2").query("SELECT 1;") == [] and server.sql[-1] == "SELECT 1 SETTINGS SQL_mimamori_tenant = 't2'"


def test_a_page_of_detections_reads_only_the_days_that_hold_it(store: Store) -> None:
    """Counts from the daily view (the summary's numbers), the page from the days that hold it."""
    from pipeline.models import Event
    from pipeline.rows import event_row

    tz = ZoneInfo("Asia/Tokyo")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    today = now.astimezone(tz).date()
    rows = []
    for d in range(5):  # day d has d + 1 detections, 2 UTMs
        for k in range(d + 1):
            ts = datetime.combine(today - timedelta(days=d), datetime.min.time(), tz).astimezone(timezone.utc) \
                + timedelta(hours=1, minutes=k)
            rows.append(event_row(Event(event_id=f"p{d}-{k}", utm_id=f"u{k % 2}", tenant_id="t-pages", ts=ts, type="ips",
                                        action="blocked", direction="inbound", src_ip="198.51.100.1",
                                        dst_ip="192.168.0.2", received_at=ts), None, None))
    store.insert("events", rows)
    data = TenantData(store, "t-pages", tz)
    period = Period(today - timedelta(days=4), today)
    every = []
    for page in range(1, 6):
        found, total = data.detections(period, now, page=page, size=4)
        assert total == 15
        every += [r["event_id"] for r in found]
    expected = [r["event_id"] for r in sorted(rows, key=lambda r: (r["ts"], r["event_id"]), reverse=True)]
    assert every == expected
    found, total = data.detections(period, now, utm="u1", page=1, size=50)
    assert total == len(found) == sum(1 for r in rows if r["utm_id"] == "u1")
    assert data.detections(period, now, page=9, size=4) == ([], 15)


def test_the_portal_command_needs_its_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mimamori.cli import main

    monkeypatch.delenv("MIMAMORI_PORTAL_KEY", raising=False)
    assert main(["portal"]) == 2
    assert "MIMAMORI_PORTAL_KEY is required" in capsys.readouterr().err
    monkeypatch.setenv("MIMAMORI_PORTAL_KEY", "short")
    assert main(["portal"]) == 2
    err = capsys.readouterr().err
    assert "MIMAMORI_PORTAL_KEY" in err and "short" not in err.replace("expected a secret", "")
