"""Per-UTM credentials: tokens derived from a deployment key, verified by any gateway replica.

A token is `mmr1.<utm_id, base64url>.<version>.<HMAC-SHA256 of utm_id and version under the key>`:
nothing is stored but each UTM's credential *state* (current version, the previous one and until
when it stays valid, revoked), on a compacted topic every gateway follows. Never a token, never the
key. A UTM with no state yet has version 1. Rotation makes version N+1 current and keeps N valid
for an overlap; revocation ends every version until a new one is issued.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from pipeline.models import iso, parse_time

PREFIX = "mmr1"
_CONTEXT = b"mimamori-utm-credential\x00"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _mac(key: str, utm_id: str, version: int) -> bytes:
    message = _CONTEXT + utm_id.encode("utf-8") + b"\x00" + str(version).encode("ascii")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).digest()


def derive_token(key: str, utm_id: str, version: int) -> str:
    return f"{PREFIX}.{_b64(utm_id.encode('utf-8'))}.{version}.{_b64(_mac(key, utm_id, version))}"


@dataclass(frozen=True)
class CredentialState:
    utm_id: str
    version: int = 1
    previous: int | None = None
    previous_until: datetime | None = None
    revoked: bool = False
    updated_at: datetime | None = None

    def to_record(self) -> dict[str, Any]:
        return {"utm_id": self.utm_id, "version": self.version, "previous": self.previous,
                "previous_until": iso(self.previous_until) if self.previous_until else None,
                "revoked": self.revoked, "updated_at": iso(self.updated_at) if self.updated_at else None}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "CredentialState":
        version, previous = record["version"], record.get("previous")
        if not isinstance(version, int) or version < 1 or not (previous is None or isinstance(previous, int)):
            raise ValueError("version must be a whole number >= 1, previous one or null")
        until = record.get("previous_until")
        updated = record.get("updated_at")
        return cls(utm_id=str(record["utm_id"]), version=version, previous=previous,
                   previous_until=parse_time(until) if until else None, revoked=bool(record.get("revoked", False)),
                   updated_at=parse_time(updated) if updated else None)

    def valid_versions(self, now: datetime) -> tuple[int, ...]:
        if self.revoked:
            return ()
        if self.previous is not None and self.previous_until is not None and now < self.previous_until:
            return (self.version, self.previous)
        return (self.version,)


def state_of(states: Mapping[str, CredentialState], utm_id: str) -> CredentialState:
    return states.get(utm_id) or CredentialState(utm_id)


@dataclass(frozen=True)
class Verified:
    utm_id: str
    version: int


@dataclass(frozen=True)
class AuthFailure:
    reason: str
    """`missing` (no bearer token), `malformed`, `wrong` (not made with this deployment's key), `revoked`
    (revoked, or a rotated-out version past its overlap)."""


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def verify(token: str | None, key: str, states: Mapping[str, CredentialState], now: datetime) -> Verified | AuthFailure:
    """Which UTM the token is, or why not. Compares the MAC in constant time; never echoes the token."""
    if not token:
        return AuthFailure("missing")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isdigit() or len(parts[2]) > 9:
        return AuthFailure("malformed")
    try:
        utm_id = _unb64(parts[1]).decode("utf-8")
        given = _unb64(parts[3])
    except ValueError:
        return AuthFailure("malformed")
    version = int(parts[2])
    if not utm_id or version < 1 or not hmac.compare_digest(given, _mac(key, utm_id, version)):
        return AuthFailure("wrong")
    if version not in state_of(states, utm_id).valid_versions(now):
        return AuthFailure("revoked")
    return Verified(utm_id, version)


def issued(state: CredentialState | None, utm_id: str, now: datetime) -> CredentialState:
    """The state after `mimamori utm credential UTM_ID`: unchanged when a version is valid (the same
    token is printed again), a new version after a revocation."""
    if state is None:
        return CredentialState(utm_id, updated_at=now)
    if state.revoked:
        return CredentialState(utm_id, version=state.version + 1, updated_at=now)
    return state


def rotated(state: CredentialState | None, utm_id: str, now: datetime, overlap: timedelta) -> CredentialState:
    """A new current version; the one before stays valid for `overlap` (none after a revocation)."""
    state = state or CredentialState(utm_id)
    if state.revoked:
        return CredentialState(utm_id, version=state.version + 1, updated_at=now)
    return CredentialState(utm_id, version=state.version + 1, previous=state.version,
                           previous_until=now + overlap if overlap > timedelta(0) else None, updated_at=now)


def revoked(state: CredentialState | None, utm_id: str, now: datetime) -> CredentialState:
    state = state or CredentialState(utm_id)
    return CredentialState(utm_id, version=state.version, revoked=True, updated_at=now)
