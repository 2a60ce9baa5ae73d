"""The store holder: the embedded engine (chdb) in a process of its own, beside the worker that holds it.

chdb keeps its whole engine (caches, merges, the parts of an insert being written) in the process
that opened the store: in a worker, that was most of its RSS (peaks of ~2 GiB), beside state that
must stay small. So the worker that claims an embedded store takes its lock (`PATH.lock`, the same
lock every command takes) and starts this module as a child process, passing it the lock and one
end of a socket pair; the child opens the store and answers the worker's calls (`HeldStore`, the
`Store` interface) one at a time:

- the lock is held by both: it stays with the worker while a child is restarted, so no other
  worker takes the store in between, and it is freed when both are gone;
- a child that dies (killed, out of memory) makes the call in flight and the next ones raise
  `StoreUnavailable`, the transient failure every caller already retries with backoff (rows wait
  in Kafka, /health and the failure metric show it); the next call starts a new child;
- a child whose worker is gone (killed) sees the socket close, or its parent change, and exits.

A child rather than a `mimamori` command: it is no command anyone should run, only the worker's own
part (the CLI's commands are the public contract), and `python -m` of this module needs nothing the
worker does not have. Frames on the socket: `!II` (header length, body length), a JSON header, the
body (rows as a JSON array in, JSONEachRow out).
"""
from __future__ import annotations

import argparse
import atexit
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from pipeline.io.store.backends import (ChdbStore, Store, StoreError, StoreHeld, StoreUnavailable, _hold, open_store,
                                         render)

_FRAME = struct.Struct("!II")
START_TIMEOUT = 120.0
"""Seconds a new child may take to open the store (chdb's start on a loaded machine)."""
CALL_TIMEOUT = 600.0
"""A call that takes longer is taken for a hung child: it is killed, the call raises StoreUnavailable."""
HOLDER_MARK = "pipeline.io.store.holder"
"""What a holder's command line carries (holder_pids finds them by it)."""


# ---------------------------------------------------------------- framing

def _send(sock: socket.socket, head: dict[str, Any], body: bytes = b"") -> None:
    header = orjson.dumps(head)
    sock.sendall(_FRAME.pack(len(header), len(body)) + header)
    if body:
        sock.sendall(body)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise EOFError("the other end closed the socket")
        got += n
    return bytes(buffer)


