"""The wire format against raw pyzmq + msgpack peers, as the predecessor would speak it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack
import pytest
import zmq

from zmqservice import App

from .conftest import Runner, pack, recv_frame, unpack, wait_for

Sock = Callable[[int], zmq.Socket[bytes]]


def test_raw_request_gets_plain_reply(runner: Runner, zsock: Sock) -> None:
    app = App("adder")

    @app.replyer(
        "add", args={"a": int, "b": int}, returns={"sum": int}, address="tcp://127.0.0.1:0"
    )
    def add(args: dict[str, int]) -> dict[str, int]:
        return {"sum": args["a"] + args["b"]}

    runner.serve(app)
    req = zsock(zmq.REQ)
    req.connect(app.endpoints["add"])

    req.send(msgpack.packb({"args": {"a": 1, "b": 2}, "workflow_id": "w"}, use_bin_type=True))
    reply = msgpack.unpackb(recv_frame(req), raw=False)

    assert reply == {"return_args": {"sum": 3}, "workflow_id": "w"}


def test_markers_on_the_wire_both_ways(
    runner: Runner, zsock: Sock, ipc: Callable[[str], str]
) -> None:
    seen: list[dict[str, Any]] = []
    app = App("markers")

    @app.replyer(
        "convert",
        args={"amount": Decimal, "id": UUID, "tags": {str}},
        returns={"doubled": Decimal, "id": UUID, "tags": {str}},
        address=ipc("markers"),
    )
    def convert(args: dict[str, Any]) -> dict[str, Any]:
        seen.append(args)
        return {"doubled": args["amount"] * 2, "id": args["id"], "tags": args["tags"]}

    runner.serve(app)
    req = zsock(zmq.REQ)
    req.connect(app.endpoints["convert"])
    uid = "12345678-1234-5678-1234-567812345678"
    args = {
        "amount": {"__decimal__": True, "as_str": "1.50"},
        "id": {"__uuid__": True, "as_str": uid},
        "tags": {"__set__": True, "value": ["x"]},
    }

    req.send(pack({"args": args, "workflow_id": "w-markers"}))
    reply = unpack(recv_frame(req))

    assert seen == [{"amount": Decimal("1.50"), "id": UUID(uid), "tags": {"x"}}]
    assert reply == {
        "return_args": {
            "doubled": {"__decimal__": True, "as_str": "3.00"},
            "id": {"__uuid__": True, "as_str": uid},
            "tags": {"__set__": True, "value": ["x"]},
        },
        "workflow_id": "w-markers",
    }


def test_uuid_marker_workflow_id_is_used_as_a_string(
    runner: Runner, zsock: Sock, ipc: Callable[[str], str]
) -> None:
    app = App("echo")

    @app.replyer("echo", address=ipc("echo"))
    def echo(args: Any) -> Any:
        return args

    runner.serve(app)
    req = zsock(zmq.REQ)
    req.connect(app.endpoints["echo"])
    uid = "0b6e4d1c-52e8-4c55-9a43-d0f3a1f2b7aa"

    req.send(pack({"args": [1, "two"], "workflow_id": {"__uuid__": True, "as_str": uid}}))

    assert unpack(recv_frame(req)) == {"return_args": [1, "two"], "workflow_id": uid}


@pytest.mark.parametrize("topic", ["", "prices"])
def test_raw_sub_hears_a_zmqservice_publisher(runner: Runner, zsock: Sock, topic: str) -> None:
    app = App("speaker")
    app.publisher(
        "prices", args={"symbol": str, "price": Decimal}, topic=topic, address="tcp://127.0.0.1:0"
    )
    runner.serve(app)
    sub = zsock(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, msgpack.packb(topic) if topic else b"")
    sub.connect(app.endpoints["prices"])

    frame = b""
    for _ in range(200):  # PUB drops messages until the subscription has arrived
        app.send("prices", {"symbol": "BTC", "price": Decimal("1.5")})
        if sub.poll(50, zmq.POLLIN):
            frame = sub.recv()
            break
    assert frame, "the raw SUB never heard the publisher"

    prefix = msgpack.packb(topic) if topic else b""
    assert frame.startswith(prefix)
    envelope = unpack(frame[len(prefix) :])
    assert set(envelope) == {"args", "workflow_id", "seq", "pub"}  # see docs/reliability.md
    assert isinstance(envelope["seq"], int)
    assert isinstance(envelope["pub"], str)
    assert envelope["args"] == {"symbol": "BTC", "price": {"__decimal__": True, "as_str": "1.5"}}
    assert isinstance(envelope["workflow_id"], str)
    assert envelope["workflow_id"]
    assert frame == prefix + pack(envelope)


def test_zmqservice_subscriber_filters_a_raw_publisher(runner: Runner, zsock: Sock) -> None:
    received: list[int] = []
    lock = threading.Lock()
    pub = zsock(zmq.PUB)
    pub.bind("tcp://127.0.0.1:0")
    endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
    app = App("listener")

    @app.subscriber("fills", args={"n": int}, topic="fills", address=endpoint)
    def on_fill(args: dict[str, int]) -> None:
        with lock:
            received.append(args["n"])

    runner.serve(app)

    def publish(topic: str, n: int) -> None:
        pub.send(pack(topic) + pack({"args": {"n": n}, "workflow_id": f"w{n}"}))

    def snapshot() -> list[int]:
        with lock:
            return list(received)

    for _ in range(200):
        publish("fills", 0)
        if wait_for(snapshot, timeout=0.05):
            break
    assert snapshot(), "the subscriber never heard the raw publisher"

    # One PUB socket and one connection: order holds, so "orders" frames were sent
    # while the subscription was live, and filtering is what keeps them out.
    for n in range(1, 6):
        publish("orders", -n)
        publish("fill", -n)  # a prefix of the topic string is a different topic on the wire
        publish("fills", n)
    assert wait_for(lambda: snapshot()[-1] == 5)

    assert [n for n in snapshot() if n != 0] == [1, 2, 3, 4, 5]


def test_unfiltered_subscriber_accepts_raw_frames_with_or_without_topic(
    runner: Runner, zsock: Sock
) -> None:
    received: list[Any] = []
    lock = threading.Lock()
    pub = zsock(zmq.PUB)
    pub.bind("tcp://127.0.0.1:0")
    endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
    app = App("listener")

    @app.subscriber("any", address=endpoint)
    def on_any(args: Any) -> None:
        with lock:
            received.append(args)

    runner.serve(app)

    def snapshot() -> list[Any]:
        with lock:
            return list(received)

    for _ in range(200):
        pub.send(pack({"args": "probe", "workflow_id": "p"}))
        if wait_for(snapshot, timeout=0.05):
            break
    assert snapshot(), "the subscriber never heard the raw publisher"

    pub.send(pack({"args": {"plain": 1}, "workflow_id": "w1"}))
    pub.send(pack("sometopic") + pack({"args": {"topical": 2}, "workflow_id": "w2"}))
    pub.send(b"\xc1 garbage is dropped")
    pub.send(pack({"args": "last", "workflow_id": "w3"}))
    assert wait_for(lambda: snapshot()[-1] == "last")

    assert [item for item in snapshot() if item != "probe"] == [
        {"plain": 1},
        {"topical": 2},
        "last",
    ]


def test_replyer_that_connects_answers_a_bound_dealer(runner: Runner, zsock: Sock) -> None:
    """``bind=False`` is how a replyer sits behind a ROUTER/DEALER proxy."""
    dealer = zsock(zmq.DEALER)
    dealer.bind("tcp://127.0.0.1:0")
    endpoint = dealer.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
    app = App("worker")

    @app.replyer("work", bind=False, address=endpoint)
    def work(args: Any) -> Any:
        return {"done": args}

    runner.serve(app)
    assert app.endpoints["work"] == endpoint

    for n in range(3):
        dealer.send_multipart([b"", pack({"args": n, "workflow_id": f"d{n}"})])
        assert dealer.poll(10_000, zmq.POLLIN), "no reply through the dealer"
        empty, frame = dealer.recv_multipart()
        assert empty == b""
        assert unpack(frame) == {"return_args": {"done": n}, "workflow_id": f"d{n}"}
