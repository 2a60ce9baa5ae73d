"""The embedded store in a process of its own (pipeline.io.store.holder): the calls reach a child
that holds the engine, the store stays one process's, a killed child is a transient outage that the
next call ends by starting another, and a killed worker does not leave its child holding the store."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.io.store.backends import StoreError, StoreHeld, StoreUnavailable, open_store
from pipeline.io.store.holder import HeldStore, holder_pids, open_held_store

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TABLE = ("CREATE TABLE IF NOT EXISTS t (k String, n UInt32, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY k "
         "SETTINGS non_replicated_deduplication_window = 100")


@pytest.fixture()
def held(tmp_path: Path):
    store = open_held_store(f"chdb://{tmp_path / 'ch'}", create=True)
    assert isinstance(store, HeldStore)
    store.execute(TABLE)
    yield store
    store.close()


def count(store: HeldStore) -> int:
    return int(store.query("SELECT count() AS n FROM t")[0]["n"])


def test_the_engine_runs_in_a_child_and_answers_like_the_store(held: HeldStore) -> None:
    assert held.pid is not None and held.pid != os.getpid()
    assert holder_pids(os.getpid()) == [held.pid]
    assert held.rss_bytes() > 0
    held.insert("t", [{"k": "a", "n": 1, "at": "2026-12-01T00:00:00Z"}, {"k": "b", "n": 2, "at": "2026-12-01T00:00:01Z"}],
                dedup_token="one")
    held.insert_json("t", b'[{"k":"a","n":1,"at":"2026-12-01T00:00:00Z"},{"k":"b","n":2,"at":"2026-12-01T00:00:01Z"}]',
                     dedup_token="one")  # the same batch again: its token keeps it out
    assert held.query("SELECT k, n FROM t WHERE n > %(n)s ORDER BY k", {"n": 1}) == [{"k": "b", "n": 2}]
    assert count(held) == 2


def test_a_refused_statement_is_an_error_and_the_child_goes_on(held: HeldStore) -> None:
    pid = held.pid
    with pytest.raises(StoreError) as refused:
        held.insert_json("t", b'[{"k":"a","n":"not a number"}]')
    assert not isinstance(refused.value, StoreUnavailable)
    with pytest.raises(StoreError):
        held.execute("SELECT * FROM no_such_table")
    assert held.pid == pid and count(held) == 0


def test_the_store_stays_one_process_s_while_held(held: HeldStore, tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'ch'}"
    with pytest.raises(StoreHeld):
        open_held_store(url)
    with pytest.raises(StoreHeld):
        open_store(url)  # nor in this process, nor by a command
    held.close()
    assert holder_pids(os.getpid()) == []
    again = open_held_store(url)
    try:
        assert again.query("SELECT 1 AS x") == [{"x": 1}]
    finally:
        again.close()


def test_a_killed_child_is_a_transient_outage_ended_by_the_next_call(held: HeldStore, tmp_path: Path) -> None:
    held.insert("t", [{"k": "a", "n": 1, "at": "2026-12-01T00:00:00Z"}], dedup_token="first")
    first = held.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    with pytest.raises(StoreUnavailable):
        held.insert("t", [{"k": "b", "n": 2, "at": "2026-12-01T00:00:00Z"}], dedup_token="second")
    assert held.exits == [-signal.SIGKILL]
    with pytest.raises(StoreHeld):
        open_store(f"chdb://{tmp_path / 'ch'}")  # the worker kept the store while its child was away
    held.insert("t", [{"k": "b", "n": 2, "at": "2026-12-01T00:00:00Z"}], dedup_token="second")  # the retry
    held.insert("t", [{"k": "a", "n": 1, "at": "2026-12-01T00:00:00Z"}], dedup_token="first")  # a repeat: kept out
    assert held.restarts == 1 and held.pid not in (None, first)
    assert count(held) == 2


def test_a_killed_worker_leaves_the_store_free(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'ch'}"
    code = ("import sys, time\n"
            "from pipeline.io.store.holder import open_held_store\n"
            f"store = open_held_store({url!r}, create=True)\n"
            "print(store.pid, flush=True)\n"
            "time.sleep(300)\n")
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        child = int(worker.stdout.readline())  # type: ignore[union-attr]
        assert holder_pids(worker.pid) == [child]
    finally:
        worker.kill()
        worker.wait()
    deadline = time.monotonic() + 30
    while True:
        try:
            store = open_held_store(url)
            break
        except StoreHeld:
            assert time.monotonic() < deadline, "the orphaned holder kept the store"
            time.sleep(0.1)
    try:
        assert store.query("SELECT 1 AS x") == [{"x": 1}]
    finally:
        store.close()


def test_a_child_whose_worker_died_while_the_store_opened_exits_quietly(tmp_path: Path) -> None:
    """A worker SIGKILLed at its start: its child finds no one to answer, closes the store and says
    nothing in the log it shares with the worker (the kill loop reads that log for tracebacks)."""
    import socket

    ours, theirs = socket.socketpair()
    ours.close()
    lock = open(tmp_path / "lock", "a+")
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline.io.store.holder", "--url", f"chdb://{tmp_path / 'ch'}",
                               "--socket-fd", str(theirs.fileno()), "--lock-fd", str(lock.fileno())],
                              pass_fds=(theirs.fileno(), lock.fileno()), cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    finally:
        theirs.close()
        lock.close()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
