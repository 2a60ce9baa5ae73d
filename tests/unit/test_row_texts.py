"""The store's event rows written straight from the typed event (`event_row_json`) are, byte for
byte, what the dict of `event_row` gives through orjson: the store-rows topic and the store see
nothing new."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.models import Event
from pipeline.rows import ROW_JSON, event_row, event_row_json

pytestmark = pytest.mark.unit

TEXT = st.text(max_size=20)
MAYBE_TEXT = st.none() | TEXT
TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.just(timezone.utc) | st.just(timezone(timedelta(hours=9))))
EVENTS = st.builds(
    Event, event_id=TEXT, utm_id=TEXT, tenant_id=TEXT, ts=TIMES, type=TEXT, action=TEXT, direction=TEXT,
    src_ip=TEXT, dst_ip=TEXT, received_at=TIMES, src_mac=MAYBE_TEXT, dst_mac=MAYBE_TEXT,
    src_port=st.none() | st.integers(0, 65535), dst_port=st.none() | st.integers(0, 65535), proto=MAYBE_TEXT,
    signature_id=MAYBE_TEXT, signature=MAYBE_TEXT, threat_category=MAYBE_TEXT,
    vendor_severity=st.none() | st.integers(1, 5), url=MAYBE_TEXT, web_category=MAYBE_TEXT,
    extra=st.dictionaries(TEXT, st.none() | st.integers() | TEXT | st.lists(st.integers(), max_size=3), max_size=3),
)


def _old(event: Event, signal: int, alert_id: str | None) -> bytes:
    return orjson.dumps(event_row(event, None if signal < 0 else signal, alert_id), option=ROW_JSON)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.integers(-1, 3), st.none() | TEXT)
def test_an_event_row_is_written_as_its_dict_was(event: Event, signal: int, alert_id: str | None) -> None:
    assert event_row_json(event, signal, alert_id) == _old(event, signal, alert_id)


def test_a_row_that_orjson_refuses_is_refused_alike() -> None:
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    event = Event("e\ud800", "u1", "t1", now, "av", "blocked", "inbound", "10.0.0.1", "192.0.2.1", now)
    with pytest.raises(TypeError):
        _old(event, -1, None)
    with pytest.raises(TypeError):
        event_row_json(event, -1, None)
