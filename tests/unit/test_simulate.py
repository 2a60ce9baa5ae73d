from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from mimamori.cli import main
from pipeline.ingest import EventValidator
from pipeline.models import Event, Heartbeat, Rejection, parse_time
from pipeline.registry_file import registry_from_data, registry_problems
from pipeline.simulate import simulate

SIM = simulate(tenants=3, utms_per_tenant=2, rate=4, duration=timedelta(minutes=30), seed=7)


def ingest_like_replay(sim_lines: list[bytes], registry: dict) -> tuple[list[Event], Counter, Counter]:
    """Every line through validation with replay's clock (latest accepted time), then (utm_id, event_id) dedup."""
    validator = EventValidator(registry_from_data(registry))
    clock = parse_time(SIM.expected["start"])
    events, seen, outcomes, reasons = [], set(), Counter(), Counter()
    for line in sim_lines:
        result = validator.check_record(line, clock)
        if isinstance(result, Rejection):
            reasons[result.reason] += 1
            continue
        if result is None:
            outcomes["ignored_heartbeats"] += 1
            continue
        clock = max(clock, result.ts)
        if isinstance(result, Heartbeat):
            outcomes["heartbeats"] += 1
        elif (result.utm_id, result.event_id) in seen:
            outcomes["duplicates"] += 1
        else:
            seen.add((result.utm_id, result.event_id))
            outcomes["events"] += 1
            events.append(result)
    return events, outcomes, reasons


def test_the_same_seed_gives_the_same_simulation_and_another_does_not() -> None:
    again = simulate(tenants=3, utms_per_tenant=2, rate=4, duration=timedelta(minutes=30), seed=7)
    assert again.lines == SIM.lines and again.expected == SIM.expected and again.registry == SIM.registry
    assert simulate(tenants=3, utms_per_tenant=2, rate=4, duration=timedelta(minutes=30), seed=8).lines != SIM.lines


def test_the_registry_is_a_valid_file_with_an_inactive_tenant_and_utm() -> None:
    assert registry_problems(SIM.registry) == []
    assert [t["active"] for t in SIM.registry["tenants"]].count(False) == 1
    assert [u["active"] for u in SIM.registry["utms"]].count(False) == 1
    assert len(SIM.registry["utms"]) == 3 * 2 + 2


def test_counts_add_up_exactly_through_validation_and_dedup() -> None:
    counts = SIM.expected["counts"]
    _, outcomes, reasons = ingest_like_replay(SIM.lines, SIM.registry)
    assert counts["lines"] == len(SIM.lines)
    for bucket in ("events", "heartbeats", "ignored_heartbeats", "duplicates"):
        assert outcomes[bucket] == counts[bucket], bucket
    assert dict(reasons) == {r: n for r, n in counts["rejections"].items() if n}
    assert set(counts["rejections"]) == {"too_large", "invalid_json", "schema", "bad_timestamp", "unregistered_utm",
                                         "inactive_tenant", "inactive_utm"}
    assert all(n >= 1 for n in counts["rejections"].values())
    assert counts["duplicates"] >= 3
    total = sum(counts[b] for b in ("events", "heartbeats", "ignored_heartbeats", "duplicates"))
    assert total + sum(counts["rejections"].values()) == counts["lines"]


def test_accepted_lines_are_in_time_order_and_rate_is_roughly_kept() -> None:
    events, _, _ = ingest_like_replay(SIM.lines, SIM.registry)
    validator = EventValidator(registry_from_data(SIM.registry))
    first_seen, times = set(), []
    for line in SIM.lines:
        result = validator.check_record(line, parse_time(SIM.expected["end"]))
        if isinstance(result, Heartbeat):
            times.append(result.ts)
        elif isinstance(result, Event) and (result.utm_id, result.event_id) not in first_seen:
            first_seen.add((result.utm_id, result.event_id))
            times.append(result.ts)
    assert len(times) > 5000 and times == sorted(times)
    background = len(events) - sum(len(i.get("event_ids", [])) for i in SIM.expected["incidents"])
    assert 0.8 * 4 * 1800 < background < 1.2 * 4 * 1800


