"""`transport.sockets.bind`: an ipc path a live socket listens on is refused, as tcp is."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from zmqservice.transport.sockets import bind


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose ipc paths fit in sun_path (~107 bytes)."""
    if len(str(tmp_path)) < 80:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(prefix="zsk") as name:
        yield Path(name)


@pytest.fixture
def sockets() -> Iterator[Callable[[int], zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    made: list[zmq.Socket[bytes]] = []

    def make(kind: int) -> zmq.Socket[bytes]:
        sock = ctx.socket(kind)
        made.append(sock)
        return sock

    try:
        yield make
    finally:
        for sock in made:
            sock.close(linger=0)
        ctx.term()


def test_a_live_ipc_path_is_address_in_use(
    short_dir: Path, sockets: Callable[[int], zmq.Socket[bytes]]
) -> None:
    url = f"ipc://{short_dir}/live.ipc"
    first = sockets(zmq.REP)
    bind(first, url)

    with pytest.raises(zmq.ZMQError) as info:
        bind(sockets(zmq.REP), url)

    assert info.value.errno == errno.EADDRINUSE
    assert info.value.strerror == "Address already in use"
    # the first socket still owns the path: a client reaches it
    client = sockets(zmq.REQ)
    client.connect(url)
    client.send(b"ping")
    assert first.poll(5000, zmq.POLLIN)
    assert first.recv() == b"ping"


def test_a_stale_ipc_socket_file_is_taken_over(
    short_dir: Path, sockets: Callable[[int], zmq.Socket[bytes]]
) -> None:
    path = short_dir / "stale.ipc"
    script = f"import os, zmq; zmq.Context().socket(zmq.REP).bind('ipc://{path}'); os._exit(0)"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert path.is_socket()  # left behind by a process that died

    bind(sockets(zmq.REP), f"ipc://{path}")


def test_a_plain_file_at_an_ipc_path_is_not_replaced(
    short_dir: Path, sockets: Callable[[int], zmq.Socket[bytes]]
) -> None:
    path = short_dir / "notes.ipc"
    path.write_text("precious", encoding="utf-8")

    with pytest.raises(zmq.ZMQError) as info:
        bind(sockets(zmq.REP), f"ipc://{path}")

    assert info.value.errno == errno.EEXIST
    assert path.read_text(encoding="utf-8") == "precious"


def test_any_unix_listener_counts(
    short_dir: Path, sockets: Callable[[int], zmq.Socket[bytes]]
) -> None:
    path = short_dir / "plain.ipc"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        with pytest.raises(zmq.ZMQError, match="Address already in use"):
            bind(sockets(zmq.REP), f"ipc://{path}")


def test_tcp_and_inproc_bind_as_before(sockets: Callable[[int], zmq.Socket[bytes]]) -> None:
    bind(sockets(zmq.REP), "tcp://127.0.0.1:0")
    bind(sockets(zmq.REP), "inproc://zmqservice-test-sockets")
