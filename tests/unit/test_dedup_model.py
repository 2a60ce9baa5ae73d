"""The Deduper against the contract's model (a dict of each pair's arrival when taken): random
streams of a few UTMs and ids over hours, upkeeps at random, restarts from the state log, the
open slot's dict flushed every few pairs. Every answer must be the model's."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

import pipeline.dedup as dedup_module
from pipeline.dedup import Deduper, encode_pairs

T0 = datetime(2025, 3, 1, 3, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("recent_max", [2, 7, 4096])
def test_every_answer_is_the_models(monkeypatch: pytest.MonkeyPatch, recent_max: int) -> None:
    monkeypatch.setattr(dedup_module, "RECENT_MAX", recent_max)
    for seed in range(50):
        rnd = random.Random(seed)
        window = rnd.choice([60, 3600, 7200, 86400])
        dedup = Deduper(timedelta(seconds=window))
        model: dict[tuple[str, str], float] = {}
        log: list[bytes] = []
        clock = 0.0
        for step in range(rnd.randint(10, 400)):
            clock += rnd.choice([0, 0.5, 1, 30, 600, 3000])
            now = T0 + timedelta(seconds=clock)
            if rnd.random() < 0.1:
                dedup.expire(now)
            if rnd.random() < 0.03:  # a restart: a new Deduper from the state log
                dedup = Deduper(timedelta(seconds=window))
                for block in log:
                    dedup.load_value(block, now.timestamp() - window)
                dedup.rebuild_index(now)
            pair = (f"u{rnd.randint(0, 3)}", f"e{rnd.randint(0, 60)}")
            seen = model.get(pair)
            expected = seen is not None and now.timestamp() - seen < window
            if not expected:
                model[pair] = now.timestamp()
            assert dedup.is_duplicate(*pair, now) is expected, (seed, step, pair, clock)
            fresh = dedup.drain()
            if fresh:
                log.append(encode_pairs(fresh))
