"""Measurement hooks for the benchmark, outside agents/: on the worker's PYTHONPATH when
MIMAMORI_BENCH_TIMINGS names a file, it wraps the awaits of the partitioned runtime and the
Detector's step and writes, every second and at exit, the wall seconds and calls of each, per processor, as JSON.

What it wraps: `Detector.step` (the logic), `Publisher.send_all` (messages out and their acks),
`PartitionedProcessor._commit` (a batch's transaction: messages, state and offsets out, their acks
and the commit), `AIOKafkaConsumer.getmany` (fetch wait), the store's `insert`, and
`PartitionedProcessor._take` (a batch judged; with the overlap its transaction runs after it). A
hook point that is not there (renamed) is named on stderr and skipped.
"""
from __future__ import annotations

import atexit
import os
import time
from collections import defaultdict

PATH = os.environ.get("MIMAMORI_BENCH_TIMINGS")


def _install(path: str) -> None:
    import functools
    import sys
    from pathlib import Path

    # This runs at interpreter start, before `python -m` puts the working directory on sys.path: the
    # imports below would find the packages through the venv's editable install (the main
    # checkout), and the worker would then run that code instead of this checkout's (a worktree's).
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import threading

    import importlib

    import orjson
    from aiokafka import AIOKafkaConsumer

    from pipeline import engine

    def module(*names: str):  # type: ignore[no-untyped-def]
        """The first of `names` that imports (modules moved in issue 24)."""
        for name in names:
            try:
                return importlib.import_module(name)
            except ImportError:
                continue
        raise ImportError(f"none of {names}")

    runtime = module("agents.runtime.processor", "agents.runtime")
    detect = module("agents.processors.detect", "agents.detect")
    backends = module("pipeline.io.store.backends", "pipeline.store.backends")
    missing: list[str] = []

    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])

    def note(name: str, seconds: float) -> None:
        entry = spent[name]
        entry[0] += seconds
        entry[1] += 1

    def timed_async(cls: type, attr: str, label) -> None:  # type: ignore[no-untyped-def]
        original = getattr(cls, attr, None)
        if original is None:
            missing.append(f"{cls.__name__}.{attr}")
            return

        @functools.wraps(original)
        async def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return await original(self, *args, **kwargs)
            finally:
                note(label(self), time.perf_counter() - started)

        setattr(cls, attr, wrapper)

    def timed_sync(cls: type, attr: str, label: str) -> None:
        original = getattr(cls, attr, None)
        if original is None:
            missing.append(f"{cls.__name__}.{attr}")
            return

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
    timed_async(runtime.PartitionedProcessor, "_commit", lambda p: f"{p.name}: transaction (messages, acks, commit)")
    timed_async(runtime.Publisher, "send_all", lambda p: "publisher: send_all (acks), all callers")
    timed_async(AIOKafkaConsumer, "commit", lambda c: f"{client(c)}: commit")
    timed_async(AIOKafkaConsumer, "getmany", lambda c: f"{client(c)}: getmany")
    timed_sync(engine.Detector, "step", "detect: Detector.step")
    side = getattr(detect, "DetectHandler", None) or getattr(detect, "UtmSide")
    timed_async(side, "publish", lambda s: "detect: publish (rows, JSON, send, acks)")
    rows_attr = "row_texts" if isinstance(getattr(engine.DetectorStep, "row_texts", None), property) else "rows"
    if isinstance(getattr(engine.DetectorStep, rows_attr, None), property):
        original_rows = getattr(engine.DetectorStep, rows_attr).fget

        def rows(self):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return original_rows(self)
            finally:
                note(f"detect: DetectorStep.{rows_attr}", time.perf_counter() - started)

        setattr(engine.DetectorStep, rows_attr, property(rows))
    else:
        missing.append("DetectorStep.rows")
    original_writes = getattr(detect, "_state_writes", None)
    if original_writes is not None:
        def state_writes(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return original_writes(*args, **kwargs)
            finally:
                note("detect: _state_writes", time.perf_counter() - started)

        detect._state_writes = state_writes
    else:
        missing.append("detect._state_writes")
    try:  # a held store (issue 22): the worker's side of the call, the engine in the holder's process
        from pipeline.io.store.holder import HeldStore

        timed_sync(HeldStore, "insert_json", "store: insert_json to the holder (thread)")
    except ImportError:
        timed_sync(backends.ChdbStore, "insert_json", "store: ChdbStore.insert_json (thread)")
    if missing:
        import sys

        print(f"bench timings: no hook on {', '.join(missing)} (renamed?)", file=sys.stderr)

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


if PATH and os.environ.get("MIMAMORI_BENCH_TIMINGS_PID", str(os.getpid())) == str(os.getpid()):
    os.environ["MIMAMORI_BENCH_TIMINGS_PID"] = str(os.getpid())  # the worker's children (a store holder) time nothing
    try:
        _install(PATH)
    except (ImportError, AttributeError) as exc:  # a renamed hook point loses its timing, never the worker
        import sys

        print(f"bench timings not installed: {exc!r}", file=sys.stderr)
