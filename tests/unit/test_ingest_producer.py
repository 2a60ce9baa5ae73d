from __future__ import annotations

from datetime import timedelta

import orjson

from pipeline.clock import ManualClock
from pipeline.config import Topics
from mimamori.producer import numbered_lines, produce_lines, registry_records, topic_for, utm_key
from tests.unit.test_ingest import NOW, make_registry, valid_event, valid_heartbeat

TOPICS = Topics()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def __call__(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.sent.append((topic, key, value))


def lines_of(*records: object) -> list[bytes]:
    return [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]


def test_good_lines_are_sent_keyed_by_utm_and_routed_by_kind() -> None:
    event, beat = orjson.dumps(valid_event()), orjson.dumps(valid_heartbeat(utm_id="utm-9"))
    send = Recorder()
    report = produce_lines(numbered_lines([event + b"\n", b"\n", beat + b"\r\n"]), send, ManualClock(NOW), topics=TOPICS)
    assert (report.read, report.sent, report.refused) == (2, 2, 0)
    assert send.sent == [("utm.events", b"utm-1", event), ("utm.heartbeats", b"utm-9", beat)]


def test_refused_lines_are_reported_with_their_number_and_not_sent() -> None:
    stale = valid_event(ts=(NOW - timedelta(days=91)).isoformat())
    lines = lines_of(valid_event(), b"{oops", valid_event(action="maybe"), stale, valid_event(utm_id="not-registered"))
    send, problems = Recorder(), []
    report = produce_lines(numbered_lines(lines), send, ManualClock(NOW), topics=TOPICS, report_problem=problems.append)
    assert (report.read, report.sent, report.refused) == (5, 2, 3)
    assert [p.split(":")[0] + ":" + p.split(":")[1] for p in problems] == [
        "line 2: invalid_json", "line 3: schema", "line 4: bad_timestamp"]
    assert problems[1] == "line 3: schema: action: must be one of ['blocked', 'disarmed', 'detected', 'allowed']"
    assert report.summary() == "read 5, sent 2, refused 3"
    assert len(send.sent) == 2


def test_an_explicit_topic_takes_every_line_and_checks_by_that_topic() -> None:
    send = Recorder()
    report = produce_lines(numbered_lines(lines_of(valid_event(), valid_heartbeat())), send, ManualClock(NOW),
                           topics=TOPICS, topic="utm.heartbeats")
    assert (report.sent, report.refused) == (2, 0)
    report = produce_lines(numbered_lines(lines_of(valid_heartbeat())), send, ManualClock(NOW), topics=TOPICS,
                           topic="utm.events")
    assert report.refused == 1 and "missing field" in report.problems[0]


def test_no_validate_sends_everything_as_is() -> None:
    send = Recorder()
    report = produce_lines(numbered_lines([b"{oops", b"[1]", orjson.dumps(valid_event(v=9))]), send, ManualClock(NOW),
                           topics=TOPICS, validate=False)
    assert (report.read, report.sent, report.refused) == (3, 3, 0)
    assert [(t, k) for t, k, _ in send.sent] == [("utm.events", None), ("utm.events", None), ("utm.events", b"utm-1")]


def test_check_only_sends_nothing() -> None:
    report = produce_lines(numbered_lines(lines_of(valid_event(), b"x")), None, ManualClock(NOW), topics=TOPICS)
    assert (report.read, report.sent, report.refused) == (2, 0, 1)


def test_time_is_judged_by_the_clock_given() -> None:
    line = numbered_lines(lines_of(valid_event()))
    report = produce_lines(line, None, ManualClock(NOW + timedelta(days=100)), topics=TOPICS)
    assert report.refused == 1 and "bad_timestamp" in report.problems[0]


def test_keys_and_routing_of_odd_values() -> None:
    assert utm_key(b'{"utm_id": 5}') is None and utm_key(b"[]") is None and utm_key(b'{"utm_id":"\xe3\x81\x82"}') == "あ".encode()
    assert topic_for(b"nope", TOPICS) == "utm.events" and topic_for(b'{"utm_id":"u"}', TOPICS) == "utm.heartbeats"


def test_registry_records_are_keyed_json() -> None:
    records = registry_records(make_registry(), TOPICS)
    assert [(t, k) for t, k, _ in records][:2] == [("registry.tenants", b"t-1"), ("registry.tenants", b"t-off")]
    assert ("registry.utms", b"utm-off") in [(t, k) for t, k, _ in records]
    assert orjson.loads(records[0][2])["notify_emails"] == ["sec@alpha.example"]
