from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from pipeline.ingest import EventValidator
from pipeline.models import Event, Heartbeat, Registry, Rejection, Tenant, Utm

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)


def make_registry() -> Registry:
    return Registry(
        tenants={
            "t-1": Tenant("t-1", "Alpha", ("sec@alpha.example",)),
            "t-off": Tenant("t-off", "Gone", ("x@gone.example",), active=False),
        },
        utms={
            "utm-1": Utm("utm-1", "t-1"),
            "utm-off": Utm("utm-off", "t-1", active=False),
            "utm-of-off-tenant": Utm("utm-of-off-tenant", "t-off"),
            "utm-orphan": Utm("utm-orphan", "t-missing"),
        },
    )


def valid_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "v": 1, "event_id": "ev-1", "utm_id": "utm-1", "ts": "2026-11-20T11:59:00+09:00", "type": "av",
        "action": "detected", "direction": "inbound", "src_ip": "198.51.100.7", "dst_ip": "192.168.1.20",
        "dst_mac": "00:11:22:33:44:55", "threat_category": "malware", "vendor_severity": 4,
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not ...}


def valid_heartbeat(**changes: Any) -> dict[str, Any]:
    beat: dict[str, Any] = {"v": 1, "utm_id": "utm-1", "ts": "2026-11-20T11:59:00+09:00", "firmware": "7.2.1"}
    beat.update(changes)
    return {k: v for k, v in beat.items() if v is not ...}


def encode(data: Any) -> bytes:
    return orjson.dumps(data)


@pytest.fixture
def validator() -> EventValidator:
    return EventValidator(make_registry())


def reason_of(result: object) -> str:
    assert isinstance(result, Rejection), result
    return result.reason


def test_a_valid_event_is_accepted_and_normalized(validator: EventValidator) -> None:
    event = validator.check_event(encode(valid_event()), NOW)
    assert isinstance(event, Event)
    assert event.tenant_id == "t-1"
    assert event.ts == datetime(2026, 11, 20, 2, 59, tzinfo=timezone.utc)
    assert event.ts.tzinfo is timezone.utc
    assert event.received_at == NOW
    assert event.threat_category == "malware" and event.vendor_severity == 4
    assert event.extra == {}


@pytest.mark.parametrize("raw, expected", [
    ("AA:BB:CC:DD:EE:0F", "aa:bb:cc:dd:ee:0f"),
    ("aa-bb-cc-dd-ee-0f", "aa:bb:cc:dd:ee:0f"),
    ("AABB.CCDD.EE0F", "aa:bb:cc:dd:ee:0f"),
])
def test_macs_become_lower_case_colon_form(validator: EventValidator, raw: str, expected: str) -> None:
    event = validator.check_event(encode(valid_event(src_mac=raw, dst_mac=raw)), NOW)
    assert isinstance(event, Event)
    assert event.src_mac == expected and event.dst_mac == expected


@pytest.mark.parametrize("raw, expected", [
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
    ("::FFFF:192.0.2.1", "::ffff:c000:201"),
    ("10.1.2.3", "10.1.2.3"),
])
def test_ips_become_canonical(validator: EventValidator, raw: str, expected: str) -> None:
    event = validator.check_event(encode(valid_event(src_ip=raw, dst_ip=raw)), NOW)
    assert isinstance(event, Event)
    assert event.src_ip == expected and event.dst_ip == expected


def test_unknown_fields_are_kept_in_extra_and_nulls_are_absent(validator: EventValidator) -> None:
    event = validator.check_event(encode(valid_event(rule_name="X-1", tenant_id="forged", url=None, src_port=8080.0)), NOW)
    assert isinstance(event, Event)
    assert event.extra == {"rule_name": "X-1", "tenant_id": "forged"}
    assert event.tenant_id == "t-1"
    assert event.url is None
    assert event.src_port == 8080 and isinstance(event.src_port, int)


@pytest.mark.parametrize("ts, expected", [
    ("2026-11-20T02:00:00Z", datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)),
    ("2026-11-20t02:00:00.250z", datetime(2026, 11, 20, 2, 0, 0, 250000, tzinfo=timezone.utc)),
    ("2026-11-19T21:00:00-05:00", datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)),
    ("2026-11-20 11:00:00+09:00", datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)),
])
def test_timestamps_become_utc(validator: EventValidator, ts: str, expected: datetime) -> None:
    event = validator.check_event(encode(valid_event(ts=ts)), NOW)
    assert isinstance(event, Event)
    assert event.ts == expected


