"""Unit tests run without any service: opening an internet socket fails the test loudly."""
from __future__ import annotations

import socket

import pytest


class NetworkInUnitTest(RuntimeError):
    pass


_INET = (socket.AF_INET, socket.AF_INET6)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    original = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex", "bind")}
    for name in original:
        def guard(self: socket.socket, *args: object, _name: str = name, **kwargs: object) -> object:
            if self.family in _INET:
                raise NetworkInUnitTest(
                    f"unit test called socket.{_name}({args[0] if args else ''}); move it to tests/integration"
                )
            return original[_name](self, *args, **kwargs)
        monkeypatch.setattr(socket.socket, name, guard)
