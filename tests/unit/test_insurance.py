from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from pipeline.insurance import cover_start, insurance_eligible_until, insurance_period
from pipeline.models import Tenant

TOKYO = ZoneInfo("Asia/Tokyo")


def tenant(start: date | None, end: date | None = None, active: bool = True) -> Tenant:
    return Tenant("t1", "T", ("a@example.jp",), service_start=start, contract_end=end, active=active)


def local(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), TOKYO).astimezone(timezone.utc)


@pytest.mark.parametrize(("start", "cover"), [
    (date(2024, 12, 15), date(2025, 1, 1)),
    (date(2025, 1, 31), date(2025, 2, 1)),
    (date(2025, 3, 1), date(2025, 4, 1)),
    (date(2024, 2, 29), date(2024, 3, 1)),
    (date(2025, 12, 31), date(2026, 1, 1)),
])
def test_cover_starts_on_the_first_of_the_next_month(start: date, cover: date) -> None:
    assert cover_start(start) == cover
    t = tenant(start)
    assert insurance_eligible_until(t, local(cover - timedelta(days=1)), TOKYO) is None
    assert insurance_eligible_until(t, local(cover), TOKYO) == cover + timedelta(days=30)


def test_day_is_the_local_day_of_the_moment() -> None:
    t = tenant(date(2024, 12, 15))
    # 2024-12-31 15:00 UTC is already 2025-01-01 00:00 in Tokyo: inside the cover.
    at = datetime(2024, 12, 31, 15, 0, tzinfo=timezone.utc)
    assert insurance_eligible_until(t, at, TOKYO) == date(2025, 1, 31)
    assert insurance_eligible_until(t, at - timedelta(seconds=1), TOKYO) is None
    assert insurance_eligible_until(t, at, ZoneInfo("UTC")) is None


def test_thirty_days_across_month_year_and_leap_day() -> None:
    t = tenant(date(2023, 1, 10))
    assert insurance_eligible_until(t, local(date(2024, 2, 10)), TOKYO) == date(2024, 3, 11)
    assert insurance_eligible_until(t, local(date(2024, 2, 29)), TOKYO) == date(2024, 3, 30)
    assert insurance_eligible_until(t, local(date(2024, 12, 20)), TOKYO) == date(2025, 1, 19)


def test_contract_end_is_the_last_covered_day() -> None:
    t = tenant(date(2024, 12, 15), end=date(2025, 6, 30))
    assert insurance_eligible_until(t, local(date(2025, 6, 30), 23), TOKYO) == date(2025, 7, 30)
    assert insurance_eligible_until(t, local(date(2025, 7, 1), 0), TOKYO) is None


def test_contract_ending_before_cover_starts_gives_no_cover() -> None:
    t = tenant(date(2025, 1, 15), end=date(2025, 1, 31))
    assert insurance_eligible_until(t, local(date(2025, 1, 20)), TOKYO) is None
    assert insurance_eligible_until(t, local(date(2025, 2, 1)), TOKYO) is None


def test_without_service_start_or_inactive_no_cover() -> None:
    assert insurance_eligible_until(tenant(None), local(date(2025, 5, 1)), TOKYO) is None
    assert insurance_eligible_until(tenant(date(2024, 1, 1), active=False), local(date(2025, 5, 1)), TOKYO) is None


def test_yearly_periods_renew_and_are_cut_by_contract_end() -> None:
    t = tenant(date(2023, 1, 31), end=date(2025, 8, 15))
    assert insurance_period(t, date(2024, 1, 31)) == (date(2023, 2, 1), date(2024, 1, 31))
    assert insurance_period(t, date(2024, 2, 1)) == (date(2024, 2, 1), date(2025, 1, 31))
    assert insurance_period(t, date(2024, 2, 29)) == (date(2024, 2, 1), date(2025, 1, 31))
    assert insurance_period(t, date(2025, 8, 15)) == (date(2025, 2, 1), date(2025, 8, 15))
    assert insurance_period(t, date(2025, 8, 16)) is None
    assert insurance_period(tenant(date(2024, 12, 15)), date(2031, 12, 31)) == (date(2031, 1, 1), date(2031, 12, 31))
