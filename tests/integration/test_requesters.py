"""`oneshot.request_once`, behind ``zmqservice call`` and ``describe``, over real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import zmq

from zmqservice import RequestTimeout
from zmqservice.transport.oneshot import request_once
from zmqservice.transport.requesters import AsyncRequesters, Requester

from .conftest import WAIT_S, pack

Make = Callable[[int], zmq.Socket[bytes]]


def test_request_once_skips_a_reply_that_names_another_request(
    zsock: Make, ipc: Callable[[str], str]
) -> None:
    router = zsock(zmq.ROUTER)
    router.bind(ipc("once"))
    got: list[tuple[bytes, bytes]] = []

    def answer() -> None:
        if router.poll(int(WAIT_S * 1000)):
            identity, delimiter, frame = router.recv_multipart()
            got.append((delimiter, frame))  # REQ's envelope
            router.send_multipart([identity, b"", pack({"return_args": 0, "workflow_id": "old"})])
            router.send_multipart([identity, b"", pack({"return_args": 1, "workflow_id": "W"})])

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    frame = pack({"args": None, "workflow_id": "W"})
    assert request_once(ipc("once"), frame, WAIT_S, "W") == pack(
        {"return_args": 1, "workflow_id": "W"}
    )
    thread.join(WAIT_S)
    assert got == [(b"", frame)]


def test_request_once_times_out_with_the_clis_message(
    zsock: Make, ipc: Callable[[str], str]
) -> None:
    silent = zsock(zmq.REP)
    silent.bind(ipc("silent"))
    with pytest.raises(RequestTimeout, match=r"^no reply from ipc://.*silent\.ipc within 0\.2s$"):
        request_once(ipc("silent"), pack({"args": None, "workflow_id": "W"}), 0.2)


def _no_peer(zsock: Make, ipc: Callable[[str], str]) -> zmq.Socket[bytes]:
    """A DEALER that has no pipe to queue a message on: with ZMQ_IMMEDIATE, a connection
    that never completes (nobody binds here) gives it none, as a refused handshake does."""
    sock = zsock(zmq.DEALER)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.connect(ipc("nobody"))
    return sock


def test_a_sync_try_ends_at_its_deadline_when_nothing_can_be_sent(
    zsock: Make, ipc: Callable[[str], str]
) -> None:
    requester = Requester(_no_peer(zsock, ipc), "out.x (requester)")
    result: list[bytes | None] = []
    thread = threading.Thread(
        target=lambda: result.append(requester.ask(b"frame", "W", 50)), daemon=True
    )
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive(), "the send blocked past the try's deadline"
    assert result == [None]


def test_an_async_try_ends_at_its_deadline_when_nothing_can_be_sent(
    ipc: Callable[[str], str],
) -> None:
    import asyncio

    import zmq.asyncio

    async def ask() -> bytes | None:
        context = zmq.asyncio.Context()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.connect(ipc("nobody"))
        try:
            return await asyncio.wait_for(
                AsyncRequesters.ask(sock, b"frame", "W", 50, "out.x (requester)"), WAIT_S
            )
        finally:
            sock.close(linger=0)
            context.term()

    assert asyncio.run(ask()) is None


def _reply(workflow_id: str) -> bytes:
    return pack({"return_args": workflow_id, "workflow_id": workflow_id})


@pytest.mark.parametrize("lone", [1, 2, 3])
def test_lone_empty_frames_before_the_reply_do_not_poison_the_call(
    zsock: Make, ipc: Callable[[str], str], lone: int
) -> None:
    """A peer sends lone empty frames, then REP's envelope: both already queued when the
    call reads. The empty frames are not a delimiter; the reply after them is the answer
    (the call returned b"" and the caller raised DecodeError)."""
    router = zsock(zmq.ROUTER)
    router.bind(ipc("stray"))
    dealer = zsock(zmq.DEALER)
    dealer.connect(ipc("stray"))
    dealer.send_multipart([b"", pack({"args": None, "workflow_id": "W_1"})])
    assert router.poll(int(WAIT_S * 1000)), "the peer never got the first request"
    identity = router.recv_multipart()[0]
    for _ in range(lone):
        router.send_multipart([identity, b""])
    router.send_multipart([identity, b"", _reply("W_2")])  # early: the next call's reply
    assert dealer.poll(int(WAIT_S * 1000)), "nothing reached the requester"
    time.sleep(0.2)  # let the reply land behind the empty frames: the case that failed

    requester = Requester(dealer, "out.x (requester)")
    frame = pack({"args": None, "workflow_id": "W_2"})
    assert requester.ask(frame, "W_2", int(WAIT_S * 1000)) == _reply("W_2")

    router.send_multipart([identity, b"", _reply("W_3")])
    frame = pack({"args": None, "workflow_id": "W_3"})
    assert requester.ask(frame, "W_3", int(WAIT_S * 1000)) == _reply("W_3")
