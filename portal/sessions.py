"""Sessions in a signed cookie (HMAC-SHA256; HttpOnly, SameSite=Strict) and CSRF tokens bound to it.

The cookie holds no secret: the account id, the account's session epoch (raised by a password
change, a reset or a disable, which ends every session at once), the step of the login reached,
a random nonce the CSRF tokens are derived from, and when it was issued.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace

import orjson

COOKIE = "mimamori_portal"
LIFETIME_S = 8 * 3600
"""A session ends 8 hours after its login, whatever happens."""

# the steps of a login
ANONYMOUS = ""
NEED_TOTP = "totp"          # password right, the code of the authenticator app still to give
NEED_CREDENTIALS = "setup"  # logged in with temporary credentials: own id and password to set
NEED_DECISION = "decide"    # whether to use two-step verification, asked once
FULL = "full"


@dataclass(frozen=True)
class Session:
    account_id: str
    epoch: int
    step: str
    nonce: str
    issued: int

    @property
    def anonymous(self) -> bool:
        return not self.account_id

    def at(self, step: str) -> "Session":
        return replace(self, step=step)


def anonymous(now: float) -> Session:
    return Session("", 0, ANONYMOUS, secrets.token_urlsafe(18), int(now))


def logged_in(account_id: str, epoch: int, step: str, now: float) -> Session:
    """A new nonce at login: a token seen before the login is worth nothing after it."""
    return Session(account_id, epoch, step, secrets.token_urlsafe(18), int(now))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(session: Session, key: bytes) -> str:
    body = _b64(orjson.dumps([session.account_id, session.epoch, session.step, session.nonce, session.issued]))
    return body + "." + _b64(hmac.new(key, b"session|" + body.encode(), hashlib.sha256).digest())


def decode(value: str | None, key: bytes, now: float) -> Session | None:
    """The session of a cookie, or None when it is missing, forged or too old."""
    if not value or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    expected = _b64(hmac.new(key, b"session|" + body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        account_id, epoch, step, nonce, issued = orjson.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(issued, int) or now - issued > LIFETIME_S or issued > now + 300:
        return None
    return Session(str(account_id), int(epoch), str(step), str(nonce), issued)


def csrf_token(session: Session, key: bytes) -> str:
    return _b64(hmac.new(key, b"csrf|" + session.nonce.encode(), hashlib.sha256).digest())


def csrf_ok(session: Session, token: str | None, key: bytes) -> bool:
    return bool(token) and hmac.compare_digest(str(token), csrf_token(session, key))
