"""Serving the portal with uvicorn (the same stack as the gateway)."""
from __future__ import annotations

import logging

import uvicorn

from pipeline.config import Settings
from pipeline.io.store.backends import open_store
from portal.app import Portal, build_app

log = logging.getLogger("mimamori.portal")


def server_config(portal: Portal, port: int, host: str = "0.0.0.0") -> uvicorn.Config:
    return uvicorn.Config(build_app(portal), host=host, port=port, loop="asyncio", http="httptools", lifespan="off",
                          log_config=None, access_log=False, server_header=False, timeout_keep_alive=30,
                          timeout_graceful_shutdown=10, proxy_headers=False)


def serve(settings: Settings, *, host: str = "0.0.0.0", secure_cookie: bool = False) -> None:
    store = open_store(settings.clickhouse)
    try:
        portal = Portal(settings, store)
        portal.secure_cookie = secure_cookie
        log.info("portal: http://%s:%d (store %s)", host, settings.portal_port, _shown(settings.clickhouse))
        uvicorn.Server(server_config(portal, settings.portal_port, host)).run()
    finally:
        store.close()


def _shown(url: str) -> str:
    """A store URL without its password."""
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
