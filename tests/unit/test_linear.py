"""Linear in the open alerts (issue 22, point 4): one tenant with 10,000 open alerts, all pending at
once and then all mailed, goes through the worker's façades (`Detector` and `MailDesk` steps, the
mail tick after each batch, the upkeep) and through `mimamori replay` in seconds; so does one host
opening 10,000 alerts one after the other in replay (correlation).

Time on this machine is shared, so the test compares CPU time (of this process) of 10,000 alerts
with that of 1,000 of the same shape: linear work costs about 10 times as much, work that grows with
the alerts held (a due time computed over every pending alert at each record, every mailed grade
saved in one head at each step) a hundred times; it must stay under 25 times.
"""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import orjson
import pytest

from pipeline.config import Settings
from pipeline.engine import Detector, InputRecord, MailDesk
from pipeline.models import Registry, Tenant, Utm
from pipeline.io.replay import Replay
from pipeline.rules import load_policy

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
SETTINGS = Settings()
POLICY = load_policy(SETTINGS.rules_file)
UTMS = 10
SPACING = timedelta(milliseconds=2)
"""Between arrivals: 10,000 alerts open within 20 s, all pending for the same first mail."""
SECOND_WAVE = timedelta(minutes=1)
"""When every alert takes one more event (after the first mails went: no new mail, one more version)."""
MAX_RATIO = 25


def registry() -> Registry:
    return Registry(tenants={"t0": Tenant("t0", "T", ("a@example.jp",), service_start=date(2026, 1, 10))},
                    utms={f"u{i:02d}": Utm(f"u{i:02d}", "t0") for i in range(UTMS)})


def line(n: int, wave: int, count: int) -> tuple[datetime, bytes]:
    """Event `n` of a wave: its own host (so its own alert), arriving at its own time."""
    at = T0 + wave * (SECOND_WAVE + count * SPACING) + n * SPACING
    record = {"v": 1, "event_id": f"e{wave}-{n}", "utm_id": f"u{n % UTMS:02d}", "ts": at.isoformat(), "type": "av",
              "action": "blocked", "direction": "inbound", "src_ip": "203.0.113.5",
              "dst_ip": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", "threat_category": "malware",
              "signature_id": "sig-1"}
    return at, orjson.dumps(record)


def lines(count: int) -> list[tuple[datetime, bytes]]:
    return [line(n, wave, count) for wave in (0, 1) for n in range(count)]


def through_the_facades(count: int) -> dict[str, Any]:
    """As the worker drives them: batches of 20 records, each step's mail requests to the desk, the
    desk's tick after every batch, the upkeep every 5 minutes, every state change saved."""
    reg = registry()
    data = lines(count)
    detector = Detector(SETTINGS, reg, POLICY, started_at=data[0][0])
    desk = MailDesk(SETTINGS, reg.tenants.get)
    saved: dict[str, Any] = {}
    alerts: set[str] = set()
    mailed: list[str] = []
    written = 0
    upkeep_at = data[0][0] + timedelta(minutes=5)

    def save(keyed: dict[str, Any]) -> None:
        nonlocal written
        for key, value in keyed.items():
            saved[key] = value
            written += len(orjson.dumps(value))

    def mails(step: Any) -> None:
        mailed.extend(alert_id for mail in step.mails for alert_id in mail.alert_ids)
        save(step.state.keyed)

    now = data[0][0]
    for start in range(0, len(data), 20):
        batch = data[start:start + 20]
        now = batch[-1][0]
        step = detector.step([InputRecord("event", value, "in", 0, start + i) for i, (_, value) in enumerate(batch)], now)
        alerts.update(change.alert.alert_id for change in step.alert_versions)
        save(step.state.keyed)
        mails(desk.step(step.mail_requests, now))
        mails(desk.tick(now))
        if now >= upkeep_at:
            save(detector.upkeep(now).state.keyed)
            upkeep_at = now + timedelta(minutes=5)
    while (due := desk.next_due()) is not None:
        mails(desk.tick(due))
    return {"alerts": len(alerts), "mailed": sorted(mailed), "written": written}


def through_replay(count: int, settings: Settings = SETTINGS, data: list[bytes] | None = None) -> dict[str, Any]:
    records: list[dict] = []
    Replay(settings, registry(), POLICY, records.append).run(data or [value for _, value in lines(count)])
    mailed = sorted(a for r in records if r["record"] == "mail" for a in r["alert_ids"])
    return {"alerts": len({r["alert_id"] for r in records if r["record"] == "alert"}), "mailed": mailed}


def one_host_in_replay(count: int) -> dict[str, Any]:
    """One host of one UTM opening an alert every 2 s, past a correlation window of 1 s: the
    alerts an event is tried against must not grow with the alerts opened before."""
    data = []
    for n in range(count):
        at = T0 + n * timedelta(seconds=2)
        data.append(orjson.dumps({"v": 1, "event_id": f"e{n}", "utm_id": "u00", "ts": at.isoformat(), "type": "av",
                                  "action": "blocked", "direction": "inbound", "src_ip": "203.0.113.5",
                                  "dst_ip": "10.0.0.1", "threat_category": "malware", "signature_id": "sig-1"}))
    return through_replay(count, Settings(correlation_window=timedelta(seconds=1)), data)


def cpu(run: Callable[[int], dict[str, Any]], count: int) -> tuple[float, dict[str, Any]]:
    started = time.process_time()
    result = run(count)
    return time.process_time() - started, result


@pytest.mark.parametrize("run", [through_the_facades, through_replay, one_host_in_replay],
                         ids=["facades", "replay", "replay-one-host"])
def test_ten_thousand_open_alerts_of_one_tenant_cost_ten_times_one_thousand(run: Callable[[int], dict[str, Any]]) -> None:
    run(50)  # templates compiled, caches warm
    small, few = cpu(run, 1_000)
    large, many = cpu(run, 10_000)
    print(f"\n{run.__name__}: 1,000 alerts {small:.2f} s CPU, 10,000 alerts {large:.2f} s CPU "
          f"({large / small:.1f} times)")
    for result, count in ((few, 1_000), (many, 10_000)):
        assert result["alerts"] == count
        assert len(result["mailed"]) == count and len(set(result["mailed"])) == count  # each mailed once
    assert large / small < MAX_RATIO
    assert large < 120  # seconds of CPU, whatever the other runs on the machine
