"""The benchmark's peer: the worker's event job written idiomatically in Quix Streams.

    .venv/bin/python -m benchmarks.quix_peer --bootstrap HOST:PORT --topic T --group G \
        --registry REGISTRY.json --store DIR --state DIR

One `StreamingDataFrame` over the raw events topic (key utm_id): parse and validate with this
project's `EventValidator`, deduplicate by event id in the Quix state store (RocksDB, changelogged,
per utm_id), correlate and grade with this project's `Policy` and `Correlator` (the UTM's
correlation state saved in the state store whenever it changes), then a `BatchingSink` inserts the
same event and alert rows into an embedded ClickHouse (chdb) at each checkpoint, one insert per
table with a deduplication token. Offsets are committed after the sink's flush, so the group's
committed offsets count events processed and stored: that is how the benchmark follows it.

Not done here, and done by the worker: heartbeats and UTM status, rejections to a topic, alert and
mail-request messages. The comparison is therefore in the peer's favour.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application, State
from quixstreams.sinks import BatchingSink, SinkBatch

from pipeline.config import Settings
from pipeline.correlate import Correlator
from pipeline.ingest import EventValidator
from pipeline.models import Event
from pipeline.registry_file import registry_from_data
from pipeline.rules import load_policy
from pipeline.io.store.backends import Store, open_store
from pipeline.io.store.migrate import apply_migrations
from pipeline.rows import alert_row, event_row


class ChdbSink(BatchingSink):
    """Rows by table, inserted once per checkpoint and partition."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.stored: dict[str, int] = defaultdict(int)

    def write(self, batch: SinkBatch) -> None:
        tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in batch:
            for table, rows in item.value.items():
                tables[table].extend(rows)
        for table, rows in tables.items():
            if rows:
                self.store.insert(table, rows,
                                  dedup_token=f"quix:{batch.topic}:{batch.partition}:{batch.start_offset}:{table}")
                self.stored[table] += len(rows)


def build(args: argparse.Namespace) -> tuple[Application, ChdbSink]:
    settings = Settings()
    registry = registry_from_data(orjson.loads(Path(args.registry).read_bytes()))
    policy = load_policy()
    validator = EventValidator(registry)
    correlator = Correlator(policy, window=settings.correlation_window, tz=settings.tz, tenant_of=registry.tenant_of)
    store = open_store(f"chdb://{args.store}", create=True)
    apply_migrations(store, str(settings.tz), datetime.now(timezone.utc))

    def validate(value: bytes) -> Event | None:
        checked = validator.check_event(value, datetime.now(timezone.utc), topic=args.topic)
        return checked if isinstance(checked, Event) else None

    def first_time(event: Event, state: State) -> bool:
        if state.exists(event.event_id):
            return False
        state.set(event.event_id, event.ts.timestamp())
        return True

    def correlate(event: Event, state: State) -> dict[str, list[dict[str, Any]]]:
        if not state.exists("\x1floaded"):  # first event of this UTM since the start: its saved state
            correlator.load_state(event.utm_id, state.get("\x1fcorrelation"))
            state.set("\x1floaded", True)
        signal = policy.signal(event)
        changes = correlator.process(event, datetime.now(timezone.utc), signal)
        if changes:
            state.set("\x1fcorrelation", correlator.state_for(event.utm_id))
        alert_id = changes[-1].alert.alert_id if changes else ""
        return {"events": [event_row(event, signal.level if signal else None, alert_id)],
                "alerts": [alert_row(change.alert) for change in changes]}

    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state, commit_interval=args.commit_interval, loglevel="WARNING")
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="str")
    sdf = app.dataframe(topic)
    sdf = sdf.apply(validate).filter(lambda event: event is not None)
    sdf = sdf.filter(first_time, stateful=True)
    sdf = sdf.apply(correlate, stateful=True)
    sink = ChdbSink(store)
    sdf.sink(sink)
    return app, sink


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--registry", required=True, help="registry file (JSON)")
    parser.add_argument("--store", required=True, help="chdb directory")
    parser.add_argument("--state", required=True, help="Quix state directory")
    parser.add_argument("--commit-interval", type=float, default=1.0)
    parser.add_argument("--report", help="write the rows stored per table here (JSON) when stopped")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    app, sink = build(args)
    app.run()
    if args.report:
        Path(args.report).write_bytes(orjson.dumps(dict(sink.stored)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
