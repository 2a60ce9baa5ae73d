"""Checking a notice file and turning it into the next version of a notice, naming every problem."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Collection

import orjson

from pipeline.models import parse_time
from pipeline.schema_problems import schema_problems as every_problem
from pipeline.notices.model import Audience, ServiceNotice
from pipeline.notices.windows import MAX_WINDOW

PLANNED_NOTICE = timedelta(days=30)
"""A planned maintenance is announced at least this long before it starts (unless --short-notice)."""


class NoticeError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def schema_problems(data: Any, schema: str = "notice-file.json") -> list[str]:
    return every_problem(data, schema, "notice")


def _time(data: dict[str, Any], name: str, problems: list[str]) -> datetime | None:
    value = data.get(name)
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value.upper())
    except ValueError:
        problems.append(f"{name}: {value!r} is not a real time with an offset")
        return None


def notice_problems(data: Any, now: datetime, *, short_notice: bool = False,
                    previous: ServiceNotice | None = None, known_tenants: Collection[str] | None = None) -> list[str]:
    """Every problem of a parsed notice file, published at `now` after `previous` (its current
    version on the topic, if any); empty when it may be published. `known_tenants`: the tenant ids
    the registry has, when the caller read it (every other tenant of the audience is named)."""
    problems = schema_problems(data)
    if not isinstance(data, dict):
        return problems
    kind, level = data.get("kind"), data.get("level")
    starts, ends = _time(data, "starts_at", problems), _time(data, "ends_at", problems)
    if kind == "fault" and level is None:
        problems.append("level: a fault needs its level (A: the main function fails, B: degraded, Z: not reported)")
    if kind != "fault" and level is not None:
        problems.append(f"level: only a fault has a level, not a {kind} notice")
    if kind in ("maintenance-planned", "maintenance-emergency"):
        if data.get("starts_at") is None:
            problems.append(f"starts_at: a {kind} notice needs the start of its window")
        if data.get("ends_at") is None:
            problems.append(f"ends_at: a {kind} notice needs the end of its window")
    if data.get("ends_at") is not None and data.get("starts_at") is None:
        problems.append("starts_at: a window with an end needs a start")
    if starts and ends and ends <= starts:
        problems.append(f"ends_at: {data['ends_at']} is not after starts_at {data['starts_at']}")
    if kind in ("maintenance-planned", "maintenance-emergency") and starts and ends and ends - starts > MAX_WINDOW:
        problems.append(
            f"ends_at: a maintenance window lasts at most 72 hours; {data['starts_at']} to {data['ends_at']} is "
            f"{(ends - starts).total_seconds() / 3600:.1f} hours (announce a longer stop as successive notices)")
    audience = data.get("audience")
    listed = audience.get("tenants") if isinstance(audience, dict) else None
    if known_tenants is not None and isinstance(listed, list):
        unknown = sorted({t for t in listed if isinstance(t, str) and t not in known_tenants})
        if unknown:
            problems.append(f"audience.tenants: not in the registry: {', '.join(unknown)}")
    if ends and ends <= now and kind != "fault":
        problems.append(f"ends_at: {data['ends_at']} has passed already")
    if (kind == "maintenance-planned" and starts and starts - now < PLANNED_NOTICE and not short_notice
            and not _keeps_announcement(starts, previous)):
        problems.append(
            f"starts_at: a planned maintenance is announced at least 30 days ahead; {data['starts_at']} is "
            f"{_days(starts - now)} away (publish with --short-notice to announce it anyway, and the notice says so)")
    if previous is not None and previous.kind != kind:
        problems.append(f"kind: notice {previous.notice_id!r} is a {previous.kind} notice; publish a new notice id for a {kind}")
    if previous is not None and previous.cancelled:
        problems.append(f"notice_id: notice {previous.notice_id!r} was cancelled; publish a new notice id")
    return problems


def _keeps_announcement(starts: datetime, previous: ServiceNotice | None) -> bool:
    """An update that does not bring the start earlier keeps the announcement already made."""
    return (previous is not None and not previous.cancelled and previous.starts_at is not None
            and starts >= previous.starts_at and previous.kind == "maintenance-planned")


def _days(span: timedelta) -> str:
    if span <= timedelta(0):
        return "in the past, not"
    return f"{span.total_seconds() / 86400:.1f} days"


def notice_from_file_data(data: dict[str, Any], now: datetime, *, short_notice: bool = False,
                          previous: ServiceNotice | None = None,
                          known_tenants: Collection[str] | None = None) -> ServiceNotice:
    """The next version of the notice (1, or one more than `previous`); raises NoticeError naming every problem."""
    problems = notice_problems(data, now, short_notice=short_notice, previous=previous, known_tenants=known_tenants)
    if problems:
        raise NoticeError(problems)
    starts = _time(data, "starts_at", [])
    short = False
    if data["kind"] == "maintenance-planned" and starts is not None:
        if _keeps_announcement(starts, previous):
            short = previous.short_notice  # type: ignore[union-attr]
        else:
            short = starts - now < PLANNED_NOTICE
    return ServiceNotice(
        notice_id=data["notice_id"], kind=data["kind"], audience=Audience.from_record(data["audience"]),
        title=dict(data["title"]), body=dict(data["body"]), version=previous.version + 1 if previous else 1,
        level=data.get("level"), starts_at=starts, ends_at=_time(data, "ends_at", []), cancelled=False,
        short_notice=short, mail=data.get("mail"), published_at=now,
    )


def cancellation_of(previous: ServiceNotice | None, notice_id: str, now: datetime) -> ServiceNotice:
    if previous is None:
        raise NoticeError([f"notice {notice_id!r} is not on the notices topic"])
    if previous.cancelled:
        raise NoticeError([f"notice {notice_id!r} is cancelled already (version {previous.version})"])
    return previous.next_version(cancelled=True, published_at=now)


def load_notice_file(path: str | Path) -> Any:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise NoticeError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NoticeError([f"not JSON: {exc}"]) from None


def notice_from_wire(value: bytes) -> ServiceNotice:
    """A record of the notices topic; raises NoticeError when it does not follow schemas/notice.json."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise NoticeError([f"not JSON: {exc}"]) from None
    problems = schema_problems(data, "notice.json")
    if problems:
        raise NoticeError(problems)
    return ServiceNotice.from_record({**data, "starts_at": (data.get("starts_at") or "").upper() or None,
                                      "ends_at": (data.get("ends_at") or "").upper() or None})
