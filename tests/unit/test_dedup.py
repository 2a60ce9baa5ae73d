from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import orjson

from pipeline.dedup import RECENT_MAX, Deduper, dedup_key, encode_pairs, id_hash

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


def test_expire_forgets_whole_hours_once_their_newest_pair_is_a_window_old() -> None:
    dedup = Deduper(DAY)
    for minute in range(0, 600, 10):  # 12:00 .. 21:50, an upkeep every 10 minutes as a driver does
        dedup.is_duplicate("u1", f"e{minute}", T0 + timedelta(minutes=minute))
        dedup.expire(T0 + timedelta(minutes=minute))
    # 13:35 the next day: the first slot (12:00 .. 13:00, the pair of 13:00 taken before the upkeep
    # that sealed it) is a window old
    assert dedup.expire(T0 + DAY + timedelta(minutes=95)) == 7
    assert len(dedup) == 53
    assert dedup.expire(T0 + DAY + timedelta(minutes=95)) == 0
    assert dedup.is_duplicate("u1", "e100", T0 + DAY + timedelta(minutes=95)) is True
    assert dedup.is_duplicate("u1", "e60", T0 + DAY + timedelta(minutes=95)) is False  # 13:00: its window passed
    assert dedup.is_duplicate("u1", "e90", T0 + DAY + timedelta(minutes=95)) is False  # 13:30: passed too, by its record
    assert dedup.expire(T0 + 3 * DAY) == 55
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


def test_sealed_and_open_slots_keep_their_answers() -> None:
    """Past RECENT_MAX pairs the open slot's dict goes to its file and sorted runs; an hour over is
    sealed (file in fingerprint order, 2-byte fingerprints on the heap); answers stay exact."""
    dedup = Deduper(timedelta(hours=1))
    start = T0 + timedelta(minutes=50)  # the pairs straddle 13:00
    count = 3 * RECENT_MAX + 17
    for n in range(count):
        at = start + timedelta(seconds=n / 10)
        assert dedup.is_duplicate("u1", f"e{n}", at) is False
        if n % 600 == 0:
            dedup.expire(at)
    later = start + timedelta(seconds=count / 10)
    dedup.expire(later)
    assert len(dedup) == count and dedup.file_bytes() >= 20 * (count - RECENT_MAX)
    assert all(dedup.is_duplicate("u1", f"e{n}", later) for n in range(0, count, 7))
    assert not any(dedup.remembers("u1", f"x{n}", later) for n in range(0, count, 7))
    assert not any(dedup.remembers("u2", f"e{n}", later) for n in range(0, count, 7))
    assert dedup.is_duplicate("u1", "e0", start + timedelta(hours=1)) is False  # its window passed: taken again
    assert dedup.is_duplicate("u1", "e0", start + timedelta(hours=1, seconds=1)) is True
    assert dedup.remembers("u1", "e1", start + timedelta(hours=1, seconds=100)) is False  # exact, by its record
    assert dedup.remembers("u1", "e1001", start + timedelta(hours=1, seconds=100)) is True


def test_one_utm_flood_is_bounded_and_never_drops_a_new_event() -> None:
    dedup = Deduper(DAY, max_per_utm=10_000)
    dedup.is_duplicate("quiet", "q", T0)
    for n in range(50_000):  # one id a second for ~14 hours, an upkeep every 5 minutes
        at = T0 + timedelta(seconds=n)
        assert dedup.is_duplicate("flood", f"e{n}", at) is False  # every new id taken
        if n % 300 == 0:
            dedup.expire(at)
    dedup.expire(T0 + timedelta(seconds=50_000))
    flood = len(dedup) - 1
    assert 10_000 - 3600 <= flood <= 10_000  # the bound: whole oldest hours forgotten
    assert dedup.evicted == 50_000 - flood
    moment = T0 + timedelta(seconds=50_001)
    assert dedup.is_duplicate("flood", "e49999", moment) is True  # the newest are kept
    assert dedup.is_duplicate("flood", "e0", moment) is False  # the oldest were forgotten early: taken again
    assert dedup.is_duplicate("quiet", "q", moment) is True  # another UTM loses nothing
    assert dedup.file_bytes() <= 20 * (2 * 10_000 + 3600 + 2)  # forgotten hours rewritten away


def test_a_flood_within_the_open_hour_is_taken_and_not_remembered_past_the_bound() -> None:
    dedup = Deduper(DAY, max_per_utm=100)
    assert not any(dedup.is_duplicate("flood", f"e{n}", T0 + timedelta(seconds=n / 100)) for n in range(300))
    assert len(dedup) == 100 and dedup.evicted == 200
    assert dedup.remembers("flood", "e99", T0 + timedelta(seconds=4)) is True
    assert dedup.remembers("flood", "e100", T0 + timedelta(seconds=4)) is False


def test_memory_per_pair() -> None:
    dedup = Deduper(DAY)
    for n in range(200_000):
        at = T0 + timedelta(seconds=n / 20)
        dedup.is_duplicate(f"u{n % 100}", f"evt-{n:012d}", at)
        if n % 6000 == 0:
            dedup.expire(at)
    dedup.expire(T0 + timedelta(hours=3))  # the last hour sealed too
    assert len(dedup) == 200_000
    assert dedup.nbytes() / len(dedup) < 2.6  # 2 bytes of fingerprint, its bins and the per-UTM counts
    assert dedup.file_bytes() / len(dedup) == 20


def test_blocks_restore_the_same_answers_and_old_json_values_are_read() -> None:
    dedup = Deduper(DAY)
    for n in range(5000):
        dedup.is_duplicate(f"u{n % 7}", f"e{n}", T0 + timedelta(seconds=n))
    block = encode_pairs(dedup.drain())
    assert len(block) < 20 * 5000 + 100
    restarted = Deduper(DAY)
    restarted.load_value(block, horizon=(T0 + timedelta(seconds=99)).timestamp())  # the first 100 past the window
    restarted.load_value(orjson.dumps([["old", id_hash("o1"), T0.timestamp()], ["old\x1fo2", T0.timestamp()]]))
    restarted.rebuild_index(T0 + timedelta(seconds=5000))
    later = T0 + timedelta(seconds=5000)
    assert len(restarted) == 4902
    assert all(restarted.remembers(f"u{n % 7}", f"e{n}", later) for n in range(100, 5000))
    assert not any(restarted.remembers(f"u{n % 7}", f"e{n}", later) for n in range(100))
    assert restarted.remembers("old", "o1", later) and restarted.remembers("old", "o2", later)


def test_keys_do_not_collide_across_separators() -> None:
    dedup = Deduper(DAY)
    dedup.is_duplicate("u1", "a|b", T0)
    assert dedup.is_duplicate("u1|a", "b", T0) is False


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Deduper(timedelta(0))
