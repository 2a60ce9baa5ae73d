"""The façades a driver uses (`Detector`, `MailDesk`): batches in, outputs and state changes out.

The worker saves what `StateChanges` say and restores a fresh façade from it after a restart or a
rebalance; these tests do the same without Kafka: a façade restored from the saved state of the
first half of a stream must make of the second half exactly what one façade makes of all of it.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.dedup import Deduper
from pipeline.engine import Detector, DetectorStep, InputRecord, MailDesk
from pipeline.mail.requests import MailRequest
from pipeline.models import Verdict
from pipeline.registry_file import registry_from_data
from pipeline.rules import load_policy
from pipeline.simulate import JST, simulate
from pipeline.step import StateChanges

pytestmark = pytest.mark.unit

SIM = simulate(tenants=3, utms_per_tenant=2, rate=4.0, duration=timedelta(minutes=40),
               start=datetime(2026, 11, 20, 9, 0, tzinfo=JST), seed=11)
SETTINGS = Settings()
POLICY = load_policy(SETTINGS.rules_file)


def records() -> list[tuple[datetime, InputRecord]]:
    """The simulated lines with an arrival clock that walks evenly over the simulated 40 minutes
    (the lines' own times include the refused ones, days off)."""
    start = datetime(2026, 11, 20, 9, 0, tzinfo=JST)
    step = timedelta(minutes=40) / len(SIM.lines)
    out = []
    for offset, line in enumerate(SIM.lines):
        try:
            data = orjson.loads(line)
        except ValueError:
            data = None
        kind = "event" if isinstance(data, dict) and "type" in data else "heartbeat"
        out.append((start + offset * step, InputRecord(kind, line, "in", 0, offset)))
    return out


class Saved:
    """What the worker's state topics would hold."""

    def __init__(self) -> None:
        self.keyed: dict[str, Any] = {}
        self.seen: list[tuple[str, float]] = []

    def save(self, changes: StateChanges) -> None:
        for key, value in changes.keyed.items():
            if value is None:
                self.keyed.pop(key, None)
            else:
                self.keyed[key] = orjson.loads(orjson.dumps(value))
        self.seen.extend(changes.seen)


def detector(started: datetime) -> Detector:
    return Detector(SETTINGS, registry_from_data(SIM.registry), POLICY, started_at=started)


def run(d: Detector, items: list[tuple[datetime, InputRecord]], saved: Saved | None = None,
        batch: int = 50) -> list[DetectorStep]:
    steps = []
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        now = chunk[-1][0]
        step = d.step([r for _, r in chunk], now)
        tick = d.tick(now)
        steps += [step, tick]
        if saved is not None:
            saved.save(step.state)
            saved.save(tick.state)
    return steps


def final(steps: list[DetectorStep]) -> dict[str, tuple[int, str, int]]:
    latest = {}
    for step in steps:
        for change in step.alert_versions:
            latest[change.alert.alert_id] = (change.alert.grade, change.alert.status, change.alert.event_count)
    return latest


def stored_events(steps: list[DetectorStep]) -> list[tuple[str, str]]:
    return sorted((row["utm_id"], row["event_id"]) for step in steps for row in step.rows["events"])


def test_a_detector_restored_from_saved_state_goes_on_as_if_never_stopped() -> None:
    items = records()
    half = len(items) // 2
    start = items[0][0]
    whole = run(detector(start), items)

    saved = Saved()
    first = run(detector(start), items[:half], saved)
    again = detector(items[half][0])
    again.restore(saved.keyed.items(), saved.seen, items[half][0])
    second = run(again, items[half:])

    assert final(first + second) == final(whole)
    assert stored_events(first + second) == stored_events(whole)
    assert [r.reason for s in first + second for r in s.outputs.rejections] == \
        [r.reason for s in whole for r in s.outputs.rejections]


def test_a_resend_after_a_restore_is_a_duplicate() -> None:
    items = [(at, r) for at, r in records() if r.kind == "event"]
    saved = Saved()
    start = items[0][0]
    first = run(detector(start), items[:200], saved)
    assert saved.seen, "accepted events are remembered in the saved state"
    again = detector(items[199][0])
    again.restore(saved.keyed.items(), saved.seen, items[199][0])
    step = again.step([r for _, r in items[:200]], items[199][0] + timedelta(minutes=5))
    accepted = len(stored_events(first))
    assert step.outputs.duplicates == accepted and not step.rows["events"]


def test_pairs_older_than_the_dedup_window_are_not_restored() -> None:
    d = detector(datetime(2026, 11, 20, tzinfo=JST))
    now = datetime(2026, 11, 22, tzinfo=JST)
    d.restore([], [("utm\x1fold", (now - timedelta(hours=25)).timestamp()),
                   ("utm\x1fnew", (now - timedelta(hours=1)).timestamp())], now)
    assert d.deduper.remembers("utm", "new", now) and len(d.deduper) == 1


def test_an_empty_deduper_given_is_kept() -> None:
    """The truthiness trap: an empty Deduper has len 0; `deduper or Deduper()` replaced it."""
    given = Deduper(timedelta(hours=24))
    assert not given
    assert detector(datetime(2026, 11, 20, tzinfo=JST)).deduper is not given
    d = Detector(SETTINGS, registry_from_data(SIM.registry), POLICY, started_at=datetime(2026, 11, 20, tzinfo=JST),
                 deduper=given)
    assert d.deduper is given


def test_a_record_the_logic_fails_on_is_an_internal_error_with_its_bytes() -> None:
    d = detector(datetime(2026, 11, 20, tzinfo=JST))
    step = d.step([InputRecord("verdict", b'{"alert_id": 7}', "verdicts-by-utm", 2, 9)], datetime(2026, 11, 20, tzinfo=JST))
    [rejection] = step.outputs.rejections
    assert (rejection.reason, rejection.topic, rejection.partition, rejection.offset) == \
        ("internal_error", "verdicts-by-utm", 2, 9)
    assert rejection.value == '{"alert_id": 7}'


def test_a_verdict_on_a_finished_alert_after_a_restore_is_applied() -> None:
    items = records()
    saved = Saved()
    start = items[0][0]
    steps = run(detector(start), items, saved)
    later = items[-1][0] + timedelta(days=2)
    d = detector(later)
    d.restore(saved.keyed.items(), saved.seen, later)
    saved.save(d.upkeep(later).state)
    d = detector(later)
    d.restore(saved.keyed.items(), saved.seen, later)
    alert_id = next(iter(final(steps)))
    step = d.step([InputRecord("verdict", orjson.dumps(Verdict(alert_id, 3, "confirmed", later).to_record()))], later)
    assert [c.alert.grade for c in step.alert_versions] == [3]
    assert d.utm_of(alert_id) is not None


def test_the_mail_desk_restored_from_saved_state_sends_the_same_mails() -> None:
    steps = run(detector(records()[0][0]), records())
    timeline = [req for step in steps for req in step.mail_requests]
    assert timeline
    at = datetime(2026, 11, 20, 9, 0, tzinfo=JST)
    whole_desk, saved = MailDesk(SETTINGS, registry_from_data(SIM.registry).tenants.get), Saved()
    half_desk = MailDesk(SETTINGS, registry_from_data(SIM.registry).tenants.get)
    whole, halves = [], []
    half = len(timeline) // 2
    for i, request in enumerate(timeline):
        now = at + timedelta(seconds=10 * i)
        request = MailRequest.from_record(orjson.loads(orjson.dumps(request.to_record())))
        if i == half:
            half_desk = MailDesk(SETTINGS, registry_from_data(SIM.registry).tenants.get)
            half_desk.restore(saved.keyed.items())
        for desk, out in ((whole_desk, whole), (half_desk, halves)):
            step = desk.step([request], now)
            tick = desk.tick(now)
            out += [m.message_id for m in step.mails + tick.mails]
            if desk is half_desk:
                saved.save(step.state)
                saved.save(tick.state)
    end = at + timedelta(seconds=10 * len(timeline) + 3600)
    whole += [m.message_id for m in whole_desk.tick(end).mails]
    halves += [m.message_id for m in half_desk.tick(end).mails]
    assert whole and halves == whole


def test_a_heartbeat_alone_saves_its_utms_status() -> None:
    """A batch of heartbeats (no alert in it) saves each UTM's status: a detector restored from it
    knows them all (a mis-indented save once kept it only beside alert records)."""
    registry = registry_from_data(SIM.registry)
    now = datetime(2026, 11, 20, 9, 0, tzinfo=JST)
    utms = sorted(registry.utms)
    beats = [InputRecord("heartbeat", orjson.dumps({"v": 1, "utm_id": u, "ts": now.isoformat()}), "hb", 0, i)
             for i, u in enumerate(utms)]
    original = Detector(SETTINGS, registry, POLICY, started_at=now)
    step = original.step(beats, now)
    restored = Detector(SETTINGS, registry, POLICY, started_at=now)
    restored.restore(step.state.keyed.items(), [], now)
    assert restored.utm_counts["seen"] == original.utm_counts["seen"] >= 5


def test_a_step_taken_in_slices_is_the_step_taken_at_once() -> None:
    """The worker judges a batch a slice at a time (agents/processors/detect.py SLICE) to hand the
    event loop back between slices: the step's messages, rows and state must not change."""
    items = records()
    start, now = items[0][0], items[-1][0]
    whole = detector(start).step([r for _, r in items], now)
    stepping = detector(start).stepping(now)
    for i in range(0, len(items), 37):
        stepping.take(r for _, r in items[i:i + 37])
    sliced = stepping.done()

    assert [c.alert.to_record() for c in sliced.alert_versions] == [c.alert.to_record() for c in whole.alert_versions]
    assert [m.to_record() for m in sliced.mail_requests] == [m.to_record() for m in whole.mail_requests]
    assert sliced.row_texts == whole.row_texts
    assert [r.to_record() for r in sliced.outputs.rejections] == [r.to_record() for r in whole.outputs.rejections]
    assert orjson.dumps(sliced.state.keyed, option=orjson.OPT_SORT_KEYS) == \
        orjson.dumps(whole.state.keyed, option=orjson.OPT_SORT_KEYS)
    assert sliced.state.seen == whole.state.seen
    assert sliced.outputs.duplicates == whole.outputs.duplicates and whole.alert_versions and whole.outputs.rejections
