from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from pipeline.config import ConfigError, ReportAt, load_settings
from pipeline.report.schedule import Month, due_at, last_due, next_due

TOKYO = ZoneInfo("Asia/Tokyo")
UTC = timezone.utc
DEFAULT = ReportAt()


def test_report_at_default_is_the_1st_at_0800() -> None:
    settings = load_settings({})
    assert settings.report_at == ReportAt(1, time(8, 0))
    assert str(settings.report_at) == "1 08:00"
    assert load_settings({"MIMAMORI_REPORT_AT": "3 17:45"}).report_at == ReportAt(3, time(17, 45))
    assert load_settings({"MIMAMORI_REPORT_AT": "28 00:00"}).report_at == ReportAt(28, time(0, 0))


@pytest.mark.parametrize("text", ["", "08:00", "1", "0 08:00", "29 08:00", "31 08:00", "1 8:00", "1 24:00",
                                  "1 08:60", "x 08:00", "1st 08:00", "1 08:00 JST"])
def test_a_bad_report_at_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="^MIMAMORI_REPORT_AT: "):
        load_settings({"MIMAMORI_REPORT_AT": text})


@pytest.mark.parametrize("text", ["0", "-1", "abc", ""])
def test_a_bad_report_rate_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="^MIMAMORI_REPORT_MAIL_RATE: "):
        load_settings({"MIMAMORI_REPORT_MAIL_RATE": text})


def test_months() -> None:
    assert Month.parse("2026-11") == Month(2026, 11)
    assert str(Month(2026, 1)) == "2026-01"
    assert Month(2026, 12).next() == Month(2027, 1)
    assert Month(2026, 1).previous() == Month(2025, 12)
    assert Month(2028, 2).last_day.day == 29 and len(Month(2026, 2).days()) == 28
    for bad in ("2026-13", "2026-00", "26-11", "2026/11", "2026-1"):
        with pytest.raises(ValueError):
            Month.parse(bad)


def test_due_at_is_local_time_on_the_given_day_of_the_next_month() -> None:
    # 2026-12-01 08:00 in Tokyo is 2026-11-30 23:00 UTC
    assert due_at(Month(2026, 11), DEFAULT, TOKYO) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert due_at(Month(2026, 12), DEFAULT, TOKYO) == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert due_at(Month(2026, 11), ReportAt(3, time(0, 0)), ZoneInfo("UTC")) == datetime(2026, 12, 3, tzinfo=UTC)


def test_the_report_is_due_to_the_second() -> None:
    due = datetime(2026, 11, 30, 23, 0, 0, tzinfo=UTC)
    before = due - timedelta(seconds=1)
    assert last_due(before, DEFAULT, TOKYO) == (Month(2026, 10), datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    assert next_due(before, DEFAULT, TOKYO) == (Month(2026, 11), due)
    assert last_due(due, DEFAULT, TOKYO) == (Month(2026, 11), due)
    assert next_due(due, DEFAULT, TOKYO) == (Month(2026, 12), datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    assert last_due(due + timedelta(days=20), DEFAULT, TOKYO) == (Month(2026, 11), due)


def test_a_later_day_of_the_month_and_a_zone_with_summer_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    at = ReportAt(15, time(9, 30))
    # 2026-04-15 09:30 CEST (UTC+2) for March; 2026-11-15 09:30 CET (UTC+1) for October
    assert next_due(datetime(2026, 4, 1, tzinfo=UTC), at, berlin) == (Month(2026, 3), datetime(2026, 4, 15, 7, 30, tzinfo=UTC))
    assert next_due(datetime(2026, 11, 15, 8, 29, 59, tzinfo=UTC), at, berlin) == (
        Month(2026, 10), datetime(2026, 11, 15, 8, 30, tzinfo=UTC))
    assert last_due(datetime(2026, 11, 15, 8, 30, tzinfo=UTC), at, berlin)[0] == Month(2026, 10)
    assert last_due(datetime(2026, 11, 14, tzinfo=UTC), at, berlin) == (
        Month(2026, 9), datetime(2026, 10, 15, 7, 30, tzinfo=UTC))
