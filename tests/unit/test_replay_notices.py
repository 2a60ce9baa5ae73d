"""Replay honours maintenance windows given as notice lines (a JSON object with `notice_id`)."""
from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from pipeline.notices.model import Audience, ServiceNotice
from tests.unit.test_replay import beat, jst, mails, of, registry, replay, utc

UTMS = [f"u{i:02d}" for i in range(16)]


def notice_line(start: datetime, end: datetime, **changes: object) -> bytes:
    notice = ServiceNotice("mnt-1", "maintenance-emergency", Audience(all=True), {"ja": "緊急メンテナンス"},
                           {"ja": "停止します。"}, starts_at=start, ends_at=end, published_at=start)
    return orjson.dumps({**notice.to_record(), **changes})


def beats(utms: list[str], start: datetime, end: datetime) -> list[tuple[datetime, bytes]]:
    out = []
    at = start
    while at < end:
        out += [(at, beat(u, at)) for u in utms]
        at += timedelta(minutes=1)
    return out


def test_15_utms_silent_in_a_window_get_no_utm_down_and_one_silent_past_the_grace_gets_exactly_one() -> None:
    start, end = jst(10, 0), jst(12, 0)
    timed = beats(UTMS, jst(9, 0), jst(10, 30)) + beats(UTMS[:15], jst(12, 5), jst(14, 0))
    lines = [notice_line(start, end)] + [line for _, line in sorted(timed, key=lambda t: t[0])]
    records = replay(lines, registry(16))
    assert of(records, "notice") == [{"record": "notice", "notice_id": "mnt-1", "version": 1,
                                      "kind": "maintenance-emergency", "starts_at": utc(start), "ends_at": utc(end),
                                      "cancelled": False, "line": 1}]
    assert mails(records) == [("utm-down", "u15", utc(jst(12, 10)))]  # the window's end + one timeout
    assert not of(records, "incident")
    offline = [r["utm_id"] for r in of(records, "utm_status") if r["status"] == "offline"]
    assert offline == ["u15"]


def test_without_the_notice_the_same_silence_is_judged_and_a_cancelled_notice_declares_no_window() -> None:
    timed = beats(UTMS[:1], jst(9, 0), jst(10, 30)) + beats(UTMS[:1], jst(12, 5), jst(12, 30))
    plain = [line for _, line in timed]
    assert [m[0] for m in mails(replay(plain, registry(1)))] == ["utm-down", "utm-recovered"]
    windowed = [notice_line(jst(10, 0), jst(12, 0))] + plain
    assert mails(replay(windowed, registry(1))) == []
    cancelled = [notice_line(jst(10, 0), jst(12, 0)), notice_line(jst(10, 0), jst(12, 0), version=2, cancelled=True)]
    assert [m[0] for m in mails(replay(cancelled + plain, registry(1)))] == ["utm-down", "utm-recovered"]


def test_a_bad_notice_line_is_rejected_and_changes_nothing() -> None:
    bad = orjson.dumps({"notice_id": "x", "kind": "maintenance-planned"})
    records = replay([bad] + [line for _, line in beats(UTMS[:1], jst(9, 0), jst(9, 5))], registry(1))
    [rejection] = of(records, "rejection")
    assert rejection["reason"] == "schema" and rejection["detail"].startswith("notice:") and rejection["line"] == 1