def test_scripted_incidents_are_there_with_their_events() -> None:
    events, _, _ = ingest_like_replay(SIM.lines, SIM.registry)
    by_id = {(e.utm_id, e.event_id): e for e in events}
    kinds = {i["kind"]: i for i in SIM.expected["incidents"]}
    assert {k: kinds[k]["grade"] for k in kinds if k != "utm_outage"} == {
        "infection_chain": 3, "blocked_download_then_scan": 2, "blocked_phishing": 1, "unknown_high_severity": 0,
        "blocked_inbound_exploit": 1}
    chain = [by_id[(kinds["infection_chain"]["utm_id"], i)] for i in kinds["infection_chain"]["event_ids"]]
    assert [(e.type, e.action, e.threat_category, e.direction) for e in chain] == [
        ("av", "detected", "malware", "inbound"), ("ips", "blocked", "c2", "outbound")]
    assert chain[0].dst_mac == chain[1].src_mac == kinds["infection_chain"]["host"]["mac"]
    assert chain[1].ts - chain[0].ts < timedelta(hours=1)
    unknown = by_id[(kinds["unknown_high_severity"]["utm_id"], kinds["unknown_high_severity"]["event_ids"][0])]
    assert unknown.vendor_severity == 5 and unknown.threat_category == "cryptojacking"
    hosts = [(i["utm_id"], i["host"]["mac"]) for i in SIM.expected["incidents"] if "host" in i]
    assert len(set(hosts)) == len(hosts)


def test_background_raises_no_signal() -> None:
    events, _, _ = ingest_like_replay(SIM.lines, SIM.registry)
    scripted = {(i["utm_id"], e) for i in SIM.expected["incidents"] for e in i.get("event_ids", [])}
    for event in events:
        if (event.utm_id, event.event_id) in scripted:
            continue
        assert event.type in ("web", "app") or (event.type == "ips" and (
            (event.threat_category == "scan" and event.direction == "inbound")
            or (event.threat_category == "policy" and (event.vendor_severity or 0) < 4))), event


def test_the_silent_utm_is_silent_for_twenty_minutes() -> None:
    outage = next(i for i in SIM.expected["incidents"] if i["kind"] == "utm_outage")
    last, back = parse_time(outage["last_seen_before"]), parse_time(outage["returns_at"])
    assert back - last >= timedelta(minutes=20)
    events, _, _ = ingest_like_replay(SIM.lines, SIM.registry)
    assert not [e for e in events if e.utm_id == outage["utm_id"] and last < e.ts < back]
    beats = [parse_time(orjson.loads(line)["ts"]) for line in SIM.lines
             if b'"firmware"' in line and orjson.loads(line)["utm_id"] == outage["utm_id"]]
    assert last in beats or any(e.ts == last for e in events if e.utm_id == outage["utm_id"])
    assert not [t for t in beats if last < t < back]


def test_short_runs_have_no_outage_and_bad_arguments_are_refused() -> None:
    short = simulate(tenants=1, utms_per_tenant=1, rate=1, duration=timedelta(minutes=10))
    assert "utm_outage" not in [i["kind"] for i in short.expected["incidents"]]
    with pytest.raises(ValueError):
        simulate(tenants=0)
    with pytest.raises(ValueError):
        simulate(start=datetime(2026, 11, 20))


def test_cli_writes_the_three_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--tenants", "2", "--utms-per-tenant", "1", "--rate", "1", "--duration", "10m",
                 "--start", "2026-11-20T00:00:00+09:00", "--seed", "3", "--out", str(tmp_path)]) == 0
    expected = orjson.loads((tmp_path / "expected.json").read_bytes())
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert len(lines) == expected["counts"]["lines"]
    assert registry_problems(orjson.loads((tmp_path / "registry.json").read_bytes())) == []
    assert expected == simulate(tenants=2, utms_per_tenant=1, rate=1, duration=timedelta(minutes=10),
                                start=datetime(2026, 11, 20, tzinfo=timezone(timedelta(hours=9))), seed=3).expected


@pytest.mark.parametrize("argv", [
    ["simulate"], ["simulate", "--out", "x", "--duration", "5m"], ["simulate", "--out", "x", "--tenants", "0"],
    ["simulate", "--out", "x", "--start", "2026-11-20T00:00:00"], ["simulate", "--out", "x", "--rate", "-1"],
])
def test_cli_refuses_bad_arguments(argv: list[str]) -> None:
    assert main(argv) == 2
