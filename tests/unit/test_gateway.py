"""The gateway's pure parts: tokens, body decoding, per-record checks, backpressure (issue 25)."""
from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from gateway.backpressure import Admission, BrokerHealth
from gateway.body import BodyError, decode_body, split_records
from gateway.checks import check_upload
from gateway.credentials import (
    AuthFailure, CredentialState, Verified, bearer_token, derive_token, issued, revoked, rotated, verify,
)
from pipeline.models import Registry, Tenant, Utm

KEY = "unit-test-key-0123456789"
NOW = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)


# -- credentials ----------------------------------------------------------------------------------

def test_a_token_verifies_as_its_utm_without_any_state() -> None:
    token = derive_token(KEY, "utm-001-01", 1)
    assert verify(token, KEY, {}, NOW) == Verified("utm-001-01", 1)
    assert "utm-001-01" not in token and KEY not in token


@pytest.mark.parametrize("token,why", [
    (None, "missing"), ("", "missing"), ("abc", "malformed"), ("mmr1.x.1", "malformed"),
    ("mmr1.dXRt.one.AAAA", "malformed"), ("mmr1.!!.1.AAAA", "malformed"),
])
def test_missing_and_malformed_tokens(token: str | None, why: str) -> None:
    assert verify(token, KEY, {}, NOW) == AuthFailure(why)


def test_a_token_of_another_key_or_a_changed_utm_is_wrong() -> None:
    assert verify(derive_token("another-key-0123456789", "utm-a", 1), KEY, {}, NOW) == AuthFailure("wrong")
    forged = derive_token(KEY, "utm-a", 1).split(".")
    forged[1] = derive_token(KEY, "utm-b", 1).split(".")[1]
    assert verify(".".join(forged), KEY, {}, NOW) == AuthFailure("wrong")
    parts = derive_token(KEY, "utm-a", 1).split(".")
    parts[3] = ("B" if parts[3][0] == "A" else "A") + parts[3][1:]
    assert verify(".".join(parts), KEY, {}, NOW) == AuthFailure("wrong")
    parts = derive_token(KEY, "utm-a", 1).split(".")
    assert verify(".".join(parts[:2] + ["2", parts[3]]), KEY, {}, NOW) == AuthFailure("wrong")


def test_rotation_keeps_the_previous_version_for_the_overlap_then_ends_it() -> None:
    state = rotated(issued(None, "utm-a", NOW), "utm-a", NOW, timedelta(hours=24))
    states = {"utm-a": state}
    old, new = derive_token(KEY, "utm-a", 1), derive_token(KEY, "utm-a", 2)
    assert verify(new, KEY, states, NOW) == Verified("utm-a", 2)
    assert verify(old, KEY, states, NOW + timedelta(hours=23)) == Verified("utm-a", 1)
    assert verify(old, KEY, states, NOW + timedelta(hours=24)) == AuthFailure("revoked")
    assert verify(derive_token(KEY, "utm-a", 3), KEY, states, NOW) == AuthFailure("revoked")


def test_revocation_ends_every_version_and_a_new_issue_is_a_new_version() -> None:
    state = revoked(rotated(None, "utm-a", NOW, timedelta(hours=1)), "utm-a", NOW)
    assert state.valid_versions(NOW) == ()
    assert verify(derive_token(KEY, "utm-a", 2), KEY, {"utm-a": state}, NOW) == AuthFailure("revoked")
    again = issued(state, "utm-a", NOW)
    assert again.version == 3 and not again.revoked
    assert issued(again, "utm-a", NOW) is again, "issuing a valid credential again changes nothing"


def test_a_state_round_trips_through_its_record_and_holds_no_secret() -> None:
    state = rotated(None, "utm-a", NOW, timedelta(hours=2))
    record = state.to_record()
    assert CredentialState.from_record(orjson.loads(orjson.dumps(record))) == state
    assert KEY not in orjson.dumps(record).decode()


def test_bearer_header() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None and bearer_token("Bearer ") is None


# -- body -----------------------------------------------------------------------------------------

def test_ndjson_and_array_bodies_give_the_same_records() -> None:
    records = [{"a": 1}, {"b": [1, 2]}]
    ndjson = b"\n".join(orjson.dumps(r) for r in records) + b"\n\n"
    assert split_records(ndjson) == split_records(orjson.dumps(records)) == [orjson.dumps(r) for r in records]
    assert split_records(b"{\"a\":1}\r\n") == [b'{"a":1}']
    assert split_records(b"") == [] and split_records(b"[]") == []


def test_a_broken_array_cannot_be_split() -> None:
    with pytest.raises(BodyError) as caught:
        split_records(b'[{"a":1},')
    assert caught.value.status == 400


