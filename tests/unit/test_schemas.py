"""The schemas in schemas/ are the contract other producers read: the Python validation must agree with them."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from referencing import Registry as RefRegistry
from referencing import Resource

from pipeline.ingest import EventValidator
from pipeline.ingest.schemas import SCHEMA_BASE, load_schema
from pipeline.models import Alert, Mail, Rejection, Tenant, Utm, Verdict
from pipeline.resources import SCHEMAS
from tests.unit.test_ingest import NOW, make_registry, valid_event, valid_heartbeat

SCHEMA_NAMES = sorted(p.name for p in SCHEMAS.glob("*.json"))


def reference(name: str) -> jsonschema.Draft202012Validator:
    store = RefRegistry().with_resources(
        (SCHEMA_BASE + n, Resource.from_contents(load_schema(n))) for n in SCHEMA_NAMES
    )
    return jsonschema.Draft202012Validator(
        load_schema(name), registry=store, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


EVENT_REFERENCE = reference("event.v1.json")
HEARTBEAT_REFERENCE = reference("heartbeat.v1.json")
VALIDATOR = EventValidator(make_registry())


def passes_schema(result: object) -> bool:
    return not (isinstance(result, Rejection) and result.reason == "schema")


def test_every_contract_schema_exists() -> None:
    assert set(SCHEMA_NAMES) >= {
        "event.v1.json", "heartbeat.v1.json", "tenant.json", "utm.json", "registry-file.json", "rejection.json",
        "alert.json", "verdict.json", "mail.json",
    }


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schemas_are_valid_2020_12(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_BASE + name
    jsonschema.Draft202012Validator.check_schema(schema)


EVENT_CASES: list[tuple[dict[str, Any], bool]] = [
    (valid_event(), True),
    (valid_event(src_mac="AA-BB-CC-DD-EE-FF", src_ip="2001:DB8::1", extra_field={"a": 1}), True),
    (valid_event(src_mac="aabb.ccdd.eeff", vendor_severity=None, url=None), True),
    (valid_event(ts="2026-11-20t02:00:00.123456z", src_port=0, dst_port=65535), True),
    (valid_event(ts="2026-02-30T00:00:00Z"), True),
    (valid_event(src_port=443.0), True),
    (valid_event(threat_category="cryptominer", src_zone="ssid2", dst_zone=None), True),
    (valid_event(v=1.0), True),
    (valid_event(v=2), False),
    (valid_event(v="1"), False),
    (valid_event(event_id="x" * 65), False),
    (valid_event(event_id=""), False),
    (valid_event(utm_id=""), False),
    (valid_event(utm_id=None), False),
    (valid_event(ts="2026-11-20T02:00:00"), False),
    (valid_event(ts="2026-13-20T02:00:00Z"), False),
    (valid_event(ts="2026-11-20T24:00:00Z"), False),
    (valid_event(ts="20261120T020000Z"), False),
    (valid_event(type="AV"), False),
    (valid_event(action=None), False),
    (valid_event(direction=1), False),
    (valid_event(src_ip="1.2.3"), False),
    (valid_event(src_ip="01.2.3.4"), False),
    (valid_event(dst_ip="fe80::1%eth0"), False),
    (valid_event(dst_ip=""), False),
    (valid_event(src_mac="00:11:22:33:44"), False),
    (valid_event(src_mac="001122334455"), False),
    (valid_event(src_port=-1), False),
    (valid_event(src_port=1.5), False),
    (valid_event(dst_port=True), False),
    (valid_event(vendor_severity=0), False),
    (valid_event(vendor_severity=5.5), False),
    (valid_event(dst_zone="dmz"), False),
    (valid_event(signature_id=123), False),
    (valid_event(url=["x"]), False),
    ({k: v for k, v in valid_event().items() if k != "dst_ip"}, False),
]


@pytest.mark.parametrize("case, valid", EVENT_CASES)
def test_event_validation_agrees_with_the_reference(case: dict[str, Any], valid: bool) -> None:
    assert EVENT_REFERENCE.is_valid(case) is valid
    assert passes_schema(VALIDATOR.check_event(orjson.dumps(case), NOW)) is valid


HEARTBEAT_CASES: list[tuple[dict[str, Any], bool]] = [
    (valid_heartbeat(), True),
    (valid_heartbeat(uptime_s=0, signatures_version="2026.11.20.1", extra=True), True),
    (valid_heartbeat(firmware=None), True),
    (valid_heartbeat(uptime_s=-1), False),
    (valid_heartbeat(uptime_s="5"), False),
    (valid_heartbeat(ts="2026-11-20"), False),
    (valid_heartbeat(v=...), False),
    (valid_heartbeat(utm_id=...), False),
    (valid_heartbeat(firmware=7), False),
]


@pytest.mark.parametrize("case, valid", HEARTBEAT_CASES)
def test_heartbeat_validation_agrees_with_the_reference(case: dict[str, Any], valid: bool) -> None:
    assert HEARTBEAT_REFERENCE.is_valid(case) is valid
    assert passes_schema(VALIDATOR.check_heartbeat(orjson.dumps(case), NOW)) is valid


FIELD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-70000, 70000), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from([
        "2026-11-20T02:00:00Z", "2026-11-20T02:00:00", "10.0.0.1", "::1", "2001:db8::1", "fe80::1%1", "999.1.1.1",
        "aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "aa:bb", "av", "web", "blocked", "inbound",
        "wan", "ssid1", "x" * 65, "", "1",
    ]),
    st.lists(st.integers(-1000, 1000), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(st.sampled_from([
    "v", "event_id", "utm_id", "ts", "type", "action", "direction", "src_ip", "dst_ip", "src_mac", "dst_mac",
    "src_port", "dst_port", "src_zone", "vendor_severity", "url", "whatever",
]), FIELD_VALUES, max_size=4), dropped=st.sets(st.sampled_from(["ts", "src_ip", "v", "src_mac"]), max_size=1))
def test_mutated_events_agree_with_the_reference(changes: dict[str, Any], dropped: set[str]) -> None:
    case = {k: v for k, v in valid_event(**changes).items() if k not in dropped}
    assert passes_schema(VALIDATOR.check_event(orjson.dumps(case), NOW)) is EVENT_REFERENCE.is_valid(case)


AT = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("name, record", [
    ("tenant.json", Tenant("t-1", "Alpha", ("a@alpha.example",), service_start=date(2026, 1, 15)).to_record()),
    ("utm.json", Utm("utm-1", "t-1", "ZA-SA3500G", AT).to_record()),
    ("rejection.json", Rejection("schema", "ts: bad", "utm.events", 0, 7, AT, value="{}").to_record()),
    ("alert.json", Alert("a-1", "t-1", "utm-1", "192.168.1.2", None, 3, "infection", "Malware", AT, AT, 2,
                         ("malware", "c2"), "Run a full scan", "open", date(2026, 12, 20), 2, AT).to_record()),
    ("verdict.json", Verdict("a-1", 2, "Scanned, clean", AT).to_record()),
    ("mail.json", Mail("<m1@mimamori>", "alert", "t-1", ("a@alpha.example",), "★★★", 3, ("a-1",), None, AT,
                       "Subject: x\r\n\r\nbody").to_record()),
])
def test_model_records_match_their_schema(name: str, record: dict[str, Any]) -> None:
    reference(name).validate(orjson.loads(orjson.dumps(record)))


def test_out_of_contract_records_are_refused_by_their_schema() -> None:
    assert not reference("tenant.json").is_valid({"tenant_id": "t", "name": "n", "notify_emails": []})
    assert not reference("alert.json").is_valid({"alert_id": "a", "grade": 4})
    assert not reference("mail.json").is_valid({"kind": "newsletter"})
    assert not reference("registry-file.json").is_valid({"tenants": [{"tenant_id": "t"}], "utms": []})
