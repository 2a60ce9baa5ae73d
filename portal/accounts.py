"""Portal accounts: the rules (first login, own id and password, TOTP, lockout) over plain data with
the clock passed in, and their rows in the store (table `portal_accounts`, sql/migrations/0009).

A change writes a new row with a higher version; the latest row is the account. Several portal
replicas share the table, so an account locked or disabled on one is locked or disabled on all.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken

from pipeline.io.store.backends import Store
from pipeline.io.store.sqlfiles import query_sql

MAX_FAILURES = 5
"""Wrong passwords or codes in a row before the account locks."""
LOCK_FOR = timedelta(minutes=15)
TEMPORARY_FOR = timedelta(days=14)
"""How long temporary credentials stay usable."""
MIN_PASSWORD = 10
LOGIN_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{4,64}$")
TOTP_ISSUER = "mimamori セキュリティサービスポータル"

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _hasher.hash("no such account")


@dataclass(frozen=True)
class Account:
    account_id: str
    tenant_id: str
    login: str
    email: str
    password_hash: str
    temporary: bool
    temporary_until: datetime | None
    totp_secret: str
    """Encrypted (Fernet) base32 secret; empty when two-step verification is off."""
    totp_decided: bool
    """Whether the customer has chosen to use two-step verification or not (asked once)."""
    failures: int
    locked_until: datetime | None
    disabled: bool
    session_epoch: int
    created_at: datetime
    version: int

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    @property
    def uses_totp(self) -> bool:
        return bool(self.totp_secret)

    def to_row(self) -> dict[str, Any]:
        row = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for name in ("temporary", "totp_decided", "disabled"):
            row[name] = int(row[name])
        for name in ("temporary_until", "locked_until", "created_at"):
            value = row[name]
            row[name] = value.astimezone(timezone.utc).isoformat() if value else None
        return row


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def account_from_row(row: dict[str, Any]) -> Account:
    return Account(
        account_id=row["account_id"], tenant_id=row["tenant_id"], login=row["login"], email=row["email"],
        password_hash=row["password_hash"], temporary=bool(int(row["temporary"])),
        temporary_until=_time(row["temporary_until"]), totp_secret=row["totp_secret"],
        totp_decided=bool(int(row["totp_decided"])), failures=int(row["failures"]),
        locked_until=_time(row["locked_until"]), disabled=bool(int(row["disabled"])),
        session_epoch=int(row["session_epoch"]), created_at=_time(row["created_at"]) or datetime.now(timezone.utc),
        version=int(row["version"]),
    )


def _version(now: datetime, previous: int = 0) -> int:
    """Microseconds since the epoch, and always above the previous version of the account."""
    return max(int(now.timestamp() * 1_000_000), previous + 1)


# -- secrets ---------------------------------------------------------------------------------------

class Secrets:
    """What MIMAMORI_PORTAL_KEY gives: a cookie-signing key and the key that encrypts TOTP secrets."""

    def __init__(self, key: str) -> None:
        if not key or len(key) < 16:
            raise ValueError("MIMAMORI_PORTAL_KEY must be a secret of at least 16 characters")
        self.cookie_key = hashlib.sha256(b"mimamori-portal-cookie|" + key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"mimamori-portal-totp|" + key.encode()).digest()))

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, login: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=TOTP_ISSUER)


def totp_ok(secret: str, code: str, now: datetime) -> bool:
    code = code.strip().replace(" ", "")
    return code.isdigit() and len(code) == 6 and pyotp.TOTP(secret).verify(code, for_time=now, valid_window=1)


def password_problem(password: str, confirm: str, login: str) -> str | None:
    if password != confirm:
        return "確認用のパスワードが一致しません。"
    if len(password) < MIN_PASSWORD:
        return f"パスワードは{MIN_PASSWORD}文字以上にしてください。"
    if password.lower() == login.lower():
        return "パスワードにユーザIDと同じ文字列は使えません。"
    return None


def login_problem(login: str) -> str | None:
    if not LOGIN_PATTERN.match(login):
        return "ユーザIDは4〜64文字の半角英数字と . _ @ - で指定してください。"
    if login.lower().startswith("tmp-"):
        return "「tmp-」で始まるユーザIDは仮ユーザID用です。"
    return None


# -- the rules -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginResult:
    account: Account | None
    """The account as it is after this attempt (to be saved), or None when no account has the id."""
    ok: bool
    reason: str
    """`ok`, `wrong` (id or password), `locked`, `disabled`, `expired` (temporary credentials too old)."""


def check_password(account: Account | None, password: str, now: datetime) -> LoginResult:
    """One login attempt: a wrong password counts toward the lockout, a right one resets the count.
    A locked account is refused without looking at the password (and the failure is not counted)."""
    if account is None:
        password_matches(_DUMMY_HASH, password)  # same time as a real check: ids cannot be probed by timing
        return LoginResult(None, False, "wrong")
    if account.disabled:
        return LoginResult(account, False, "disabled")
    if account.locked(now):
        return LoginResult(account, False, "locked")
    if not password_matches(account.password_hash, password):
        return LoginResult(failed(account, now), False, "wrong")
    if account.temporary and account.temporary_until is not None and now >= account.temporary_until:
        return LoginResult(account, False, "expired")
    return LoginResult(succeeded(account, now), True, "ok")


def failed(account: Account, now: datetime) -> Account:
    failures = account.failures + 1
    if failures >= MAX_FAILURES:
        return replace(account, failures=0, locked_until=now + LOCK_FOR, version=_version(now, account.version))
    return replace(account, failures=failures, version=_version(now, account.version))


def succeeded(account: Account, now: datetime) -> Account:
    if account.failures == 0 and account.locked_until is None:
        return account
    return replace(account, failures=0, locked_until=None, version=_version(now, account.version))


def new_account(tenant_id: str, email: str, now: datetime) -> tuple[Account, str]:
    """A fresh account with a temporary id and password (returned once, to be mailed)."""
    login = "tmp-" + secrets.token_hex(5)
    password = _temporary_password()
    account = Account(
        account_id="acc-" + secrets.token_hex(8), tenant_id=tenant_id, login=login, email=email,
        password_hash=hash_password(password), temporary=True, temporary_until=now + TEMPORARY_FOR,
        totp_secret="", totp_decided=False, failures=0, locked_until=None, disabled=False, session_epoch=1,
        created_at=now, version=_version(now))
    return account, password


def _temporary_password() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def reset(account: Account, now: datetime) -> tuple[Account, str]:
    """New temporary credentials: own id kept aside, TOTP off, lock lifted, every session ended."""
    password = _temporary_password()
    return replace(account, login="tmp-" + secrets.token_hex(5), password_hash=hash_password(password),
                   temporary=True, temporary_until=now + TEMPORARY_FOR, totp_secret="", totp_decided=False,
                   failures=0, locked_until=None, disabled=False, session_epoch=account.session_epoch + 1,
                   version=_version(now, account.version)), password


def disable(account: Account, now: datetime) -> Account:
    return replace(account, disabled=True, session_epoch=account.session_epoch + 1, version=_version(now, account.version))


def set_credentials(account: Account, login: str, password: str, now: datetime) -> Account:
    return replace(account, login=login, password_hash=hash_password(password), temporary=False,
                   temporary_until=None, session_epoch=account.session_epoch + 1, version=_version(now, account.version))


def set_totp(account: Account, encrypted_secret: str, now: datetime) -> Account:
    return replace(account, totp_secret=encrypted_secret, totp_decided=True, version=_version(now, account.version))


# -- the store -------------------------------------------------------------------------------------

class AccountBook:
    """Accounts in the store (sql/queries/portal_account_*.sql)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, account: Account) -> None:
        self.store.insert("portal_accounts", [account.to_row()])

    def by_login(self, login: str) -> Account | None:
        rows = self.store.query(query_sql("portal_account_by_login"), {"login": login})
        return account_from_row(rows[0]) if rows else None

    def by_id(self, account_id: str) -> Account | None:
        rows = self.store.query(query_sql("portal_account_by_id"), {"account": account_id})
        return account_from_row(rows[0]) if rows else None

    def find(self, user: str) -> Account | None:
        """By login (user id) or account id, as `mimamori account` takes USER."""
        return self.by_login(user) or self.by_id(user)

    def login_taken(self, login: str, account_id: str) -> bool:
        found = self.by_login(login)
        return found is not None and found.account_id != account_id
