"""What the report is made from: one tenant's month as plain data (pipeline.io.report_gather reads it from the store)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.models import Tenant
from pipeline.report.schedule import Month


@dataclass(frozen=True)
class MonthData:
    """The rows of the views for one tenant and the days of the month it was in service."""

    tenant: Tenant
    month: Month
    tz: ZoneInfo
    days: tuple[date, ...]
    start: datetime
    """The first instant counted: local midnight of the first day in service (UTC)."""
    end: datetime
    """The end of the last day counted, or the time of gathering if that is earlier (UTC)."""
    as_of: datetime
    detections: list[dict[str, Any]]
    peers: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    utms: list[dict[str, Any]]
    status_before: dict[str, str]
    status_changes: list[dict[str, Any]]
    categories: list[dict[str, Any]]
