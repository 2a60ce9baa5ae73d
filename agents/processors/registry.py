"""The registry: every worker follows the compacted registry topics into memory; a mirror processor
per topic writes them to the store for the portal views. Both take a record only if it passes the
check `registry load` makes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from agents.context import Context, log
from agents.runtime.follow import Followed
from agents.runtime.processor import Message, Output, PartitionedProcessor, StatelessHandler
from pipeline.io.metrics import Metrics
from pipeline.models import Registry
from pipeline.registry_file import Kind, RegistryRecordError, registry_record
from pipeline.rows import tenant_removed_row, tenant_row, utm_removed_row, utm_row
from agents.processors.store import row_messages


class RegistryBooks:
    """What a worker applies of the registry topics: each record checked against its schema as
    `registry load` checks a file (pipeline.registry_file); a refused record is logged and counted
    and the previous version of its tenant or UTM stays; a null value removes."""

    def __init__(self, registry: Registry, metrics: Metrics) -> None:
        self.registry = registry
        self.metrics = metrics

    def tenants(self, key: bytes | None, value: bytes | None) -> None:
        self._apply("tenant", self.registry.tenants, key, value)

    def utms(self, key: bytes | None, value: bytes | None) -> None:
        self._apply("utm", self.registry.utms, key, value)

    def _apply(self, kind: Kind, table: dict[str, Any], key: bytes | None, value: bytes | None) -> None:
        if key is None:
            log.warning("registry %s record without key ignored", kind)
            return
        name = key.decode(errors="replace")
        if value is None:
            table.pop(name, None)
            return
        try:
            record = registry_record(kind, key, value)
            # keyed by the record's own id (equal to the key, or it was refused): one string, not two
            table[record.tenant_id if kind == "tenant" else record.utm_id] = record  # type: ignore[union-attr]
        except RegistryRecordError as exc:
            self.metrics.registry_refused.labels(kind).inc()
            log.error("registry %s record %r refused, its previous version stays: %s", kind, name, "; ".join(exc.problems))


def register_follower(ctx: Context) -> Followed:
    """Every worker follows the compacted registry topics whole into its Registry (ctx.follower, on
    the event loop). `wait_ready()` returns once it has read what the topics held when it started:
    the processors wait for it, so that a cold start does not reject the first events of UTMs it has
    simply not read about yet."""
    books = RegistryBooks(ctx.registry, ctx.metrics)
    topics = ctx.settings.topics
    followed = Followed(ctx.follower.topic(topics.tenants, name="registry tenants", apply=books.tenants),
                        ctx.follower.topic(topics.utms, name="registry UTMs", apply=books.utms))
    followed.start()
    return followed


@dataclass(frozen=True)
class _Mirror:
    table: str
    topic: str
    kind: Kind
    row: Callable[[Any, datetime], dict[str, Any]]
    removed_row: Callable[[str, datetime], dict[str, Any]]


def register_mirrors(ctx: Context) -> None:
    """One processor per compacted registry topic (run by whichever worker owns its single partition)
    puts each record's row on the store-rows topic for the store's registry table, which the portal
    views join; a null value
    writes a removal; a record that fails its check is dead-lettered (the previous row stays)."""
    topics = ctx.settings.topics
    for mirror in (
        _Mirror("tenants", topics.tenants, "tenant", tenant_row, tenant_removed_row),
        _Mirror("utms", topics.utms, "utm", utm_row, utm_removed_row),
    ):
        _register_mirror(ctx, mirror)


class _MirrorHandler(StatelessHandler):
    """Each registry record as a store row (on the store-rows topic); a null value as a removal row."""

    def __init__(self, ctx: Context, mirror: _Mirror) -> None:
        self.ctx = ctx
        self.mirror = mirror

    async def handle(self, partition: int, records: list[Any]) -> Output:
        ctx, mirror = self.ctx, self.mirror
        now = ctx.clock.now()
        rows = []
        dead: list[Message] = []
        for record in records:
            if record.key is None:
                log.warning("registry record without key on %s ignored", mirror.topic)
                continue
            try:
                if record.value is None:
                    rows.append(mirror.removed_row(record.key.decode(), now))
                else:
                    rows.append(mirror.row(registry_record(mirror.kind, record.key, record.value), now))
            except Exception as exc:  # noqa: BLE001
                dead.append(ctx.dead_letter(f"mirror-{mirror.table}", record, exc))
        ctx.progressed(f"mirror-{mirror.table}")
        return Output(row_messages(ctx.settings.topics.store_rows, {mirror.table: rows}) + dead)


def _register_mirror(ctx: Context, mirror: _Mirror) -> None:
    ctx.add_processor(PartitionedProcessor(
        name=f"mirror-{mirror.table}", group=ctx.settings.topics.group(f"mirror-{mirror.table}"),
        inputs=[mirror.topic], handler=_MirrorHandler(ctx, mirror), max_records=5000,
        **ctx.processor_options()))
