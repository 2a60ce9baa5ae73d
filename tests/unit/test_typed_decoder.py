"""The typed decoder (pipeline.ingest.typed) against the contract: every case the ingest tests have,
the simulator's stream and fuzzed inputs go through the JSON Schemas (jsonschema, the reference
implementation, in the contract's order of checks) and through the validator with and without the
typed decoder. All three agree on the decision; the validator with it gives exactly the reason, the
detail and the normalized record of the validator without it (today's schema path)."""
from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.bounds import MAX_NESTING, nesting_problem
from pipeline.ingest import EventValidator
from pipeline.ingest.schemas import load_schema
from pipeline.ingest.typed import decode_event, decode_heartbeat
from pipeline.ingest.wire import MAX_RECORD_BYTES, check_time, parse_wire_time
from pipeline.models import Event, Heartbeat, Rejection
from pipeline.registry_file import registry_from_data
from pipeline.simulate import simulate
from tests.unit import test_ingest
from tests.unit.test_ingest import NOW, make_registry, valid_event, valid_heartbeat
from tests.unit.test_ingest_properties import JSON_VALUES, byte_mutations

TYPED = EventValidator(make_registry())
SCHEMA_PATH = EventValidator(make_registry(), typed=False)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """`pattern` as JSON Schema means it (ECMA-262): `$` is the end, not also before a final newline
    as in Python's `re`, which jsonschema uses as it is."""
    if isinstance(instance, str) and not re.search(pattern.replace("$", r"\Z"), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


ECMA_VALIDATOR = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})


@cache
def _schema(name: str) -> Any:
    checker = jsonschema.FormatChecker(formats=["ipv4", "ipv6"])  # date-time: the time check's (bad_timestamp)
    return ECMA_VALIDATOR(load_schema(name), format_checker=checker)


def reference(value: bytes, heartbeat: bool, validator: EventValidator = TYPED) -> str:
    """The contract's decision, its JSON Schema judged by jsonschema: a reason, `accepted` or `ignored`."""
    if len(value) > MAX_RECORD_BYTES:
        return "too_large"
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "invalid_json"
    if not isinstance(data, dict):
        return "invalid_json"
    if nesting_problem(data):  # the first schema check (pipeline.bounds: what could not be written again)
        return "schema"
    if next(_schema("heartbeat.v1.json" if heartbeat else "event.v1.json").iter_errors(data), None) is not None:
        return "schema"
    if check_time(parse_wire_time(data["ts"]), NOW, validator.retention, validator.max_ahead):
        return "bad_timestamp"
    refusal = validator.registry_refusal(data["utm_id"])
    if refusal is None:
        return "accepted"
    return "ignored" if heartbeat and refusal.reason != "unregistered_utm" else refusal.reason


def decision(result: object) -> str:
    if result is None:
        return "ignored"
    if isinstance(result, Rejection):
        return result.reason
    assert isinstance(result, (Event, Heartbeat))
    return "accepted"


def assert_agree(value: bytes) -> None:
    for heartbeat in (False, True):
        check = "check_heartbeat" if heartbeat else "check_event"
        typed = getattr(TYPED, check)(value, NOW)
        schema_path = getattr(SCHEMA_PATH, check)(value, NOW)
        assert decision(typed) == reference(value, heartbeat), (value, typed)
        assert typed == schema_path, value  # the same reason and detail, or the same normalized record


