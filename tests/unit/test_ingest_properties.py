"""No input can stop ingest: arbitrary bytes and mutated events are accepted or refused with a named reason."""
from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest import EventValidator
from pipeline.models import REJECTION_REASONS, Event, Heartbeat, Rejection
from tests.unit.test_ingest import NOW, make_registry, valid_event, valid_heartbeat

VALIDATOR = EventValidator(make_registry())


def assert_named_outcome(result: object, *, may_ignore: bool = False) -> None:
    if result is None:
        assert may_ignore
        return
    assert isinstance(result, (Event, Heartbeat, Rejection)), result
    if isinstance(result, Rejection):
        assert result.reason in REJECTION_REASONS
        assert not result.detail.startswith("internal error"), result.detail
        assert (result.value is None) != (result.value_base64 is None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(value: bytes) -> None:
    assert_named_outcome(VALIDATOR.check_event(value, NOW))
    assert_named_outcome(VALIDATOR.check_heartbeat(value, NOW), may_ignore=True)
    assert_named_outcome(VALIDATOR.check_record(value, NOW), may_ignore=True)


@st.composite
def byte_mutations(draw: st.DrawFn) -> bytes:
    value = bytearray(orjson.dumps(draw(st.sampled_from([valid_event(), valid_heartbeat()]))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(value) - 1))
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        if kind == "flip":
            value[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            value[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del value[at:at + draw(st.integers(1, 8))]
    return bytes(value)


@settings(max_examples=300, deadline=None)
@given(byte_mutations())
def test_byte_mutated_records(value: bytes) -> None:
    assert_named_outcome(VALIDATOR.check_event(value, NOW))
    assert_named_outcome(VALIDATOR.check_record(value, NOW), may_ignore=True)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FIELDS = sorted(set(valid_event()) | {"src_mac", "src_port", "url", "uptime_s", "type"})


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=5),
       dropped=st.sets(st.sampled_from(FIELDS), max_size=3), heartbeat=st.booleans())
def test_field_mutated_records(changes: dict[str, Any], dropped: set[str], heartbeat: bool) -> None:
    base = valid_heartbeat() if heartbeat else valid_event()
    case = {k: v for k, v in {**base, **changes}.items() if k not in dropped}
    value = orjson.dumps(case)
    assert_named_outcome(VALIDATOR.check_event(value, NOW))
    assert_named_outcome(VALIDATOR.check_heartbeat(value, NOW), may_ignore=True)
    assert_named_outcome(VALIDATOR.check_record(value, NOW), may_ignore=True)


@settings(max_examples=100, deadline=None)
@given(padding=st.integers(60_000, 70_000))
def test_size_limit_is_exact(padding: int) -> None:
    value = orjson.dumps(valid_event(padding="x" * padding))
    result = VALIDATOR.check_event(value, NOW)
    if len(value) > 64 * 1024:
        assert isinstance(result, Rejection) and result.reason == "too_large"
    else:
        assert isinstance(result, Event)
