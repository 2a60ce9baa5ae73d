from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from pipeline.clock import ManualClock, ShiftedClock
from pipeline.config import ReportAt
from pipeline.models import Tenant
from pipeline.report.broadcast import CATCH_UP, month_due, report_tenants
from pipeline.report.schedule import Month

TOKYO = ZoneInfo("Asia/Tokyo")
DUE = datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)   # 2026-12-01 08:00 JST: November's reports


def test_the_month_is_due_from_its_time_for_the_catch_up_window() -> None:
    at = ReportAt(1, time(8, 0))
    assert month_due(DUE - timedelta(seconds=1), at, TOKYO) is None     # October's window closed long ago
    assert month_due(DUE, at, TOKYO) == Month(2026, 11)
    assert month_due(DUE + CATCH_UP - timedelta(seconds=1), at, TOKYO) == Month(2026, 11)
    assert month_due(DUE + CATCH_UP, at, TOKYO) is None


def test_active_tenants_in_service_that_month_get_a_report() -> None:
    base = Tenant("t1", "One", ("a@one.example",), service_start=date(2025, 1, 1))
    tenants = [
        replace(base, tenant_id="t3"),
        base,
        replace(base, tenant_id="t2", active=False),                               # inactive
        replace(base, tenant_id="t4", service_start=date(2026, 11, 20)),           # mid-month: its days
        replace(base, tenant_id="t5", service_start=date(2026, 12, 1)),            # starts after the month
        replace(base, tenant_id="t6", contract_end=date(2026, 11, 30)),            # ended: no mail after it
        replace(base, tenant_id="t7", contract_end=date(2026, 12, 31)),
    ]
    chosen = report_tenants(tenants, Month(2026, 11), DUE, TOKYO)
    assert [t.tenant_id for t in chosen] == ["t1", "t3", "t4", "t7"]


def test_a_shifted_clock_starts_where_told_and_runs_at_wall_speed() -> None:
    wall = ManualClock(datetime(2030, 1, 1, tzinfo=timezone.utc))
    clock = ShiftedClock(DUE - timedelta(seconds=30), wall)
    assert clock.now() == DUE - timedelta(seconds=30)
    wall.advance(timedelta(seconds=30))
    assert clock.now() == DUE
