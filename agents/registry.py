"""The registry as every worker sees it: Faust global tables fed by the compacted registry topics."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Generic, Iterator, TypeVar

import faust
import orjson

from agents.context import log
from pipeline.config import Settings
from pipeline.models import Registry, Tenant, Utm

T = TypeVar("T")


class RecordView(Mapping[str, T], Generic[T]):
    """A read-only view of a global table of JSON records (raw keys, as producers key the registry
    topics), decoded once per stored value."""

    def __init__(self, table: faust.GlobalTable, decode: Callable[[dict[str, Any]], T]) -> None:
        self.table = table
        self.decode = decode
        self._cache: dict[str, tuple[object, T]] = {}

    def __getitem__(self, key: str) -> T:
        raw = self.table.get(key.encode())
        if raw is None:
            raise KeyError(key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is raw:
            return cached[1]
        value = self.decode(raw)
        self._cache[key] = (raw, value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter([key.decode() for key in self.table.keys()])

    def __len__(self) -> int:
        return len(self.table)


def registry_tables(app: faust.App, settings: Settings) -> Registry:
    """Every worker holds the whole registry in global tables. One agent (whichever worker owns
    the single partition of each compacted registry topic) copies its records in; a null value
    removes the key."""

    def mirror(name: str, topic_name: str) -> faust.GlobalTable:
        table = app.GlobalTable(name, key_type=bytes, partitions=1, use_partitioner=True)
        topic = app.topic(topic_name, key_type=bytes, key_serializer="raw", value_serializer="raw", partitions=1)

        @app.agent(topic, name=f"mirror-{name}")
        async def copy(stream: faust.StreamT) -> None:
            async for event in stream.events():
                key = event.key
                if key is None:
                    log.warning("registry record without key on %s ignored", topic_name)
                    continue
                try:
                    if event.value is None:
                        table.pop(key, None)
                    else:
                        table[key] = orjson.loads(event.value)
                except orjson.JSONDecodeError:
                    log.error("registry record %r on %s is not JSON; ignored", key, topic_name)

        return table

    tenants = mirror("registry-tenants", settings.topics.tenants)
    utms = mirror("registry-utms", settings.topics.utms)
    return Registry(tenants=RecordView(tenants, Tenant.from_record), utms=RecordView(utms, Utm.from_record))  # type: ignore[arg-type]
