"""The store processor's guard against a crashed batch's republished rows landing in the same
insert as the originals."""
from __future__ import annotations

import pytest

from agents.processors.store import first_of_each_event

pytestmark = pytest.mark.unit


def test_a_republished_event_in_the_same_batch_as_its_original_is_kept_once() -> None:
    rows = [{"utm_id": "u1", "event_id": "e1", "n": 1}, {"utm_id": "u1", "event_id": "e2", "n": 2},
            {"utm_id": "u2", "event_id": "e1", "n": 3}, {"utm_id": "u1", "event_id": "e1", "n": 4}]
    assert [r["n"] for r in first_of_each_event(rows)] == [1, 2, 3]