def _receive(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    head_size, body_size = _FRAME.unpack(_receive_exactly(sock, _FRAME.size))
    head = orjson.loads(_receive_exactly(sock, head_size))
    return head, _receive_exactly(sock, body_size) if body_size else b""


# ---------------------------------------------------------------- the worker's side

def open_held_store(url: str, *, create: bool = False) -> Store:
    """The store as the worker opens it: an embedded one run by a child process (a `HeldStore`), so
    that its engine's memory is not the worker's; a server as `open_store` gives it."""
    if url.startswith("chdb://"):
        return HeldStore(url, create=create)
    return open_store(url, create=create)


def _chdb_path(url: str) -> tuple[Path, str]:
    parts = urlsplit(url)
    raw_path = unquote((parts.netloc or "") + parts.path)
    if not raw_path:
        raise StoreError(f"chdb URL without a path: {url!r}")
    return Path(raw_path).resolve(), parse_qs(parts.query).get("database", ["default"])[0]


class HeldStore:
    """The `Store` of an embedded engine run by a child process (see the module's docstring).

    Calls are serialised (one request and its answer at a time). `pid` and `rss_bytes()` tell
    the child's process (None/0 while there is none); `restarts` counts the children started after
    the first."""

    def __init__(self, url: str, *, create: bool = False, start_timeout: float = START_TIMEOUT) -> None:
        self.url = url
        self.path, self.database = _chdb_path(url)
        if not create and not self.path.exists():
            raise StoreError(f"chdb store {self.path} does not exist (a mistyped path?); "
                             "`mimamori migrate` creates a new store")
        self.path.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.restarts = 0
        self.exits: list[int | None] = []
        """The exit status of each child that ended while in use (-9: killed)."""
        self._held = _hold(self.path)  # StoreHeld when another process has it
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._closed = False
        try:
            self._start()
        except BaseException:
            self._held.close()
            raise
        atexit.register(self.close)  # the child closes the store before this process is gone: the lock is free then

    # -- the child

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def rss_bytes(self) -> int:
        """The child's resident memory now (0 when there is none)."""
        pid = self.pid
        return process_rss_bytes(pid) if pid is not None else 0

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        code_root = str(Path(__file__).resolve().parents[3])  # this checkout's pipeline, whatever the cwd
        env = dict(os.environ)
        env["PYTHONPATH"] = code_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        command = [sys.executable, "-m", HOLDER_MARK, "--url", self.url, "--socket-fd", str(theirs.fileno()),
                   "--lock-fd", str(self._held.fileno())]
        try:
            proc = subprocess.Popen(command, pass_fds=(theirs.fileno(), self._held.fileno()),
                                    stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        ours.settimeout(self.start_timeout)
        try:
            head, _ = _receive(ours)
        except (OSError, EOFError) as exc:
            ours.close()
            _end(proc)
            raise StoreUnavailable(f"the store holder for {self.path} did not start: {exc or 'timed out'}") from None
        if not head.get("ok"):
            ours.close()
            _end(proc)
            raise _error(head)
        ours.settimeout(CALL_TIMEOUT)
        self._proc, self._sock = proc, ours

    def _lost(self, exc: BaseException) -> StoreUnavailable:
        """The child is gone or hung: end it; the next call starts another."""
        proc, sock = self._proc, self._sock
        self._proc, self._sock = None, None
        if sock is not None:
            sock.close()
        status = _end(proc) if proc is not None else None
        self.exits.append(status)
        return StoreUnavailable(f"the store holder for {self.path} is gone (exit status {status}): {exc}; "
                                "it is started again")

    def _call(self, head: dict[str, Any], body: bytes = b"") -> bytes:
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.url} is closed")
            if self._sock is None:
                self._start()
                self.restarts += 1
            sock = self._sock
            assert sock is not None
            try:
                _send(sock, head, body)
                answer, result = _receive(sock)
            except (OSError, EOFError) as exc:
                raise self._lost(exc) from None
        if not answer.get("ok"):
            raise _error(answer)
        return result

    # -- Store

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._call({"op": "execute", "sql": render(sql, params)})

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        data = self._call({"op": "query", "sql": render(sql, params)})
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]

    def insert(self, table: str, rows: list[dict[str, Any]], dedup_token: str | None = None) -> None:
        if rows:
            self.insert_json(table, orjson.dumps(rows, option=orjson.OPT_UTC_Z), dedup_token)

    def insert_json(self, table: str, body: bytes, dedup_token: str | None = None) -> None:
        self._call({"op": "insert", "table": table, "token": dedup_token}, body)

    def close(self) -> None:
        """The child closes the store and exits; then the lock is freed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self.close)
            proc, sock = self._proc, self._sock
            self._proc, self._sock = None, None
            try:
                if sock is not None:
                    try:
                        _send(sock, {"op": "close"})
                        _receive(sock)
                    except (OSError, EOFError):
                        pass
                    sock.close()
                if proc is not None:
                    _end(proc, grace=30.0)
            finally:
                self._held.close()


def _end(proc: subprocess.Popen[bytes], grace: float = 5.0) -> int | None:
    """Wait for the child to exit (it does once its socket is closed), kill it after `grace`."""
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _error(answer: dict[str, Any]) -> StoreError:
    kind = {"unavailable": StoreUnavailable, "held": StoreHeld}.get(answer.get("error", ""), StoreError)
    return kind(answer.get("message", "the store holder failed"))


def process_rss_bytes(pid: int) -> int:
    """A process's resident memory (Linux /proc), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def holder_pids(parent_pid: int) -> list[int]:
    """The store holders a process started (for a benchmark that reports each process's RSS/CPU)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == parent_pid and HOLDER_MARK in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


# ---------------------------------------------------------------- the child

def _serve(store: ChdbStore, sock: socket.socket) -> None:
    while True:
        try:
            head, body = _receive(sock)
        except (OSError, EOFError):
            return  # the worker is gone, or closed the store
        op = head.get("op")
        result = b""
        try:
            if op == "query":
                result = store._run(head["sql"], "JSONEachRow")
            elif op == "execute":
                store._run(head["sql"])
            elif op == "insert":
                store.insert_json(head["table"], body, head.get("token"))
            elif op == "close":
                _send(sock, {"ok": True})
                return
            else:
                raise StoreError(f"unknown store holder call {op!r}")
            answer: dict[str, Any] = {"ok": True}
        except StoreError as exc:
            answer = {"ok": False, "error": "error", "message": str(exc)}
            result = b""
        try:
            _send(sock, answer, result)
        except OSError:
            return


def _watch_parent(parent: int) -> None:
    """A worker killed in the middle of a long call: the socket's end is noticed only after it."""
    while os.getppid() == parent:
        time.sleep(0.5)
    time.sleep(5.0)  # the main loop normally notices first and closes the store properly
    os._exit(3)


def main(argv: list[str] | None = None) -> int:
    import signal

    parser = argparse.ArgumentParser(description="the embedded store's holder (started by a worker)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--socket-fd", type=int, required=True)
    parser.add_argument("--lock-fd", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the worker's to handle: it closes us
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    sock = socket.socket(fileno=args.socket_fd)
    held = os.fdopen(args.lock_fd, "a+")
    try:
        path, database = _chdb_path(args.url)
        store = ChdbStore(args.url, path, database, held=held)
    except StoreError as exc:
        _tell(sock, {"ok": False, "error": "held" if isinstance(exc, StoreHeld) else "error", "message": str(exc)})
        return 1
    except Exception as exc:  # noqa: BLE001 - chdb's start can fail in many ways; the worker retries
        _tell(sock, {"ok": False, "error": "unavailable", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    try:
        if _tell(sock, {"ok": True, "pid": os.getpid()}):
            _serve(store, sock)
    finally:
        store.close()
    return 0


def _tell(sock: socket.socket, answer: dict[str, Any]) -> bool:
    """The answer to the worker's start; False when the worker is gone already (killed while the
    store opened): nothing to serve, and nothing to print into the log it shares."""
    try:
        _send(sock, answer)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
