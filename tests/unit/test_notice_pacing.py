from pipeline.notices.pacing import paced_chunks


def test_a_broadcast_is_cut_into_one_seconds_worth_with_pauses_that_keep_the_rate() -> None:
    chunks = list(paced_chunks(list(range(45)), 20))
    assert [len(c) for c, _ in chunks] == [20, 20, 5]
    assert [p for _, p in chunks] == [1.0, 1.0, 0.0]
    slow = list(paced_chunks(list(range(3)), 0.5))
    assert [len(c) for c, _ in slow] == [1, 1, 1] and [p for _, p in slow] == [2.0, 2.0, 0.0]
    assert list(paced_chunks([], 5)) == []