def test_too_large_comes_before_anything_else(validator: EventValidator) -> None:
    value = encode(valid_event(padding="x" * 70_000))
    result = validator.check_event(value, NOW)
    assert reason_of(result) == "too_large"
    assert "bytes" in result.detail  # type: ignore[union-attr]


def test_exactly_64_kib_is_accepted(validator: EventValidator) -> None:
    base = encode(valid_event(padding=""))
    value = encode(valid_event(padding="x" * (64 * 1024 - len(base))))
    assert len(value) == 64 * 1024
    assert isinstance(validator.check_event(value, NOW), Event)


@pytest.mark.parametrize("value", [b"{not json", b"", b"[1, 2]", b'"text"', b"null", b"\xff\xfe{}", b'{"v": 1,}'])
def test_invalid_json(validator: EventValidator, value: bytes) -> None:
    assert reason_of(validator.check_event(value, NOW)) == "invalid_json"


@pytest.mark.parametrize("changes, field", [
    ({"v": 2}, "v"),
    ({"event_id": ...}, "event_id"),
    ({"event_id": "e" * 65}, "event_id"),
    ({"event_id": ""}, "event_id"),
    ({"ts": "2026-11-20T02:00:00"}, "ts"),
    ({"ts": "yesterday"}, "ts"),
    ({"ts": 1763600000}, "ts"),
    ({"type": "dns"}, "type"),
    ({"action": "quarantined"}, "action"),
    ({"direction": "sideways"}, "direction"),
    ({"src_ip": "300.1.1.1"}, "src_ip"),
    ({"dst_ip": "not-an-ip"}, "dst_ip"),
    ({"dst_ip": "fe80::1%eth0"}, "dst_ip"),
    ({"src_mac": "00:11:22:33:44"}, "src_mac"),
    ({"src_mac": "zz:11:22:33:44:55"}, "src_mac"),
    ({"src_port": 65536}, "src_port"),
    ({"dst_port": -1}, "dst_port"),
    ({"dst_port": "443"}, "dst_port"),
    ({"vendor_severity": 6}, "vendor_severity"),
    ({"vendor_severity": 0}, "vendor_severity"),
    ({"vendor_severity": True}, "vendor_severity"),
    ({"src_zone": "dmz"}, "src_zone"),
    ({"url": 5}, "url"),
])
def test_schema_rejections_name_the_field(validator: EventValidator, changes: dict[str, Any], field: str) -> None:
    result = validator.check_event(encode(valid_event(**changes)), NOW)
    assert reason_of(result) == "schema"
    assert field in result.detail  # type: ignore[union-attr]


def test_missing_fields_are_all_named(validator: EventValidator) -> None:
    result = validator.check_event(encode({"v": 1, "event_id": "x", "utm_id": "utm-1"}), NOW)
    assert reason_of(result) == "schema"
    assert result.detail == "missing field: ts, type, action, direction, src_ip, dst_ip"  # type: ignore[union-attr]


@pytest.mark.parametrize("ts", [
    (NOW + timedelta(days=1, seconds=1)).isoformat(),
    (NOW - timedelta(days=90, seconds=1)).isoformat(),
    "2026-02-30T00:00:00Z",
])
def test_bad_timestamps(validator: EventValidator, ts: str) -> None:
    assert reason_of(validator.check_event(encode(valid_event(ts=ts)), NOW)) == "bad_timestamp"


@pytest.mark.parametrize("ts", [(NOW + timedelta(days=1)).isoformat(), (NOW - timedelta(days=90)).isoformat()])
def test_the_time_window_bounds_are_inclusive(validator: EventValidator, ts: str) -> None:
    assert isinstance(validator.check_event(encode(valid_event(ts=ts)), NOW), Event)


def test_window_follows_the_constructor() -> None:
    validator = EventValidator(make_registry(), retention=timedelta(days=1), max_ahead=timedelta(minutes=5))
    old = (NOW - timedelta(days=2)).isoformat()
    ahead = (NOW + timedelta(minutes=6)).isoformat()
    assert reason_of(validator.check_event(encode(valid_event(ts=old)), NOW)) == "bad_timestamp"
    assert reason_of(validator.check_event(encode(valid_event(ts=ahead)), NOW)) == "bad_timestamp"


@pytest.mark.parametrize("utm_id, reason", [
    ("utm-unknown", "unregistered_utm"),
    ("utm-of-off-tenant", "inactive_tenant"),
    ("utm-orphan", "inactive_tenant"),
    ("utm-off", "inactive_utm"),
])
def test_registry_rejections(validator: EventValidator, utm_id: str, reason: str) -> None:
    assert reason_of(validator.check_event(encode(valid_event(utm_id=utm_id)), NOW)) == reason


