"""One record never stops a partition: deep nesting is refused at validation, a rejection of any
input stays far below the rejection topic's message limit (pipeline.bounds)."""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from pipeline.bounds import (
    KEPT_ORIGINAL_BYTES, MAX_NESTING, chunks_by_size, json_text, kept_original, nesting_depth,
)
from pipeline.ingest import EventValidator, wire_refusal
from pipeline.ingest.schemas import compiled_validator
from pipeline.models import Event, Heartbeat, Registry, Rejection, Tenant, Utm
from pipeline.rows import event_row

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)
REGISTRY = Registry(tenants={"t-1": Tenant("t-1", "Alpha", ("sec@alpha.example",))},
                    utms={"utm-1": Utm("utm-1", "t-1")})


def nested(levels: int) -> Any:
    value: Any = "x"
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]
    return value


def nested_text(levels: int) -> bytes:
    """`nested(levels)` as JSON text (orjson cannot write it past 254 levels: that is the point)."""
    opening = b"".join(b'{"k":' if i % 2 else b"[" for i in reversed(range(levels)))
    closing = b"".join(b"}" if i % 2 else b"]" for i in range(levels))
    return opening + b'"x"' + closing


def event(**extra: Any) -> bytes:
    """An event with `extra` fields; a value given as bytes is put in as JSON text."""
    text = {k: v for k, v in extra.items() if not isinstance(v, bytes)}
    value = orjson.dumps({"v": 1, "event_id": "ev-1", "utm_id": "utm-1", "ts": "2026-11-20T11:59:00+09:00",
                          "type": "av", "action": "detected", "direction": "inbound", "src_ip": "198.51.100.7",
                          "dst_ip": "192.168.1.20", "threat_category": "malware", **text})
    for name, raw in extra.items():
        if isinstance(raw, bytes):
            value = value[:-1] + b',"' + name.encode() + b'":' + raw + b"}"
    return value


def test_nesting_depth() -> None:
    assert orjson.loads(nested_text(7)) == nested(7)
    assert [nesting_depth(v) for v in ("x", {}, [], {"a": [1, {"b": []}]}, nested(300))] == [0, 1, 1, 4, 300]


def test_the_issue_record_is_refused_at_validation_naming_the_depth() -> None:
    """The 707-byte record of the issue: an unknown field nested 255 levels deep (256 with the
    record's own object) passed validation and crashed the store row on every retry."""
    value = event(deep=b"[" * 255 + b"]" * 255)
    assert len(value) < 800
    result = EventValidator(REGISTRY).check_event(value, NOW)
    assert isinstance(result, Rejection)
    assert result.reason == "schema"
    assert result.detail == f"record: nests 256 levels deep, the limit is {MAX_NESTING}"
    refusal = wire_refusal(value, NOW)  # what `produce --check` and the gateway run
    assert refusal is not None and (refusal.reason, refusal.detail) == ("schema", result.detail)


def test_heartbeats_and_replay_lines_are_refused_alike() -> None:
    validator = EventValidator(REGISTRY)
    beat = b'{"v": 1, "utm_id": "utm-1", "ts": "2026-11-20T11:59:00+09:00", "x": ' + nested_text(200) + b"}"
    result = validator.check_heartbeat(beat, NOW)
    assert isinstance(result, Rejection) and result.reason == "schema" and "201 levels" in result.detail
    assert wire_refusal(beat, NOW, heartbeat=True) is not None
    replayed = validator.check_record(event(deep=nested_text(1000)), NOW)
    assert isinstance(replayed, Rejection) and replayed.reason == "schema" and "1001 levels" in replayed.detail


def test_nesting_up_to_the_limit_is_kept_and_stored() -> None:
    value = event(deep=nested(MAX_NESTING - 1))
    accepted = EventValidator(REGISTRY).check_event(value, NOW)
    assert isinstance(accepted, Event)
    row = event_row(accepted, None, None)
    assert orjson.loads(row["extra"]) == {"deep": nested(MAX_NESTING - 1)}
    beat = EventValidator(REGISTRY).check_heartbeat(
        orjson.dumps({"v": 1, "utm_id": "utm-1", "ts": "2026-11-20T11:59:00+09:00", "x": nested(MAX_NESTING - 1)}), NOW)
    assert isinstance(beat, Heartbeat)


