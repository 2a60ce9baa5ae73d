from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.dedup import Deduper, dedup_key

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(hours=24)


def test_first_sight_is_new_and_second_within_window_is_duplicate() -> None:
    dedup = Deduper(DAY)
    assert dedup.is_duplicate("u1", "e1", T0) is False
    assert dedup.is_duplicate("u1", "e1", T0 + DAY - timedelta(seconds=1)) is True
    assert dedup.is_duplicate("u2", "e1", T0) is False
    assert dedup.is_duplicate("u1", "e2", T0) is False
    assert len(dedup) == 3


def test_a_pair_is_new_again_once_the_window_passed_even_before_expire() -> None:
    dedup = Deduper(DAY)
    dedup.is_duplicate("u1", "e1", T0)
    assert dedup.is_duplicate("u1", "e1", T0 + DAY) is False
    assert dedup.is_duplicate("u1", "e1", T0 + DAY + timedelta(minutes=1)) is True


def test_the_window_counts_from_the_first_sight_not_the_latest() -> None:
    dedup = Deduper(timedelta(hours=1))
    dedup.is_duplicate("u1", "e1", T0)
    assert dedup.is_duplicate("u1", "e1", T0 + timedelta(minutes=50)) is True
    assert dedup.is_duplicate("u1", "e1", T0 + timedelta(minutes=61)) is False


def test_expire_drops_only_old_entries_and_counts_them() -> None:
    dedup = Deduper(DAY)
    for minute in range(0, 600, 10):
        dedup.is_duplicate("u1", f"e{minute}", T0 + timedelta(minutes=minute))
    assert dedup.expire(T0 + DAY + timedelta(minutes=95)) == 10  # minutes 0..90
    assert len(dedup) == 50
    assert dedup.expire(T0 + DAY + timedelta(minutes=95)) == 0
    assert dedup.is_duplicate("u1", "e100", T0 + DAY + timedelta(minutes=95)) is True
    assert dedup.is_duplicate("u1", "e0", T0 + DAY + timedelta(minutes=95)) is False
    assert dedup.expire(T0 + 3 * DAY) == 51
    assert len(dedup) == 0


def test_re_recorded_pair_survives_expiry_of_its_first_sight() -> None:
    dedup = Deduper(timedelta(hours=1))
    dedup.is_duplicate("u1", "e1", T0)
    dedup.is_duplicate("u1", "e1", T0 + timedelta(hours=2))  # new again, recorded anew
    assert dedup.expire(T0 + timedelta(hours=2, minutes=30)) == 0
    assert dedup.is_duplicate("u1", "e1", T0 + timedelta(hours=2, minutes=30)) is True


def test_injected_store_is_used_and_indexed_after_restart() -> None:
    store: dict[str, float] = {}
    Deduper(DAY, store).is_duplicate("u1", "e1", T0)
    assert store == {dedup_key("u1", "e1"): T0.timestamp()}
    restarted = Deduper(DAY, store)
    assert restarted.is_duplicate("u1", "e1", T0 + timedelta(hours=1)) is True
    assert restarted.expire(T0 + DAY) == 1
    assert store == {}


def test_keys_do_not_collide_across_separators() -> None:
    dedup = Deduper(DAY)
    dedup.is_duplicate("u1", "a|b", T0)
    assert dedup.is_duplicate("u1|a", "b", T0) is False


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Deduper(timedelta(0))
