"""The registry as every worker sees it: Faust global tables fed by the compacted registry topics."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Generic, Iterator, TypeVar

import faust

from pipeline.config import Settings
from pipeline.models import Registry, Tenant, Utm

T = TypeVar("T")


class RecordView(Mapping[str, T], Generic[T]):
    """A read-only view of a global table of JSON records, decoded once per stored value."""

    def __init__(self, table: faust.GlobalTable, decode: Callable[[dict[str, Any]], T]) -> None:
        self.table = table
        self.decode = decode
        self._cache: dict[str, tuple[object, T]] = {}

    def __getitem__(self, key: str) -> T:
        raw = self.table.get(key)
        if raw is None:
            raise KeyError(key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is raw:
            return cached[1]
        value = self.decode(raw)
        self._cache[key] = (raw, value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)


def registry_tables(app: faust.App, settings: Settings) -> Registry:
    """Global tables whose changelogs are the registry topics themselves: a null value removes."""

    def table(name: str, topic: str) -> faust.GlobalTable:
        return app.GlobalTable(
            name, key_type=str, value_type=None, key_serializer="raw", value_serializer="json",
            partitions=1, changelog_topic=app.topic(topic, key_type=str, key_serializer="raw",
                                                    value_serializer="json", partitions=1, compacting=True),
        )

    tenants = table("registry_tenants", settings.topics.tenants)
    utms = table("registry_utms", settings.topics.utms)
    return Registry(tenants=RecordView(tenants, Tenant.from_record), utms=RecordView(utms, Utm.from_record))  # type: ignore[arg-type]