def test_many_brackets_inside_strings_are_no_nesting() -> None:
    value = event(note="[{" * 5000)
    assert isinstance(EventValidator(REGISTRY).check_event(value, NOW), Event)


def test_a_store_row_never_raises_on_what_a_utm_sent() -> None:
    """The last guard, for an event that did not come through the validator."""
    accepted = EventValidator(REGISTRY).check_event(event(), NOW)
    assert isinstance(accepted, Event)
    accepted.extra = {"deep": nested(400)}
    row = event_row(accepted, None, None)
    assert "not serializable" in orjson.loads(row["extra"])
    orjson.dumps(row)
    assert json_text({"a": [1]}) == '{"a":[1]}'


def test_the_rejection_of_an_800_kb_input_is_bounded() -> None:
    original = event(blob="a" * 800_000)
    result = EventValidator(REGISTRY).check_event(original, NOW, topic="utm.events", partition=2, offset=9)
    assert isinstance(result, Rejection) and result.reason == "too_large"
    record = result.to_record()
    compiled_validator("rejection.json")(record)
    encoded = orjson.dumps(record)
    print(f"rejection of a {len(original):,}-byte input: {len(encoded):,} bytes")
    assert len(encoded) < KEPT_ORIGINAL_BYTES + 1024
    assert result.value == original[:KEPT_ORIGINAL_BYTES].decode()
    assert record["original_size"] == len(original)
    assert record["original_sha256"] == hashlib.sha256(original).hexdigest()


def test_the_worst_rejection_stays_far_below_a_megabyte() -> None:
    """Control characters are escaped as six bytes each: 64 KiB of them is the largest text kept."""
    original = b'{"x": "' + b"\x01" * 900_000 + b'"}'
    result = EventValidator(REGISTRY).check_event(original, NOW)
    assert isinstance(result, Rejection)
    encoded = orjson.dumps(result.to_record())
    print(f"worst rejection: {len(encoded):,} bytes")
    assert len(encoded) < 7 * KEPT_ORIGINAL_BYTES < 1024 * 1024


def test_a_small_rejection_carries_the_whole_original() -> None:
    original = b'{"v": 1, "note": "\xe8\xa6\x8b"}'
    fields = kept_original(original)
    assert fields["value"] == original.decode() and fields["value_base64"] is None
    assert fields["original_size"] == len(original)


@pytest.mark.parametrize("cut", [1, 2])
def test_text_cut_inside_a_character_keeps_the_text_before_it(cut: int) -> None:
    original = b"a" * (KEPT_ORIGINAL_BYTES - cut) + "見".encode() * 10
    fields = kept_original(original)
    assert fields["value"] == "a" * (KEPT_ORIGINAL_BYTES - cut) and fields["value_base64"] is None


def test_bytes_that_are_not_utf8_are_kept_as_base64_up_to_the_limit() -> None:
    original = b"\xff" * 200_000
    fields = kept_original(original)
    assert fields["value"] is None
    assert base64.b64decode(fields["value_base64"]) == original[:KEPT_ORIGINAL_BYTES]
    assert fields["original_size"] == 200_000


def test_rejection_details_are_bounded() -> None:
    from pipeline.ingest.validator import rejected

    assert len(rejected("schema", "x" * 100_000, b"{}", NOW, "utm.events").detail) == 1000


def test_chunks_by_size() -> None:
    assert list(chunks_by_size([5, 5, 5, 20, 1], lambda n: n, 10, 100)) == [[5, 5], [5], [20], [1]]
    assert list(chunks_by_size([1] * 5, lambda n: n, 100, 2)) == [[1, 1], [1, 1], [1]]
    assert list(chunks_by_size([], lambda n: n, 10, 2)) == []


# --- correlation state: every record a UTM's state is saved as stays bounded ---------------------

