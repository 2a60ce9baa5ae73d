"""Cyber-insurance cover of a tenant (CONTRACT.md, "Insurance")."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.models import Tenant

CLAIM_DAYS = 30


def cover_start(service_start: date) -> date:
    """The 1st of the month after the service started."""
    if service_start.month == 12:
        return date(service_start.year + 1, 1, 1)
    return date(service_start.year, service_start.month + 1, 1)


def insurance_period(tenant: Tenant, day: date) -> tuple[date, date] | None:
    """The yearly period (first day, last day, both inclusive) covering `day`, or None."""
    if not tenant.active or tenant.service_start is None:
        return None
    start = cover_start(tenant.service_start)
    if day < start or (tenant.contract_end is not None and day > tenant.contract_end):
        return None
    years = day.year - start.year - (1 if (day.month, day.day) < (start.month, start.day) else 0)
    first = start.replace(year=start.year + years)
    last = start.replace(year=start.year + years + 1) - timedelta(days=1)
    if tenant.contract_end is not None:
        last = min(last, tenant.contract_end)
    return first, last


def insurance_eligible_until(tenant: Tenant, at: datetime, tz: ZoneInfo) -> date | None:
    """Last day a claim may be made for a ★★★ alert raised at `at`, or None outside the cover."""
    day = at.astimezone(tz).date()
    if insurance_period(tenant, day) is None:
        return None
    return day + timedelta(days=CLAIM_DAYS)
