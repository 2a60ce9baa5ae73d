"""The Faust shell leaves nothing on disk: it keeps no table, so it needs no data directory."""
from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from agents.runtime.shell import make_app
from pipeline.config import Settings


def test_starting_the_shell_makes_no_data_directory() -> None:
    app_id = f"probe-{uuid.uuid4().hex[:8]}"
    app = make_app(Settings(), app_id)
    asyncio.run(app.on_first_start())  # where Faust makes its data, app and table directories
    assert not (Path(tempfile.gettempdir()) / f"{app_id}-faust-data").exists()
