"""Marks each test by its tier: tests/unit -> unit, tests/integration -> integration; the slow
integration modules first."""
from __future__ import annotations

from pathlib import Path

import pytest


SLOWEST_FIRST = ("test_kill_loop.py", "test_workers.py", "test_mail_delivery.py", "test_gateway_outage.py",
                 "test_mail_isolation.py", "test_pause.py", "test_kafka_sasl_ssl.py", "test_report_delivery.py",
                 "test_slow_restore.py", "test_notices_flow.py", "test_maintenance_window_flow.py")
"""Integration modules that take minutes, longest first: a distributed run (make test: pytest-xdist
with --no-loadscope-reorder) starts them first, so none of them is left running alone at the end.
Then the other integration modules, then the unit tests, each in the order of their files."""


def _rank(item: pytest.Item) -> tuple[int, int]:
    parts = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts
    if parts[0] != "integration":
        return (2, 0)
    name = parts[-1]
    return (0, SLOWEST_FIRST.index(name)) if name in SLOWEST_FIRST else (1, 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
        if tier in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, tier))
    items.sort(key=_rank)  # stable: within a rank, the order of collection
