"""Where a keyed record lives: the Kafka default partitioner (murmur2, as kafka-python and aiokafka
producers use) over its routing key — the `utm_id` or `tenant_id` the input topics are keyed by.
Saved state goes to the partition of the input it belongs to, so its owner restores it."""
from __future__ import annotations

from kafka.partitioner.default import murmur2


def partition_for(route: str, partitions: int) -> int:
    return (murmur2(route.encode()) & 0x7FFFFFFF) % partitions
