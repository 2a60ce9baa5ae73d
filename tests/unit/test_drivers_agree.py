"""One logic, two drivers: the worker's way (batches through `Detector.step`, mail requests through
`MailDesk.step`/`tick`) and `mimamori replay` (record by record on a clock that follows them) make
the same alerts, store the same events and mail the same alerts of the same stream. Only the
grouping of alerts into mails may differ, since it follows each driver's clock."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.engine import Detector, InputRecord, MailDesk
from pipeline.registry_file import registry_from_data
from pipeline.io.replay import Replay
from pipeline.rules import load_policy
from pipeline.simulate import JST, simulate

pytestmark = pytest.mark.unit

SIM = simulate(tenants=3, utms_per_tenant=2, rate=4.0, duration=timedelta(minutes=40),
               start=datetime(2026, 11, 20, 9, 0, tzinfo=JST), seed=5)
SETTINGS = Settings()
POLICY = load_policy(SETTINGS.rules_file)


class Rows:
    """A replay writer that keeps what it is given."""

    def __init__(self) -> None:
        self.events: set[tuple[str, str]] = set()

    def rows(self, rows_by_table: dict[str, list[dict[str, Any]]]) -> None:
        self.events |= {(r["utm_id"], r["event_id"]) for r in rows_by_table.get("events", [])}

    def mail(self, mail: Any) -> None:
        return None

    def close(self) -> None:
        return None


def by_replay() -> tuple[dict[str, int], set[tuple[str, str]], set[str]]:
    printed: list[dict[str, Any]] = []
    rows = Rows()
    Replay(SETTINGS, registry_from_data(SIM.registry), POLICY, printed.append, writer=rows).run(SIM.lines)  # type: ignore[arg-type]
    grades = {r["alert_id"]: r["grade"] for r in printed if r["record"] == "alert"}
    mailed = {a for r in printed if r["record"] == "mail" and r["kind"] == "alert" for a in r["alert_ids"]}
    return grades, rows.events, mailed


def arrival(line: bytes, clock: datetime) -> datetime:
    """The worker's clock for a line: its time when it is a sane one, never going back."""
    try:
        ts = datetime.fromisoformat(orjson.loads(line)["ts"])
        ahead = ts - clock
    except Exception:
        return clock
    return max(clock, ts) if ahead < timedelta(hours=1) else clock


def by_worker_facades(batch: int = 64) -> tuple[dict[str, int], set[tuple[str, str]], set[str]]:
    registry = registry_from_data(SIM.registry)
    clock = datetime(2026, 11, 20, 9, 0, tzinfo=JST)
    detector = Detector(SETTINGS, registry, POLICY, started_at=clock)
    desk = MailDesk(SETTINGS, registry.tenants.get)
    grades: dict[str, int] = {}
    events: set[tuple[str, str]] = set()
    mailed: set[str] = set()

    def publish(step: Any, now: datetime) -> None:
        for change in step.alert_versions:
            grades[change.alert.alert_id] = change.alert.grade
        events.update((r["utm_id"], r["event_id"]) for r in step.rows["events"])
        for mail in desk.step(step.mail_requests, now).mails + desk.tick(now).mails:
            if mail.kind == "alert":
                mailed.update(mail.alert_ids)

    for i in range(0, len(SIM.lines), batch):
        lines = SIM.lines[i:i + batch]
        for line in lines:
            clock = arrival(line, clock)
        kinds = ["event" if b'"type"' in line else "heartbeat" for line in lines]
        publish(detector.step([InputRecord(k, line) for k, line in zip(kinds, lines)], clock), clock)
        publish(detector.tick(clock), clock)
    end = clock + timedelta(hours=1)
    publish(detector.tick(end), end)
    return grades, events, mailed


def test_the_worker_facades_and_replay_agree() -> None:
    replay_grades, replay_events, replay_mailed = by_replay()
    grades, events, mailed = by_worker_facades()
    assert replay_grades and replay_mailed
    assert grades == replay_grades
    assert events == replay_events
    assert mailed == replay_mailed
