"""Measurement hooks for the benchmark, outside agents/: on the worker's PYTHONPATH when
MIMAMORI_BENCH_TIMINGS names a file, it wraps the awaits of the partitioned runtime and the
Detector's step and writes, every second and at exit, the wall seconds and calls of each, per processor, as JSON.

What it wraps: `Detector.step` (the logic), `Publisher.send_all` (messages out and their acks),
`PartitionedProcessor.write_state` (state out and its acks), `AIOKafkaConsumer.commit` and
`getmany` (fetch wait), the chdb `Store.insert`, and `PartitionedProcessor._take` (a whole batch).
"""
from __future__ import annotations

import atexit
import os
import time
from collections import defaultdict

PATH = os.environ.get("MIMAMORI_BENCH_TIMINGS")


def _install(path: str) -> None:
    import functools
    import threading

    import orjson
    from aiokafka import AIOKafkaConsumer

    from agents.processors import detect
    from agents.runtime import processor as runtime
    from pipeline import engine
    from pipeline.io.store import backends

    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])

    def note(name: str, seconds: float) -> None:
        entry = spent[name]
        entry[0] += seconds
        entry[1] += 1

    def timed_async(cls: type, attr: str, label) -> None:  # type: ignore[no-untyped-def]
        original = getattr(cls, attr)

        @functools.wraps(original)
        async def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return await original(self, *args, **kwargs)
            finally:
                note(label(self), time.perf_counter() - started)

        setattr(cls, attr, wrapper)

    def timed_sync(cls: type, attr: str, label: str) -> None:
        original = getattr(cls, attr)

        @functools.wraps(original)
        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                note(label, time.perf_counter() - started)

        setattr(cls, attr, wrapper)

    def client(consumer: AIOKafkaConsumer) -> str:
        return str(getattr(consumer, "_client", None) and consumer._client._client_id)  # noqa: SLF001

    timed_async(runtime.PartitionedProcessor, "_take", lambda p: f"{p.name}: whole batch")
    timed_async(runtime.PartitionedProcessor, "write_state", lambda p: f"{p.name}: write_state (acks)")
    timed_async(runtime.Publisher, "send_all", lambda p: "publisher: send_all (acks), all callers")
    timed_async(AIOKafkaConsumer, "commit", lambda c: f"{client(c)}: commit")
    timed_async(AIOKafkaConsumer, "getmany", lambda c: f"{client(c)}: getmany")
    timed_sync(engine.Detector, "step", "detect: Detector.step")
    timed_async(detect.DetectHandler, "publish", lambda s: "detect: publish (rows, JSON, send, acks)")
    original_rows = engine.DetectorStep.rows.fget

    def rows(self):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original_rows(self)
        finally:
            note("detect: DetectorStep.rows", time.perf_counter() - started)

    engine.DetectorStep.rows = property(rows)  # type: ignore[assignment]
    original_writes = detect._state_writes

    def state_writes(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return original_writes(*args, **kwargs)
        finally:
            note("detect: _state_writes", time.perf_counter() - started)

    detect._state_writes = state_writes
    timed_sync(backends.ChdbStore, "insert", "store: ChdbStore.insert (thread)")

    def dump() -> None:
        data = orjson.dumps(dict(spent))
        with open(path + ".tmp", "wb") as out:
            out.write(data)
        os.replace(path + ".tmp", path)

    def every_second() -> None:
        while True:
            time.sleep(1.0)
            dump()

    atexit.register(dump)
    threading.Thread(target=every_second, name="bench-timings", daemon=True).start()


if PATH:
    try:
        _install(PATH)
    except (ImportError, AttributeError) as exc:  # a renamed hook point loses its timing, never the worker
        import sys

        print(f"bench timings not installed: {exc!r}", file=sys.stderr)
