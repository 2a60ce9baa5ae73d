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


def test_keys_land_where_the_java_default_partitioner_puts_them() -> None:
    """The gateway routes by aiokafka's murmur2; it must agree with kafka-python's (the CLI's
    producer) so that both put a UTM's records on the same partition."""
    from kafka.partitioner.default import murmur2 as pure_python_murmur2

    from pipeline.io.kafka_admin import PARTITIONS, partition_of

    for key in (b"utm-0001", b"tenant-a", b"", "東京-01".encode()):
        assert partition_of(key) == (pure_python_murmur2(key) & 0x7FFFFFFF) % PARTITIONS
    assert [partition_of(k, 100) for k in (b"a", b"hello", b"utm-1")] == [
        (pure_python_murmur2(k) & 0x7FFFFFFF) % 100 for k in (b"a", b"hello", b"utm-1")]
