import socket

import pytest

from tests.unit.conftest import NetworkInUnitTest


def test_a_unit_test_cannot_open_an_internet_socket() -> None:
    with pytest.raises(NetworkInUnitTest):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_local_socketpairs_still_work() -> None:
    left, right = socket.socketpair()
    left.sendall(b"x")
    assert right.recv(1) == b"x"
    left.close(); right.close()