def test_the_worst_utm_state_is_saved_as_bounded_records() -> None:
    """One UTM, 150 hosts with alerts, each alert fed the worst its events can carry: caution
    signals with 80 different long signature ids, unknown categories of 5,000 characters, evidence
    fields of control characters (each written as 6 bytes). Saved whole, that state was a record of
    several megabytes; saved as a head and one record per alert, no record reaches 128 KiB."""
    from datetime import timedelta

    from pipeline.config import Settings
    from pipeline.engine import Detector, InputRecord
    from pipeline.rules import load_policy

    settings = Settings()
    detector = Detector(settings, REGISTRY, load_policy(settings.rules_file), started_at=NOW)
    ugly = "\x01" * 600
    inputs = []
    for host in range(150):
        for i in range(100):
            fields: dict[str, Any] = {
                "event_id": f"e-{host}-{i}", "dst_ip": f"10.0.{host // 250}.{host % 250 + 1}",
                "ts": (NOW - timedelta(seconds=100 - i)).isoformat(), "action": "blocked",
                "signature_id": f"{i:03d}" + "\x02" * 61 if i < 80 else "s" * 5000 + str(i),
                "signature": ugly + str(i), "url": ugly + str(i), "domain": ugly + str(i), "file_name": ugly + str(i),
            }
            if i >= 80:  # unknown categories, kept by the signal 0 rule
                fields.update(threat_category="c" * 5000 + str(i), vendor_severity=5)
            inputs.append(InputRecord("event", event(**fields), "utm.events", 0, len(inputs)))
    step = detector.step(inputs, NOW)
    assert not step.outputs.rejections and len(step.alert_versions) >= 150
    sizes = {key: len(orjson.dumps(value)) for key, value in step.state.keyed.items() if value is not None}
    live = {k: n for k, n in sizes.items() if "\x1flive\x1f" in k}
    whole = len(orjson.dumps(detector.correlator.state_for("utm-1")))
    alert_message = max(len(orjson.dumps(c.alert.to_record())) for c in step.alert_versions)
    print(f"\nUTM state, 150 hosts: whole {whole:,} bytes; head {sizes['utm-1' + chr(31) + 'correlation']} bytes; "
          f"{len(live)} alert records, largest {max(live.values()):,} bytes; largest alert message {alert_message:,}")
    assert len(live) == 150
    assert whole > 1024 * 1024  # what one record per UTM would have been
    assert sizes["utm-1\x1fcorrelation"] < 200
    assert max(sizes.values()) < 128 * 1024
    assert alert_message < 128 * 1024
    alert = step.alert_versions[-1].alert
    assert alert.grade == 2 and alert.categories == ("malware", "unknown")


def test_alert_categories_and_signatures_are_bounded() -> None:
    from pipeline.correlate import MAX_CATEGORIES, signature_token, with_category

    categories: tuple[str, ...] = ()
    for i in range(100):
        categories = with_category(categories, f"{i:03d}" + "c" * 5000)
    assert len(categories) == MAX_CATEGORIES and all(len(c) == 100 for c in categories)
    assert list(categories) == sorted(categories) and with_category(("b",), "a") == ("a", "b")
    assert signature_token("sig-1") == "sig-1"
    long_a, long_b = "a" * 65, "a" * 64 + "b"
    assert signature_token(long_a) != signature_token(long_b) and len(signature_token(long_a)) == 33


def test_a_utm_state_saved_whole_before_is_saved_again_alert_by_alert() -> None:
    from datetime import timedelta

    from pipeline.config import Settings
    from pipeline.engine import Detector, InputRecord
    from pipeline.rules import load_policy

    settings = Settings()
    policy = load_policy(settings.rules_file)

    def beat(n: int) -> InputRecord:
        return InputRecord("event", event(event_id=f"e{n}", dst_ip=f"10.0.0.{n}", action="detected"), "utm.events", 0, n)

    first = Detector(settings, REGISTRY, policy, started_at=NOW)
    first.step([beat(1), beat(2)], NOW)
    old_record = {"watermark": first.correlator.state_for("utm-1")["watermark"],
                  "alerts": [{k: v for k, v in a.items() if k != "seq"} for a in first.correlator.state_for("utm-1")["alerts"]],
                  "joinable": first.correlator.state_for("utm-1")["joinable"]}  # as saved before the split
    second = Detector(settings, REGISTRY, policy, started_at=NOW)
    second.restore([("utm-1\x1fcorrelation", old_record)], [], NOW)
    later = NOW + timedelta(seconds=30)
    saved = dict(second.step([beat(3)], later).state.keyed)
    assert sorted(k.split("\x1f")[2] for k in saved if "\x1flive\x1f" in k) == sorted(
        a.alert_id for a in second.correlator.alerts("utm-1"))
    assert "alerts" not in saved["utm-1\x1fcorrelation"]
    third = Detector(settings, REGISTRY, policy, started_at=NOW)
    third.restore(saved.items(), [], later)
    assert third.correlator.alerts("utm-1") == second.correlator.alerts("utm-1")
    assert third.correlator.state_for("utm-1") == second.correlator.state_for("utm-1")


