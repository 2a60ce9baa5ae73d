"""Builds the whole worker: the Faust app with every agent, table and timer registered."""
from __future__ import annotations

import faust

from agents.app import make_app
from pipeline.config import Settings


def build_app(settings: Settings, app_id: str = "mimamori") -> faust.App:
    app = make_app(settings, app_id, web=True)
    app.finalize()
    return app
