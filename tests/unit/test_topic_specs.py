from datetime import timedelta

from pipeline.config import Topics
from pipeline.io.kafka_admin import topic_specs


def _spec(name: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return next(s for s in topic_specs(Topics(), **kwargs) if s.name == name)  # type: ignore[arg-type]


def test_the_dedup_log_keeps_the_dedup_window_and_an_hour() -> None:
    assert _spec("mimamori-detect-seen").retention_ms == 25 * 3600 * 1000
    assert _spec("mimamori-detect-seen", dedup_window=timedelta(hours=48)).retention_ms == 49 * 3600 * 1000


def test_a_notice_broadcast_is_saved_beside_its_single_partition() -> None:
    state = _spec("mimamori-notice-state")
    assert state.compacted and state.partitions == _spec("service.notices").partitions == 1