def test_gzip_is_decoded_within_the_limit() -> None:
    body = b'{"a":1}\n' * 100
    assert decode_body(gzip.compress(body), "gzip", 1 << 20) == body
    with pytest.raises(BodyError) as caught:
        decode_body(gzip.compress(b"0" * (5 << 20)), "gzip", 4 << 20)
    assert caught.value.status == 413
    with pytest.raises(BodyError) as caught:
        decode_body(b"x" * 101, None, 100)
    assert caught.value.status == 413
    with pytest.raises(BodyError) as caught:
        decode_body(b"not gzip", "gzip", 100)
    assert caught.value.status == 400
    with pytest.raises(BodyError) as caught:
        decode_body(b"x", "br", 100)
    assert caught.value.status == 415


# -- checks ---------------------------------------------------------------------------------------

def _registry() -> Registry:
    tenant = dict(tenant_id="t-1", name="T", notify_emails=["a@t.example.jp"], locale="ja", service_start="2026-01-01",
                  contract_end=None, industry="retail", region="kanto", size_band="1-9")
    return Registry(
        tenants={"t-1": Tenant.from_record({**tenant, "active": True}),
                 "t-off": Tenant.from_record({**tenant, "tenant_id": "t-off", "active": False})},
        utms={u: Utm.from_record({"utm_id": u, "tenant_id": t, "model": "ZA-SA3500G", "registered_at": None,
                                  "active": a}) for u, t, a in (("utm-a", "t-1", True), ("utm-b", "t-1", True),
                                                                  ("utm-off", "t-1", False), ("utm-t", "t-off", True))})


def _event(utm_id: str, n: int = 1, **changes: object) -> bytes:
    record = {"v": 1, "event_id": f"e-{n}", "utm_id": utm_id, "ts": "2026-11-20T11:59:00+09:00", "type": "av",
              "action": "blocked", "direction": "inbound", "src_ip": "203.0.113.5", "dst_ip": "192.168.1.10"}
    return orjson.dumps({**record, **changes})


def test_each_record_is_checked_in_the_contracts_order_with_its_reasons() -> None:
    records = [_event("utm-a", 1), b"{not json", _event("utm-a", 2, action="quarantined"),
               _event("utm-a", 3, ts="2099-01-01T00:00:00+09:00"), _event("utm-a", 4, blob="x" * 70_000),
               _event("utm-b", 5), _event("utm-a", 6)]
    checked = check_upload(records, "utm-a", "events", _registry(), NOW, "utm.events")
    assert checked.accepted == [records[0], records[6]]
    assert [(r["index"], r["reason"]) for r in checked.refused] == [
        (1, "invalid_json"), (2, "schema"), (3, "bad_timestamp"), (4, "too_large"), (5, "wrong_utm")]
    rejected = [orjson.loads(r) for r in checked.rejections]
    assert [r["reason"] for r in rejected] == ["invalid_json", "schema", "bad_timestamp", "too_large"]
    assert rejected[0]["value"] == "{not json" and rejected[0]["topic"] == "utm.events"


def test_the_registry_tells_an_unknown_or_inactive_utm_so() -> None:
    registry = _registry()
    for utm_id, reason in (("utm-x", "unregistered_utm"), ("utm-off", "inactive_utm"), ("utm-t", "inactive_tenant")):
        checked = check_upload([_event(utm_id)], utm_id, "events", registry, NOW, "utm.events")
        assert not checked.accepted and checked.refused[0]["reason"] == reason
        assert len(checked.rejections) == 1


def test_heartbeats_of_an_inactive_utm_are_refused_without_a_rejection_record() -> None:
    beat = orjson.dumps({"v": 1, "utm_id": "utm-off", "ts": "2026-11-20T11:59:00+09:00"})
    checked = check_upload([beat], "utm-off", "heartbeats", _registry(), NOW, "utm.heartbeats")
    assert checked.refused[0]["reason"] == "inactive_utm" and not checked.rejections
    unknown = orjson.dumps({"v": 1, "utm_id": "utm-x", "ts": "2026-11-20T11:59:00+09:00"})
    assert check_upload([unknown], "utm-x", "heartbeats", _registry(), NOW, "utm.heartbeats").rejections


# -- backpressure ---------------------------------------------------------------------------------

def test_admission_bounds_what_waits() -> None:
    admission = Admission(limit=2)
    assert admission.take(1) and admission.take(1) and not admission.take(1)
    admission.release(1)
    assert admission.take(1)
    assert Admission(limit=2).take(5), "one request above the limit passes alone"


def test_a_broker_down_lets_one_probe_through_at_a_time() -> None:
    health = BrokerHealth()
    assert health.admit() and health.admit()
    health.failed(100.0, "KafkaTimeoutError")
    assert not health.up
    assert health.admit(), "the probe"
    assert not health.admit(), "the others are answered 503 at once"
    health.failed(110.0, "KafkaTimeoutError")
    assert health.retry_after(110.0) >= 1 and health.retry_after(300.0) == 30
    assert health.admit()
    health.acknowledged()
    assert health.up and health.admit() and health.admit()
