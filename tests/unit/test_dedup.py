from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import orjson

from pipeline.dedup import RECENT_MAX, Deduper, dedup_key, id_hash

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


def test_drained_pairs_restore_the_same_answers_after_a_restart() -> None:
    dedup = Deduper(DAY)
    dedup.is_duplicate("u1", "e1", T0)
    dedup.is_duplicate("u1", "e1", T0 + timedelta(hours=1))  # a dropped copy is not remembered again
    dedup.is_duplicate("u2", "e2", T0 + timedelta(hours=2))
    saved = dedup.drain()
    assert saved == [("u1", id_hash("e1"), T0.timestamp()), ("u2", id_hash("e2"), (T0 + timedelta(hours=2)).timestamp())]
    assert dedup.drain() == []
    restarted = Deduper(DAY)
    for pair in orjson.loads(orjson.dumps(saved)):  # as the state log carries them
        restarted.load(*pair)
    restarted.rebuild_index(T0 + timedelta(hours=3))
    assert restarted.is_duplicate("u1", "e1", T0 + DAY - timedelta(seconds=1)) is True
    assert restarted.is_duplicate("u1", "e1", T0 + DAY) is False
    assert restarted.is_duplicate("u2", "e2", T0 + timedelta(hours=3)) is True
    assert restarted.is_duplicate("u2", "e1", T0 + timedelta(hours=3)) is False


def test_pairs_of_the_older_log_shape_are_read() -> None:
    dedup = Deduper(DAY)
    dedup.load_key(dedup_key("u1", "e1"), T0.timestamp())
    dedup.load_key(dedup_key("u1", "e1"), (T0 + timedelta(hours=5)).timestamp())  # the latest counts
    dedup.rebuild_index()
    assert dedup.remembers("u1", "e1", T0 + DAY + timedelta(hours=4)) is True
    assert dedup.remembers("u1", "e1", T0 + DAY + timedelta(hours=5)) is False


def test_compacted_pairs_keep_their_answers() -> None:
    """Past RECENT_MAX pairs a UTM's dict becomes sorted runs; answers and expiry stay the same."""
    dedup = Deduper(timedelta(hours=1))
    count = 3 * RECENT_MAX + 17
    for n in range(count):
        assert dedup.is_duplicate("u1", f"e{n}", T0 + timedelta(seconds=n / 10)) is False
    assert len(dedup) == count and dedup.nbytes() >= 16 * 3 * RECENT_MAX
    later = T0 + timedelta(seconds=count / 10)
    assert all(dedup.is_duplicate("u1", f"e{n}", later) for n in range(0, count, 7))
    assert dedup.is_duplicate("u1", "e0", T0 + timedelta(hours=1)) is False  # its window passed: taken again
    assert dedup.is_duplicate("u1", "e0", T0 + timedelta(hours=1, seconds=1)) is True
    assert dedup.expire(T0 + timedelta(hours=1, seconds=100)) == 1001  # e0..e1000 taken up to 100 s after T0
    assert len(dedup) == count - 1001 + 1  # e0 taken again stays
    assert dedup.remembers("u1", "e1", T0 + timedelta(hours=1, seconds=100)) is False
    assert dedup.remembers("u1", "e1001", T0 + timedelta(hours=1, seconds=100)) is True


def test_one_utm_flood_is_bounded_and_never_drops_a_new_event() -> None:
    dedup = Deduper(DAY, max_per_utm=10_000)
    for n in range(50_000):
        assert dedup.is_duplicate("flood", f"e{n}", T0 + timedelta(seconds=n)) is False  # every new id taken
    dedup.is_duplicate("quiet", "q", T0)
    dedup.expire(T0 + timedelta(seconds=50_000))
    flood = len(dedup) - 1
    assert 10_000 <= flood < 10_000 + RECENT_MAX  # the bound, and the pairs taken since the last compaction
    assert dedup.evicted == 50_000 - flood
    moment = T0 + timedelta(seconds=50_001)
    assert dedup.is_duplicate("flood", "e49999", moment) is True  # the newest are kept
    assert dedup.is_duplicate("flood", "e0", moment) is False  # the oldest were forgotten early: taken again
    assert dedup.is_duplicate("quiet", "q", moment) is True  # another UTM loses nothing


def test_memory_per_pair() -> None:
    dedup = Deduper(DAY)
    for n in range(100_000):
        dedup.is_duplicate(f"u{n % 100}", f"evt-{n:012d}", T0 + timedelta(seconds=n))
    dedup.expire(T0 + timedelta(seconds=100_000))
    assert dedup.nbytes() / len(dedup) == 16


def test_keys_do_not_collide_across_separators() -> None:
    dedup = Deduper(DAY)
    dedup.is_duplicate("u1", "a|b", T0)
    assert dedup.is_duplicate("u1|a", "b", T0) is False


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Deduper(timedelta(0))
