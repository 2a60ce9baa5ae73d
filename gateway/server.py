"""Serving the gateway with uvicorn (HTTPS when a certificate and key are given)."""
from __future__ import annotations

import logging

import uvicorn

from gateway.app import Gateway, build_app
from pipeline.config import Settings

log = logging.getLogger("mimamori.gateway")


def server_config(settings: Settings, gateway: Gateway, *, host: str = "0.0.0.0") -> uvicorn.Config:
    tls = {}
    if settings.gateway_tls_cert and settings.gateway_tls_key:
        tls = {"ssl_certfile": str(settings.gateway_tls_cert), "ssl_keyfile": str(settings.gateway_tls_key)}
    return uvicorn.Config(
        build_app(gateway), host=host, port=settings.gateway_port, loop="asyncio", http="httptools",
        lifespan="on", log_config=None, access_log=False, server_header=False, timeout_keep_alive=30,
        timeout_graceful_shutdown=30, **tls)


def serve(settings: Settings, *, host: str = "0.0.0.0") -> None:
    gateway = Gateway(settings)
    config = server_config(settings, gateway, host=host)
    scheme = "https" if config.ssl_certfile else "http"
    if scheme == "http":
        log.warning("gateway: no MIMAMORI_GATEWAY_TLS_CERT/KEY: serving plain HTTP (only behind a TLS-terminating "
                    "proxy or ingress)")
    log.info("gateway: %s://%s:%d", scheme, host, settings.gateway_port)
    uvicorn.Server(config).run()
