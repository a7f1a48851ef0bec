"""Replyers with ``concurrency=K`` over real sockets: overlap, routing, errors, shutdown."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from zmqservice import App

from .conftest import WAIT_S, Runner, Spawner, pack, recv_frame, unpack, wait_for

Make = Callable[[int], zmq.Socket[bytes]]


class Gauge:
    """How many handlers run at once, and the most that ever did."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.started = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.started += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


def sleeper_app(
    concurrency: int,
    delay: float,
    gauge: Gauge | None = None,
    barrier: threading.Barrier | None = None,
) -> App:
    """`echo` sleeps `delay`; with a `barrier`, each handler first waits for all the others."""
    app = App("sleeper")
    seen = gauge or Gauge()

    @app.replyer(
        "echo",
        args={"value": int},
        returns={"value": int},
        address="tcp://127.0.0.1:0",
        concurrency=concurrency,
    )
    def echo(args: dict[str, int]) -> dict[str, int]:
        seen.enter()
        try:
            if barrier is not None:
                barrier.wait()  # raises BrokenBarrierError unless all parties get here
            time.sleep(delay)
            if args["value"] < 0:
                raise RuntimeError(f"negative: {args['value']}")
            return {"value": args["value"]}
        finally:
            seen.leave()

    return app


def request_all(zsock: Make, endpoint: str, values: list[int]) -> list[Any]:
    """Send one request per value, each from its own thread and REQ socket; the replies."""
    sockets = [zsock(zmq.REQ) for _ in values]
    for sock in sockets:
        sock.connect(endpoint)
    replies: list[Any] = [None] * len(values)

    def call(i: int) -> None:
        sockets[i].send(pack({"args": {"value": values[i]}, "workflow_id": f"wf-{i}"}))
        replies[i] = unpack(recv_frame(sockets[i]))

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(values))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in threads), "a requester got no reply"
    return replies


def test_sixteen_requests_overlap_with_concurrency_16(runner: Runner, zsock: Make) -> None:
    """All 16 handlers must be inside at once to pass the barrier: served one after the
    other, the first would wait for the rest until the barrier's timeout broke it."""
    gauge = Gauge()
    barrier = threading.Barrier(16, timeout=WAIT_S)
    app = runner.serve(sleeper_app(16, 0.0, gauge, barrier))
    replies = request_all(zsock, app.endpoints["echo"], list(range(16)))
    assert [r.get("error") for r in replies] == [None] * 16
    assert [r["return_args"]["value"] for r in replies] == list(range(16))
    assert [r["workflow_id"] for r in replies] == [f"wf-{i}" for i in range(16)]
    assert gauge.most == 16


def test_concurrency_1_serves_one_at_a_time(runner: Runner, zsock: Make) -> None:
    gauge = Gauge()
    app = runner.serve(sleeper_app(1, 0.01, gauge))
    replies = request_all(zsock, app.endpoints["echo"], list(range(16)))
    assert [r["return_args"]["value"] for r in replies] == list(range(16))
    assert gauge.most == 1
    assert gauge.started == 16


def test_at_most_k_requests_in_flight(runner: Runner, zsock: Make) -> None:
    gauge = Gauge()
    app = runner.serve(sleeper_app(3, 0.05, gauge))
    replies = request_all(zsock, app.endpoints["echo"], list(range(12)))
    assert [r["return_args"]["value"] for r in replies] == list(range(12))
    assert gauge.most == 3


def test_handler_exception_gives_a_handler_error(runner: Runner, zsock: Make) -> None:
    app = runner.serve(sleeper_app(4, 0.0))
    bad, good = request_all(zsock, app.endpoints["echo"], [-5, 7])
    assert bad["error"]["type"] == "HandlerError"
    assert "negative: -5" in bad["error"]["message"]
    assert bad["workflow_id"] == "wf-0"
    assert good["return_args"] == {"value": 7}


def test_stop_delivers_requests_in_flight(zsock: Make) -> None:
    gauge = Gauge()
    app = sleeper_app(4, 0.3, gauge)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        assert app.wait_ready(WAIT_S)
        endpoint = app.endpoints["echo"]
        replies: list[Any] = []
        caller = threading.Thread(
            target=lambda: replies.extend(request_all(zsock, endpoint, [1, 2, 3, 4])),
            daemon=True,
        )
        caller.start()
        assert wait_for(lambda: gauge.started == 4)
        app.stop()
        caller.join(WAIT_S)
        assert not caller.is_alive()
        assert [r["return_args"]["value"] for r in replies] == [1, 2, 3, 4]
    finally:
        app.stop()
        thread.join(WAIT_S)
    assert not thread.is_alive()


