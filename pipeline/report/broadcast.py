"""Which monthly reports a worker should send now (pure): the month whose report is due, and the
tenants that get one."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from pipeline.config import ReportAt
from pipeline.models import Tenant
from pipeline.report.schedule import Month, last_due, service_days

CATCH_UP = timedelta(days=3)
"""A worker that was down at the due time still sends the month's reports this long after it."""


def month_due(now: datetime, at: ReportAt, tz: ZoneInfo, catch_up: timedelta = CATCH_UP) -> Month | None:
    """The month whose reports go now: its due time has come, not longer than `catch_up` ago."""
    month, due = last_due(now, at, tz)
    return month if now - due < catch_up else None


def report_tenants(tenants: Iterable[Tenant], month: Month, now: datetime, tz: ZoneInfo) -> list[Tenant]:
    """The active tenants still in service today that had days of service in `month`, by id."""
    today = now.astimezone(tz).date()
    return sorted((t for t in tenants if t.is_serviced_on(today) and service_days(t, month)),
                  key=lambda t: t.tenant_id)