# --- every message a writer makes stays below its topic's limit ----------------------------------

def test_store_rows_messages_are_cut_by_size_and_read_as_before() -> None:
    from pipeline.bounds import STORE_ROWS_MESSAGE_BYTES
    from pipeline.internal import StoreRows

    rows = [{"event_id": f"e{i}", "extra": '{"x":"' + '\\"' * 30_000 + '"}'} for i in range(600)]
    values = StoreRows.values("events", rows, recheck=True, max_rows=2000, max_bytes=STORE_ROWS_MESSAGE_BYTES)
    assert len(values) > 1 and max(len(v) for v in values) <= STORE_ROWS_MESSAGE_BYTES
    read = [StoreRows.from_record(orjson.loads(v)) for v in values]
    assert [r for message in read for r in message.rows] == rows and all(m.recheck for m in read)
    small = [{"a": 1}, {"b": "見"}]
    assert StoreRows.values("alerts", small, max_rows=1, max_bytes=1000) == [
        orjson.dumps(StoreRows("alerts", [row]).to_record()) for row in small]


def test_the_detect_processor_cuts_a_batch_of_long_pairs_into_bounded_log_messages() -> None:
    from agents.processors.detect import _state_writes
    from pipeline.bounds import SEEN_MESSAGE_BYTES
    from pipeline.engine import DetectorStep, Outputs
    from pipeline.step import StateChanges

    from pipeline.dedup import decode_pairs

    pairs = [("u" * 64 + "\U0001F600" * 64 + f"{i:04d}", 2**64 - 1 - i, 1796277983.865 + i) for i in range(10_000)]
    writes = _state_writes(DetectorStep(Outputs(), StateChanges({}, pairs)))
    sizes = [len(w.value) for w in writes]
    print(f"\n10,000 pairs of the longest UTM ids: {sum(sizes):,} bytes in {len(writes)} log messages, largest {max(sizes):,}")
    assert max(sizes) <= SEEN_MESSAGE_BYTES
    decoded = []
    for w in writes:
        names, local, hashes, times = decode_pairs(w.value)
        decoded.extend(zip([names[i] for i in local.tolist()], hashes.tolist(), times.tolist()))
    assert sorted(decoded) == sorted(pairs)
    ordinary = [(f"utm-{i % 7}", i, 1796277983.865) for i in range(10_000)]
    assert len(_state_writes(DetectorStep(Outputs(), StateChanges({}, ordinary)))) == 1  # 200 KB


def test_every_topic_has_a_limit_the_producer_can_reach() -> None:
    from pipeline.config import Settings
    from pipeline.io.kafka_admin import MESSAGE_BYTES, PRODUCER_MAX_REQUEST_BYTES, _configs, topic_specs

    topics = Settings().topics
    specs = {spec.name: spec for spec in topic_specs(topics)}
    assert all(0 < s.max_message_bytes <= PRODUCER_MAX_REQUEST_BYTES for s in specs.values())
    assert all("max.message.bytes" in _configs(s) for s in specs.values())
    assert specs[topics.events].max_message_bytes == MESSAGE_BYTES  # an 800 kB input reaches the worker
    assert specs[topics.store_rows].max_message_bytes == PRODUCER_MAX_REQUEST_BYTES
    assert specs[topics.verdicts].max_message_bytes < specs[topics.mail_requests].max_message_bytes // 2
    from agents.runtime.processor import MAX_REQUEST_BYTES

    assert MAX_REQUEST_BYTES == PRODUCER_MAX_REQUEST_BYTES  # the producers' own maximum


