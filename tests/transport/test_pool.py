"""What a concurrent replyer keeps of a ROUTER message: a bounded head, the rest dropped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq

from zmqservice.transport.pool import HEAD_FRAMES, head, split
from zmqservice.transport.sockets import discard_rest


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    router.bind("inproc://pool-head")
    dealer.connect("inproc://pool-head")
    try:
        yield router, dealer
    finally:
        router.close(linger=0)
        dealer.close(linger=0)
        ctx.term()


def test_head_keeps_a_bounded_number_of_frames_and_counts_the_rest(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    router, dealer = pair
    dealer.send_multipart([b"", *[b"x"] * 100_000])
    assert router.poll(10_000)
    parts, dropped = head(router)
    assert len(parts) == HEAD_FRAMES  # identity, delimiter, 30 body frames: never 100,002
    assert dropped == 100_002 - HEAD_FRAMES
    assert not router.getsockopt(zmq.RCVMORE)
    envelope, frame, error = split(parts, "in.echo (replyer)", dropped)
    assert envelope == parts[:2]
    assert frame is None and error is not None
    assert b"got a multipart message of 100000 frames" in error


def test_head_reads_a_plain_request_whole(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    router, dealer = pair
    dealer.send_multipart([b"", b"request"])
    assert router.poll(10_000)
    parts, dropped = head(router)
    assert (parts[1:], dropped) == ([b"", b"request"], 0)
    assert split(parts, "x", dropped) == ([parts[0], b""], b"request", None)


def test_discard_rest_counts_the_frames_it_drops(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    router, dealer = pair
    dealer.send_multipart([b"a", b"b", b"c"])
    assert router.poll(10_000)
    router.recv()  # the identity
    assert discard_rest(router) == 3
    assert not router.getsockopt(zmq.RCVMORE)
