"""One record from a UTM with a wrong clock (CONTRACT.md, "Default grading policy"): an event dated
ahead of the clock counts, as the newest event of its UTM, as if dated at the clock, so it cannot
make that UTM's later events late; it is itself stored, counted and correlated at its own time.
In `replay` the clock is the records' own time: no record is ahead of it (issue 20)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from pipeline.config import Settings
from pipeline.correlate import AlertChange, Correlator
from pipeline.engine import Detector, InputRecord
from pipeline.models import Event, Registry, Tenant, Utm
from pipeline.io.replay import Replay
from pipeline.rules import load_policy

TOKYO = ZoneInfo("Asia/Tokyo")
POLICY = load_policy()
T0 = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)
AHEAD = timedelta(hours=23)
TENANT = Tenant("t1", "Tenant", ("a@example.jp",), service_start=date(2026, 1, 10))


def event(event_id: str, ts: datetime, utm: str = "u1", **fields: Any) -> dict[str, Any]:
    record = {"v": 1, "event_id": event_id, "utm_id": utm, "ts": ts.isoformat(), "type": "url",
              "action": "blocked", "direction": "outbound", "src_ip": "192.168.1.10", "dst_ip": "203.0.113.9",
              "threat_category": "phishing", "signature_id": "sig-1"}
    record.update(fields)
    return record


RANSOMWARE = {"type": "av", "action": "detected", "threat_category": "ransomware", "src_ip": "192.168.1.20"}


def timeline() -> list[tuple[datetime, dict[str, Any]]]:
    """(arrival on the clock, record): a usual event, one dated 23 h ahead, then a ransomware
    detection on another host of the same UTM five minutes later."""
    return [
        (T0, event("e1", T0)),
        (T0 + MIN, event("wrong", T0 + MIN + AHEAD, src_ip="192.168.1.30")),
        (T0 + 5 * MIN, event("ransom", T0 + 5 * MIN, **RANSOMWARE)),
    ]


def test_the_newest_event_time_of_a_utm_never_runs_ahead_of_the_clock() -> None:
    c = Correlator(POLICY, window=timedelta(hours=1), tz=TOKYO, tenant_of=lambda utm: TENANT)
    changes: list[AlertChange] = []
    for now, record in timeline():
        fields = {k: v for k, v in record.items() if k != "v"}
        changes += c.process(Event.from_record({**fields, "tenant_id": "t1", "received_at": now.isoformat()}), now)
    assert c.late_events == 0
    by_host = {ch.alert.host_ip: ch.alert for ch in changes}
    assert by_host["192.168.1.20"].grade == 3  # the ransomware detection still makes its ★★★ alert
    wrong = by_host["192.168.1.30"]  # the wrong-clock record is correlated at its own time
    assert wrong.first_seen == T0 + MIN + AHEAD and wrong.grade == 1


def test_the_worker_facade_on_the_wall_clock_keeps_alerting_after_a_wrong_clock_record() -> None:
    registry = Registry(tenants={"t1": TENANT}, utms={"u1": Utm("u1", "t1")})
    detector = Detector(Settings(), registry, POLICY, started_at=T0)
    alerts = {}
    for offset, (now, record) in enumerate(timeline()):
        step = detector.step([InputRecord("event", orjson.dumps(record), "utm.events", 0, offset)], now)
        assert step.outputs.rejections == []
        alerts.update({ch.alert.host_ip: ch.alert for ch in step.alert_versions})
    assert alerts["192.168.1.20"].grade == 3
    assert alerts["192.168.1.30"].first_seen == T0 + MIN + AHEAD


def test_in_replay_the_clock_is_the_records_time_so_no_record_is_ahead_of_it() -> None:
    registry = Registry(tenants={"t1": TENANT}, utms={"u1": Utm("u1", "t1")})
    out: list[dict[str, Any]] = []
    Replay(Settings(), registry, POLICY, out.append).run([orjson.dumps(r) for _, r in timeline()], None)
    alerts = {r["host_ip"]: r for r in out if r["record"] == "alert"}
    # the wrong-clock record moved replay's clock 23 h on: the ransomware record is 23 h older than
    # its UTM's newest event, stored and counted but in no alert (as the worker would with that clock)
    assert set(alerts) == {"192.168.1.10", "192.168.1.30"}
    assert alerts["192.168.1.30"]["first_seen"].startswith("2026-11-21T00:01")
    assert [r for r in out if r["record"] == "rejection"] == []
