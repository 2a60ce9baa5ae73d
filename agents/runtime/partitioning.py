"""Where a keyed record lives: the Kafka default partitioner (murmur2, as kafka-python and aiokafka
producers use) over its routing key — the `utm_id` or `tenant_id` the input topics are keyed by.
The worker itself never computes it (a step's saved state goes to the state partition of the input
partition whose transaction carries it); tests use it to find the partition, and so the worker, of
a UTM."""
from __future__ import annotations

from functools import lru_cache

from kafka.partitioner.default import murmur2


@lru_cache(maxsize=1 << 18)
def partition_for(route: str, partitions: int) -> int:
    """Cached: murmur2 is pure Python."""
    return (murmur2(route.encode()) & 0x7FFFFFFF) % partitions
