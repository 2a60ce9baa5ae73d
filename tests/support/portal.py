"""A portal served by uvicorn in a thread of the test process, on a free port, over a given store."""
from __future__ import annotations

import threading
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator

import uvicorn

from pipeline.config import Settings
from pipeline.io.store.backends import Store
from portal.app import Portal
from portal.server import server_config
from tests.support.services import free_port

KEY = "portal-test-key-0123456789abcdef"


@contextmanager
def running_portal(store: Store, settings: Settings | None = None, clock=time.time) -> Iterator[tuple[Portal, str]]:
    settings = (settings or Settings()).with_overrides(portal_key=KEY)
    portal = Portal(settings, store, clock=clock)
    port = free_port()
    server = uvicorn.Server(server_config(portal, port, "127.0.0.1"))
    thread = threading.Thread(target=server.run, name="portal", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the portal did not start")
            time.sleep(0.05)
    try:
        yield portal, base
    finally:
        server.should_exit = True
        thread.join(15)