def _parametrized_cases() -> list[bytes]:
    """Every value the ingest tests parametrize, put where it belongs in an event and a heartbeat."""
    values: list[bytes] = []
    for function in vars(test_ingest).values():
        for mark in getattr(function, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            for case in mark.args[1]:
                for item in case if isinstance(case, tuple) else (case,):
                    if isinstance(item, dict):
                        values += [orjson.dumps(valid_event(**item)), orjson.dumps(valid_heartbeat(**item))]
                    elif isinstance(item, bytes):
                        values.append(item)
                    elif isinstance(item, str):
                        for name in ("ts", "utm_id", "src_mac", "dst_ip", "event_id"):
                            values.append(orjson.dumps(valid_event(**{name: item})))
                        values.append(orjson.dumps(valid_heartbeat(ts=item)))
    return values


EDGES = [
    valid_event(src_port=8080.0), valid_event(v=1.0), valid_event(v=True), valid_event(vendor_severity=True),
    valid_event(ts="2026-11-20T11:59:00+09:00\n"), valid_event(src_mac="00:11:22:33:44:55\n"),
    valid_event(event_id="e" * 64), valid_event(event_id="é" * 64), valid_event(utm_id="u" * 129),
    valid_event(src_ip="::ffff:1.2.3.4", dst_ip="fe80::1"), valid_event(src_ip="01.2.3.4"),
    valid_event(extra={"nested": [1, {"a": None}]}, more="x"), valid_event(proto=None, src_zone=None),
    valid_event(src_zone="lan", dst_zone="ssid2", url="http://x.example/", file_sha256="ab" * 32),
    {"v": 1, "event_id": "x", "utm_id": "utm-1"}, {"hello": 1},
    valid_heartbeat(uptime_s=2**53 + 1), valid_heartbeat(uptime_s=2**63 - 1), valid_heartbeat(uptime_s=0),
    valid_heartbeat(extra_field=[1, 2]), valid_heartbeat(firmware=None, signatures_version="2026.11"),
    valid_event(ts="2026-11-20T02:00:00.123456789Z"), valid_event(ts="2026-11-20t02:00:00z"),
    valid_event(ts=(NOW + timedelta(days=1)).isoformat()), valid_event(ts="2026-02-29T00:00:00Z"),
]
RAW_EDGES = [
    b'{"v":1,"v":2}', b'\xef\xbb\xbf' + orjson.dumps(valid_event()), orjson.dumps(valid_event()) + b"\n",
    orjson.dumps(valid_event()).replace(b'"ev-1"', b'"\\ud800"'), orjson.dumps(valid_event()).replace(b'"ev-1"', b'"\\u0000"'),
    orjson.dumps(valid_event()).replace(b'"vendor_severity":4', b'"vendor_severity":4,"vendor_severity":9'),
    orjson.dumps(valid_event()).replace(b'"type":"av"', b'"type":"dns","type":"av"'),
    orjson.dumps(valid_event()).replace(b'"vendor_severity":4', b'"vendor_severity":4e0'),
    orjson.dumps(valid_heartbeat()).replace(b'}', b',"uptime_s":18446744073709551617}'),
    orjson.dumps(valid_event(x=1)).replace(b'"x":1', b'"x":18446744073709551617'),
    orjson.dumps(valid_event()).replace(b'"ev-1"', b'"ev-\xff"'), b"[" * 5000 + b"]" * 5000,
    orjson.dumps(valid_event()).replace(b'}', b',"deep":' + b"[" * MAX_NESTING + b"]" * MAX_NESTING + b'}'),
    orjson.dumps(valid_event()).replace(b'}', b',"deep":' + b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1) + b'}'),
]


@pytest.mark.parametrize("value", _parametrized_cases() + [orjson.dumps(case) for case in EDGES] + RAW_EDGES)
def test_the_tests_cases(value: bytes) -> None:
    assert_agree(value)


def test_the_simulated_stream_with_its_faults() -> None:
    sim = simulate(tenants=4, utms_per_tenant=3, rate=2, duration=timedelta(minutes=20), seed=3)
    registry = registry_from_data(sim.registry)
    typed, schema_path = EventValidator(registry), EventValidator(registry, typed=False)
    now = parse_wire_time(sim.expected["end"])
    assert now is not None
    outcomes = set()
    for value in sim.lines:
        heartbeat = b'"type"' not in value
        check = "check_heartbeat" if heartbeat else "check_event"
        result = getattr(typed, check)(value, now)
        assert result == getattr(schema_path, check)(value, now), value
        outcomes.add(decision(result))
    assert {"accepted", "too_large", "invalid_json", "schema", "bad_timestamp", "unregistered_utm"} <= outcomes


def test_the_typed_decoder_takes_the_common_case_itself() -> None:
    """Not everything falls back to the schema path: plain records decode straight into structs,
    records with unknown fields through the open struct."""
    assert decode_event(orjson.dumps(valid_event())) is not None
    _, data = decode_event(orjson.dumps(valid_event(vendor_note="x"))) or (None, {})
    assert data.get("vendor_note") == "x"
    assert decode_event(orjson.dumps(valid_event(vendor_note=[{"x": 1}]))) is None
    assert decode_heartbeat(orjson.dumps(valid_heartbeat(uptime_s=5))) is not None
    assert decode_event(orjson.dumps(valid_event(v=2))) is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(value: bytes) -> None:
    assert_agree(value)


@settings(max_examples=400, deadline=None)
@given(byte_mutations())
def test_byte_mutated_records(value: bytes) -> None:
    assert_agree(value)


FIELDS = sorted(set(valid_event()) | {"src_mac", "src_port", "dst_port", "url", "uptime_s", "type", "src_zone",
                                      "vendor_severity", "firmware", "extra"})
SCALARS = st.sampled_from([None, True, 0, 1, 1.0, -1, 5, 6, 65535, 65536, 2**53 + 1, "", "av", "lan", "1.2.3.4",
                           "::1", "00:11:22:33:44:55", "2026-11-20T11:59:00+09:00", "2026-11-20T11:59:00"])


@settings(max_examples=600, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(FIELDS), SCALARS | JSON_VALUES, max_size=5),
       dropped=st.sets(st.sampled_from(FIELDS), max_size=3), heartbeat=st.booleans())
def test_field_mutated_records(changes: dict[str, Any], dropped: set[str], heartbeat: bool) -> None:
    base = valid_heartbeat() if heartbeat else valid_event()
    assert_agree(orjson.dumps({k: v for k, v in {**base, **changes}.items() if k not in dropped}))