def test_checks_run_in_contract_order(validator: EventValidator) -> None:
    too_old = (NOW - timedelta(days=100)).isoformat()
    assert reason_of(validator.check_event(encode(valid_event(utm_id="nope", ts=too_old)), NOW)) == "bad_timestamp"
    assert reason_of(validator.check_event(encode(valid_event(utm_id="nope", ts=too_old, type="x")), NOW)) == "schema"


def test_the_registry_is_read_per_call() -> None:
    registry = make_registry()
    validator = EventValidator(registry)
    value = encode(valid_event(utm_id="utm-new"))
    assert reason_of(validator.check_event(value, NOW)) == "unregistered_utm"
    registry.utms["utm-new"] = Utm("utm-new", "t-1")
    assert isinstance(validator.check_event(value, NOW), Event)
    registry.tenants["t-1"] = Tenant("t-1", "Alpha", ("sec@alpha.example",), active=False)
    assert reason_of(validator.check_event(value, NOW)) == "inactive_tenant"


def test_rejection_carries_the_original_value_and_position(validator: EventValidator) -> None:
    value = b'{"v": 1, "note": "\xe8\xa6\x8b\xe5\xae\x88\xe3\x82\x8a"}'
    result = validator.check_event(value, NOW, topic="utm.events", partition=3, offset=42)
    assert isinstance(result, Rejection)
    assert (result.topic, result.partition, result.offset, result.received_at) == ("utm.events", 3, 42, NOW)
    assert result.value == value.decode("utf-8") and result.value_base64 is None


def test_rejection_of_non_utf8_is_base64(validator: EventValidator) -> None:
    value = b"\x80\x81 not utf-8"
    result = validator.check_event(value, NOW)
    assert isinstance(result, Rejection)
    assert result.value is None
    assert base64.b64decode(result.value_base64 or "") == value


def test_the_same_input_gives_the_same_output(validator: EventValidator) -> None:
    value = encode(valid_event())
    assert validator.check_event(value, NOW) == validator.check_event(value, NOW)


def test_heartbeat_accepted(validator: EventValidator) -> None:
    beat = validator.check_heartbeat(encode(valid_heartbeat(uptime_s=3600)), NOW)
    assert beat == Heartbeat("utm-1", datetime(2026, 11, 20, 2, 59, tzinfo=timezone.utc), "7.2.1", None, 3600)


@pytest.mark.parametrize("utm_id", ["utm-off", "utm-of-off-tenant", "utm-orphan"])
def test_heartbeat_of_inactive_is_ignored_without_rejection(validator: EventValidator, utm_id: str) -> None:
    assert validator.check_heartbeat(encode(valid_heartbeat(utm_id=utm_id)), NOW) is None


@pytest.mark.parametrize("changes, reason", [
    ({"utm_id": "utm-unknown"}, "unregistered_utm"),
    ({"ts": "2026-11-20T11:59:00"}, "schema"),
    ({"v": ...}, "schema"),
    ({"uptime_s": -1}, "schema"),
    ({"ts": "2027-01-01T00:00:00Z"}, "bad_timestamp"),
])
def test_heartbeat_rejections(validator: EventValidator, changes: dict[str, Any], reason: str) -> None:
    result = validator.check_heartbeat(encode(valid_heartbeat(**changes)), NOW)
    assert reason_of(result) == reason
    assert result.topic == "utm.heartbeats"  # type: ignore[union-attr]


def test_check_record_tells_events_from_heartbeats(validator: EventValidator) -> None:
    assert isinstance(validator.check_record(encode(valid_event()), NOW), Event)
    assert isinstance(validator.check_record(encode(valid_heartbeat()), NOW), Heartbeat)
    broken_event = validator.check_record(encode(valid_event(action="nope")), NOW)
    assert reason_of(broken_event) == "schema" and broken_event.topic == "utm.events"  # type: ignore[union-attr]
    not_a_heartbeat = validator.check_record(encode({"hello": 1}), NOW)
    assert reason_of(not_a_heartbeat) == "schema" and not_a_heartbeat.topic == "utm.heartbeats"  # type: ignore[union-attr]
    assert reason_of(validator.check_record(b"garbage", NOW)) == "invalid_json"
    assert validator.check_record(encode(valid_heartbeat(utm_id="utm-off")), NOW) is None
