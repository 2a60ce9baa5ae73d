"""Which month is reported, and when its report is due (MIMAMORI_REPORT_AT, local time)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from pipeline.config import ReportAt
from pipeline.models import Tenant


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1970 <= self.year <= 2148:
            raise ValueError(f"not a month: {self.year}-{self.month}")

    @classmethod
    def parse(cls, text: str) -> "Month":
        """`YYYY-MM`; anything else raises ValueError."""
        match = re.match(r"^(\d{4})-(\d{2})$", text.strip())
        if not match:
            raise ValueError(f"expected a month YYYY-MM, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> "Month":
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return self.next().first_day - timedelta(days=1)

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.last_day.day)]

    def next(self) -> "Month":
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> "Month":
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)


def local_instant(day: date, at: ReportAt | None, tz: ZoneInfo) -> datetime:
    """The UTC instant of `day` at the report's local time (midnight when `at` is None)."""
    clock = at.at if at else datetime.min.time()
    return datetime.combine(day, clock, tzinfo=tz).astimezone(timezone.utc)


def due_at(month: Month, at: ReportAt, tz: ZoneInfo) -> datetime:
    """When the report of `month` is due: day `at.day` of the following month, at `at.at` local time."""
    following = month.next()
    return local_instant(date(following.year, following.month, at.day), at, tz)


def last_due(now: datetime, at: ReportAt, tz: ZoneInfo) -> tuple[Month, datetime]:
    """The latest report that is due at `now` (due at or before it): its month and due time."""
    month = Month.of(now.astimezone(tz).date()).previous()
    while (when := due_at(month, at, tz)) > now:
        month = month.previous()
    return month, when


def next_due(now: datetime, at: ReportAt, tz: ZoneInfo) -> tuple[Month, datetime]:
    """The first report due after `now` (strictly): its month and due time."""
    month, _ = last_due(now, at, tz)
    month = month.next()
    return month, due_at(month, at, tz)


def service_days(tenant: Tenant, month: Month) -> tuple[date, ...]:
    """The days of `month` in the tenant's service: from its service start to its contract end."""
    return tuple(d for d in month.days()
                 if (tenant.service_start is None or d >= tenant.service_start)
                 and (tenant.contract_end is None or d <= tenant.contract_end))
