"""The registry as every worker sees it: Faust global tables fed by the compacted registry topics."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Generic, Iterator, TypeVar

import faust
import orjson

from agents.context import Context, log
from pipeline.store.rows import tenant_removed_row, tenant_row, utm_removed_row, utm_row
from pipeline.store.sink import batch_token
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


def registry_tables(app: faust.App) -> Registry:
    """Every worker holds the whole registry in global tables (see `register_mirrors`)."""
    tenants = app.GlobalTable("registry-tenants", key_type=bytes, partitions=1, use_partitioner=True)
    utms = app.GlobalTable("registry-utms", key_type=bytes, partitions=1, use_partitioner=True)
    return Registry(tenants=RecordView(tenants, Tenant.from_record), utms=RecordView(utms, Utm.from_record))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Mirror:
    table: str
    topic: str
    view: RecordView
    row: Callable[[Any, datetime], dict[str, Any]]
    removed_row: Callable[[str, datetime], dict[str, Any]]


def register_mirrors(ctx: Context) -> None:
    """One agent per compacted registry topic (run by whichever worker owns its single partition)
    copies each record into the global table and the store's registry table; a null value removes."""
    topics = ctx.settings.topics
    for mirror in (
        _Mirror("tenants", topics.tenants, ctx.registry.tenants, tenant_row, tenant_removed_row),  # type: ignore[arg-type]
        _Mirror("utms", topics.utms, ctx.registry.utms, utm_row, utm_removed_row),  # type: ignore[arg-type]
    ):
        _register_mirror(ctx, mirror)


def _register_mirror(ctx: Context, mirror: _Mirror) -> None:
    topic = ctx.app.topic(mirror.topic, key_type=bytes, key_serializer="raw", value_serializer="raw", partitions=1)

    @ctx.app.agent(topic, name=f"mirror-{mirror.table}")
    async def copy(stream: faust.StreamT) -> None:
        async for events in stream.take_events(1000, within=1.0):
            now = ctx.clock.now()
            rows = []
            for event in events:
                key = event.key
                if key is None:
                    log.warning("registry record without key on %s ignored", mirror.topic)
                    continue
                try:
                    if event.value is None:
                        mirror.view.table.pop(key, None)
                        rows.append(mirror.removed_row(key.decode(), now))
                    else:
                        data = orjson.loads(event.value)
                        record = mirror.view.decode(data)
                        mirror.view.table[key] = data
                        rows.append(mirror.row(record, now))
                except Exception as exc:
                    ctx.metrics.agent_errors.labels(f"mirror-{mirror.table}").inc()
                    log.error("registry record %r on %s refused: %s", key, mirror.topic, exc)
            if rows:
                await ctx.durably(mirror.table, lambda: ctx.store.insert(mirror.table, rows, dedup_token=batch_token(mirror.table, rows)))
            ctx.progressed(f"mirror-{mirror.table}")
