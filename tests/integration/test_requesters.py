"""`requesters.request_once`, behind ``zmqservice call`` and ``describe``, over real sockets."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import zmq

from zmqservice import RequestTimeout
from zmqservice.transport.requesters import request_once

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