def test_dealer_peer_gets_error_replies_for_bad_frames(runner: Runner, zsock: Make) -> None:
    app = runner.serve(sleeper_app(4, 0.0))
    dealer = zsock(zmq.DEALER)
    dealer.connect(app.endpoints["echo"])
    dealer.send_multipart([b"", b"one", b"two"])  # two frames after the delimiter
    assert recv_frame(dealer) == b""
    error = unpack(recv_frame(dealer))["error"]
    assert error["type"] == "DecodeError"
    assert "2 frames" in error["message"]
    dealer.send(pack({"args": {"value": 1}, "workflow_id": "x"}))  # no delimiter
    assert recv_frame(dealer) == b""
    assert "delimiter" in unpack(recv_frame(dealer))["error"]["message"]
    dealer.send_multipart([b"", b"\xc1not msgpack"])
    assert recv_frame(dealer) == b""
    assert unpack(recv_frame(dealer))["error"]["type"] == "DecodeError"
    dealer.send_multipart([b"", pack({"args": {"value": 9}, "workflow_id": "ok"})])
    assert recv_frame(dealer) == b""
    assert unpack(recv_frame(dealer))["return_args"] == {"value": 9}


def test_concurrent_and_plain_replyers_in_one_app(runner: Runner, zsock: Make) -> None:
    app = App("mixed")

    @app.replyer("fast", args={"value": int}, returns={"value": int}, address="tcp://127.0.0.1:0")
    def fast(args: dict[str, int]) -> dict[str, int]:
        return {"value": args["value"] + 1}

    @app.replyer(
        "slow",
        args={"value": int},
        returns={"value": int},
        address="tcp://127.0.0.1:0",
        concurrency=2,
    )
    def slow(args: dict[str, int]) -> dict[str, int]:
        time.sleep(0.05)
        return {"value": args["value"] * 2}

    runner.serve(app)
    assert [
        r["return_args"]["value"] for r in request_all(zsock, app.endpoints["fast"], [1, 2])
    ] == [2, 3]
    assert [
        r["return_args"]["value"] for r in request_all(zsock, app.endpoints["slow"], [1, 2])
    ] == [2, 4]


def test_a_plain_replyer_next_to_a_concurrent_one_refuses_multipart_in_the_same_words(
    runner: Runner, zsock: Make
) -> None:
    app = App("mixed")

    @app.replyer("plain", address="tcp://127.0.0.1:0")
    def plain(args: Any) -> Any:
        return args

    @app.replyer("pooled", address="tcp://127.0.0.1:0", concurrency=2)
    def pooled(args: Any) -> Any:
        return args

    runner.serve(app)
    messages = []
    for name in ("plain", "pooled"):
        req = zsock(zmq.REQ)
        req.connect(app.endpoints[name])
        req.send_multipart([b"one", b"two", b"three"])
        messages.append(unpack(recv_frame(req))["error"]["message"])
    assert messages == [
        f"in.{name} (replyer): a request is one frame, got a multipart message of 3 frames"
        for name in ("plain", "pooled")
    ]


SERVICE = """
    import time
    from pathlib import Path
    from zmqservice import App

    app = App("slowsvc")
    MARKS = Path(__file__).parent / "marks"

    @app.replyer("echo", args={"value": int}, returns={"value": int}, concurrency=4)
    def echo(args):
        (MARKS / str(args["value"])).touch()
        time.sleep(0.5)
        return args
"""


def test_sigterm_delivers_requests_in_flight(
    spawn: Spawner, write: Callable[[str, Any], Path], ipc: Callable[[str], str], zsock: Make
) -> None:
    service = write("slowsvc.py", SERVICE)
    marks = service.parent / "marks"
    marks.mkdir()
    endpoint = ipc("slow")
    addresses = write("addresses.json", {"in": {"echo": {"replyer": endpoint}}})
    child = spawn.start("run", str(service), "-a", str(addresses))
    replies: list[Any] = []
    caller = threading.Thread(
        target=lambda: replies.extend(request_all(zsock, endpoint, [1, 2, 3])), daemon=True
    )
    caller.start()
    try:
        assert wait_for(lambda: len(list(marks.iterdir())) == 3, timeout=20), child.stderr()
        child.signal(signal.SIGTERM)
        assert child.wait() == 0, child.stderr()
    finally:
        caller.join(WAIT_S)
    assert not caller.is_alive()
    assert [r["return_args"]["value"] for r in replies] == [1, 2, 3]