def test_permanent_send_errors() -> None:
    from aiokafka import errors

    from pipeline.io.kafka_errors import is_permanent_send_error

    for exc in (errors.MessageSizeTooLargeError("too big"), errors.RecordListTooLargeError(),
                errors.CorruptRecordException(), errors.InvalidTimestampError(), errors.RecordTooLargeError()):
        assert is_permanent_send_error(exc), exc
    for exc in (errors.KafkaTimeoutError(), errors.NotLeaderForPartitionError(), errors.RequestTimedOutError(),
                errors.KafkaConnectionError(), errors.TopicAuthorizationFailedError(), errors.UnknownError(),
                errors.ProducerFenced(), ConnectionError(), RuntimeError("x")):
        assert not is_permanent_send_error(exc), exc


# --- mail state: one record per pending alert --------------------------------------------------

def _desk_and_alerts(count: int) -> tuple[Any, list[Any]]:
    from pipeline.config import Settings
    from pipeline.engine import MailDesk
    from pipeline.models import Alert

    tenant = Tenant("t-1", "Alpha", ("sec@alpha.example",))
    desk = MailDesk(Settings(), lambda tenant_id: tenant if tenant_id == "t-1" else None)
    alerts = [Alert(alert_id=f"al-{i:06d}", tenant_id="t-1", utm_id="utm-1", host_ip=f"10.0.{i // 250}.{i % 250}",
                    host_mac=None, grade=1 + i % 3, rule="r", title="t", first_seen=NOW, last_seen=NOW, event_count=1,
                    categories=tuple("c" * 99 + str(k) for k in range(16)), recommended_action="caution",
                    status="open", insurance_eligible_until=None) for i in range(count)]
    return desk, alerts


def test_a_tenant_with_thousands_of_pending_alerts_is_saved_as_bounded_records() -> None:
    from pipeline.correlate import AlertChange
    from pipeline.mail.requests import MailRequest

    desk, alerts = _desk_and_alerts(3001)
    step = desk.step([MailRequest.for_change(AlertChange(a, None, None)) for a in alerts], NOW)
    sizes = {key: len(orjson.dumps(value)) for key, value in step.state.keyed.items()}
    whole = len(orjson.dumps(desk.scheduler.tenants["t-1"].to_state()))
    print(f"\nmail state, 3,001 pending alerts: whole {whole:,} bytes; head {sizes['t-1' + chr(31) + 'schedule']} bytes; "
          f"{len(sizes) - 1} pending records, largest {max(sizes.values()):,}")
    assert whole > 4 * 1024 * 1024 and max(sizes.values()) < 8 * 1024
    again, _ = _desk_and_alerts(0)
    again.restore(step.state.keyed.items())
    assert again.scheduler.tenants["t-1"].to_state() == desk.scheduler.tenants["t-1"].to_state()
    mailed = desk.tick(NOW + timedelta_minutes(10))
    assert len(mailed.mails) == 31
    removed = [k for k, v in mailed.state.keyed.items() if v is None]
    assert len(removed) == 3001 and all("\x1fpending\x1f" in k for k in removed)
    assert len(orjson.dumps(mailed.state.keyed["t-1\x1fschedule"])) < 256 * 1024  # mailed grades: ~60 bytes an alert


def test_a_mail_schedule_saved_whole_before_is_saved_again_alert_by_alert() -> None:
    from pipeline.correlate import AlertChange
    from pipeline.mail.requests import MailRequest

    desk, alerts = _desk_and_alerts(3)
    desk.step([MailRequest.for_change(AlertChange(a, None, None)) for a in alerts[:2]], NOW)
    whole = desk.scheduler.tenants["t-1"].to_state()
    again, _ = _desk_and_alerts(0)
    again.restore([("t-1\x1fschedule", whole)])
    step = again.step([MailRequest.for_change(AlertChange(alerts[2], None, None))], NOW)
    assert sorted(k for k in step.state.keyed if "\x1fpending\x1f" in k) == [
        f"t-1\x1fpending\x1f{a.alert_id}" for a in alerts]
    assert "pending" not in step.state.keyed["t-1\x1fschedule"]


def timedelta_minutes(n: int) -> Any:
    from datetime import timedelta

    return timedelta(minutes=n)
