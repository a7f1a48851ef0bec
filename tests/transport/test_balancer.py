"""`transport.balancer`: a request goes only to a ready worker with room, and no further."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from zmqservice.transport.balancer import Balancer, Route
from zmqservice.transport.sockets import AddressUnavailable

WAIT_MS = 5000


class Rig:
    """A balancer for two workers, the workers' REP sockets and a way to drive it."""

    def __init__(self, tmp: Path, capacity: int = 1) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sockets: list[zmq.Socket[bytes]] = []
        route = Route("echo", "in.echo (replyer)", "tcp://127.0.0.1:0", capacity)
        self.balancer = Balancer(self.ctx, [route], 2, str(tmp))
        self.url = self.balancer.frontends["echo"]
        self.workers = [self.socket(zmq.REP) for _ in range(2)]
        for index, worker in enumerate(self.workers):
            worker.connect(self.balancer.endpoints(index)["echo"])

    def socket(self, kind: int) -> zmq.Socket[bytes]:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self.sockets.append(sock)
        return sock

    def client(self, body: bytes = b"req") -> zmq.Socket[bytes]:
        req = self.socket(zmq.REQ)
        req.connect(self.url)
        req.send(body)
        return req

    def run_until(self, done: object, seconds: float = WAIT_MS / 1000) -> None:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            self.balancer.poll(10)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        self.balancer.close()
        self.ctx.term()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


def readable(sock: zmq.Socket[bytes]) -> bool:
    return bool(sock.poll(0, zmq.POLLIN))


def test_only_a_ready_worker_gets_requests_and_one_at_a_time(rig: Rig) -> None:
    rig.balancer.up(0)
    first, second = rig.client(b"one"), rig.client(b"two")
    rig.run_until(lambda: rig.balancer.held == 1)
    rig.run_until(lambda: False, 0.2)  # time for a second request to go wrongly
    assert rig.balancer.held == 1
    assert rig.workers[0].poll(WAIT_MS) and not readable(rig.workers[1])
    got = rig.workers[0].recv()
    assert not readable(rig.workers[0])  # the other request waits in the parent
    rig.workers[0].send(got.upper())
    rig.run_until(lambda: readable(first) or readable(second))
    answered = first if readable(first) else second
    assert answered.recv() == got.upper()
    rig.run_until(lambda: readable(rig.workers[0]))
    assert rig.workers[0].recv() != got  # the other request, now that worker 0 is free


def test_ready_workers_take_turns(rig: Rig) -> None:
    rig.balancer.up(0)
    rig.balancer.up(1)
    served = []
    for n in range(4):
        req = rig.client(str(n).encode())
        rig.run_until(lambda: any(readable(w) for w in rig.workers))
        index = next(i for i, w in enumerate(rig.workers) if readable(w))
        rig.workers[index].send(rig.workers[index].recv())
        rig.run_until(lambda r=req: readable(r))
        assert req.recv() == str(n).encode()
        served.append(index)
    assert served == [0, 1, 0, 1]


def test_down_writes_off_what_the_dead_worker_held(rig: Rig) -> None:
    rig.balancer.up(0)
    rig.client()
    rig.run_until(lambda: rig.balancer.held == 1)
    assert rig.balancer.down(0) == 1
    assert rig.balancer.held == 0
    assert rig.balancer.down(0) == 0


def test_a_request_without_a_delimiter_is_answered_here(rig: Rig) -> None:
    rig.balancer.up(0)
    dealer = rig.socket(zmq.DEALER)
    dealer.connect(rig.url)
    dealer.send(b"no delimiter")
    rig.run_until(lambda: readable(dealer))
    parts = dealer.recv_multipart()
    assert parts[0] == b""
    error = msgpack.unpackb(parts[1])["error"]
    assert error["type"] == "DecodeError" and "delimiter" in error["message"]
    assert rig.balancer.held == 0 and not readable(rig.workers[0])


def test_stop_taking_leaves_new_requests_queued(rig: Rig) -> None:
    rig.balancer.up(0)
    rig.balancer.stop_taking()
    rig.client()
    rig.run_until(lambda: False, 0.2)
    assert rig.balancer.held == 0 and not readable(rig.workers[0])


def test_a_busy_frontend_is_address_unavailable(rig: Rig, tmp_path: Path) -> None:
    route = Route("echo", "in.echo (replyer)", rig.url)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        with pytest.raises(AddressUnavailable, match=r"cannot bind in\.echo \(replyer\) to"):
            Balancer(ctx, [route], 1, str(tmp_path / "other"))
    finally:
        ctx.term()
