"""Tables whose changelog partition follows a routing key inside the table key.

Faust puts a table write on the changelog partition of the event being processed, and refuses
writes outside a stream. Our state is written from batches that mix partitions and from timers,
so each table here computes the partition itself: the Kafka default partitioner (murmur2, as
kafka-python and aiokafka producers use) over the routing part of the key — the `utm_id` or
`tenant_id` the input topics are keyed by. A key is `ROUTE` or `ROUTE\x1fSUFFIX`.
"""
from __future__ import annotations

from typing import Any

import faust
from kafka.partitioner.default import murmur2

SEPARATOR = "\x1f"


def partition_for(route: str, partitions: int) -> int:
    return (murmur2(route.encode()) & 0x7FFFFFFF) % partitions


def route_of(key: str) -> str:
    return key.split(SEPARATOR, 1)[0]


def compound_key(route: str, suffix: str) -> str:
    return f"{route}{SEPARATOR}{suffix}"


class RoutedTable(faust.Table):
    """A table keyed by `route[\\x1fsuffix]`, co-partitioned with topics keyed by `route`."""

    def partition_for_key(self, key: Any) -> int:
        return partition_for(route_of(key), self.partitions or self.app.conf.topic_partitions)


def routed_table(app: faust.App, name: str, partitions: int) -> RoutedTable:
    """A RoutedTable of JSON values keyed by strings, registered with the app."""
    return app.tables.add(RoutedTable(app, name=name, key_type=str, partitions=partitions, beacon=app.tables.beacon))
