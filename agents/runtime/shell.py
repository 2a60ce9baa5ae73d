"""The Faust application factory. No module-level app: each worker or test builds its own,
on its own event loop, from the settings it was given.

Faust is the application shell only: the services' lifecycle (start in order, stop on a signal),
the timers and the web server of `/metrics` and `/health`. It runs no Kafka client of its own: no
consumer group, no leader topic, no producer, no tables (the processors, the follower and the
publisher are our own aiokafka clients, see agents/runtime/processor.py), and none of its built-in pages
(`/router`, `/table`, `/`, statistics)."""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.web.drivers.aiohttp import Web

from pipeline.config import Settings


class _ShellBoot(BootStrategy):
    """Sensors, the web server and the (empty) agent manager: nothing that talks to Kafka."""

    enable_kafka = False


class _ShellWeb(Web):
    """The web server with only the pages the worker adds (`app.page`)."""

    default_blueprints: Any = []
    production_blueprints: Any = []
    debug_blueprints: Any = []
    optional_blueprints: Any = []


class ShellApp(faust.App):
    BootStrategy = _ShellBoot

    def _new_web(self) -> Web:
        return _ShellWeb(self)

    def _create_directories(self) -> None:
        """None: Faust's data directories hold its tables' stores, and the shell has no table (each
        worker and test made an empty `<id>-faust-data` that nothing removed)."""


def make_app(settings: Settings, app_id: str = "mimamori", *, web: bool = False) -> faust.App:
    """A bare Faust shell; `agents.worker` adds the processors, timers and pages."""
    return ShellApp(
        app_id,
        web_enabled=web,
        web_port=settings.web_port,
        web_bind="0.0.0.0",
        timezone=settings.tz,
        # never made (no table); named under the temp directory, not the working one, all the same
        datadir=str(Path(tempfile.gettempdir()) / f"{app_id}-faust-data"),
    )


class Worker(faust.Worker):
    """Faust's worker (mode's): runs the app until a signal, then stops its services in order."""

    async def _sentinel_task(self) -> None:
        """mode's worker ran the event loop one more second after every service had stopped and
        every task was gathered, before it closed the loop: each stop of a worker took a second
        longer than its work (~100 stops in the test suite, and every rolling restart). One turn of
        the loop runs the callbacks the stops scheduled (transports' close) all the same."""
        await asyncio.sleep(0)
