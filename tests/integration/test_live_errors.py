"""Error replies over a real REP socket, what requesters raise, and requester timeouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import zmq

from zmqservice import App, RemoteError, RequestTimeout, ValidationError
from zmqservice.errors import RemoteValidationError

from .conftest import Runner, pack, recv_frame, unpack

VALID = {"args": {"a": 7, "b": 2}, "workflow_id": "ok-1"}
VALID_REPLY = {"return_args": {"q": 3}, "workflow_id": "ok-1"}


def divider_app(address: str, calls: list[Any] | None = None) -> App:
    app = App("divider")

    @app.replyer("div", args={"a": int, "b": int}, returns={"q": int}, address=address)
    def div(args: dict[str, int]) -> dict[str, Any]:
        if calls is not None:
            calls.append(args)
        if args["a"] == 99:
            return {"q": "ninety-nine"}  # breaks the returns model
        return {"q": args["a"] // args["b"]}  # b == 0 raises ZeroDivisionError

    return app


@pytest.fixture
def divider(runner: Runner) -> App:
    return runner.serve(divider_app("tcp://127.0.0.1:0"))


@pytest.fixture
def raw_req(zsock: Callable[[int], zmq.Socket[bytes]], divider: App) -> zmq.Socket[bytes]:
    sock = zsock(zmq.REQ)
    sock.connect(divider.endpoints["div"])
    return sock


def ask(sock: zmq.Socket[bytes], frame: bytes) -> Any:
    sock.send(frame)
    return unpack(recv_frame(sock))


BAD_REQUESTS: list[tuple[str, bytes, str, str, list[str]]] = [
    ("bad bytes", b"\xc1\xc1 definitely not msgpack", "DecodeError", "", ["msgpack"]),
    ("truncated msgpack", pack({"args": {"a": 1}})[:-3], "DecodeError", "", ["msgpack"]),
    ("list envelope", pack([1, 2, 3]), "DecodeError", "", ["envelope"]),
    ("no args key", pack({"workflow_id": "w"}), "DecodeError", "", ["envelope"]),
    (
        "int workflow_id",
        pack({"args": {"a": 7, "b": 2}, "workflow_id": 5}),
        "DecodeError",
        "",
        ["workflow_id"],
    ),
    (
        "wrong arg type",
        pack({"args": {"a": "7", "b": 2}, "workflow_id": "w-type"}),
        "ValidationError",
        "w-type",
        ["div", "a", "int"],
    ),
    (
        "missing arg",
        pack({"args": {"a": 7}, "workflow_id": "w-missing"}),
        "ValidationError",
        "w-missing",
        ["div", "b"],
    ),
    (
        "unknown arg",
        pack({"args": {"a": 7, "b": 1, "c": 0}, "workflow_id": "w-extra"}),
        "ValidationError",
        "w-extra",
        ["div", "c"],
    ),
    (
        "handler raises",
        pack({"args": {"a": 1, "b": 0}, "workflow_id": "w-zero"}),
        "HandlerError",
        "w-zero",
        ["ZeroDivisionError"],
    ),
    (
        "invalid return value",
        pack({"args": {"a": 99, "b": 1}, "workflow_id": "w-ret"}),
        "ValidationError",
        "w-ret",
        ["div", "return", "q", "int"],
    ),
]


@pytest.mark.parametrize(
    ("frame", "error_type", "workflow_id", "words"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_error_reply_then_service_keeps_serving(
    raw_req: zmq.Socket[bytes], frame: bytes, error_type: str, workflow_id: str, words: list[str]
) -> None:
    reply = ask(raw_req, frame)

    assert set(reply) == {"return_args", "workflow_id", "error"}
    assert reply["return_args"] is None
    assert reply["workflow_id"] == workflow_id
    assert reply["error"]["type"] == error_type
    message = reply["error"]["message"]
    assert isinstance(message, str)
    for word in words:
        assert word in message
    assert ask(raw_req, pack(VALID)) == VALID_REPLY


def test_many_bad_messages_in_a_row_do_not_stop_the_service(raw_req: zmq.Socket[bytes]) -> None:
    for _, frame, error_type, _, _ in BAD_REQUESTS * 3:
        assert ask(raw_req, frame)["error"]["type"] == error_type
    assert ask(raw_req, pack(VALID)) == VALID_REPLY


@pytest.mark.parametrize("with_subscriber", [False, True], ids=["alone", "with a subscriber"])
def test_multipart_request_does_not_stop_the_service(
    runner: Runner, zsock: Callable[[int], zmq.Socket[bytes]], with_subscriber: bool
) -> None:
    app = divider_app("tcp://127.0.0.1:0")
    if with_subscriber:  # two in-connections: the poller loop instead of the single-socket one

        @app.subscriber("ignored", address="tcp://127.0.0.1:0", bind=True)
        def ignored(args: Any) -> None:
            pass

    runner.serve(app)
    req = zsock(zmq.REQ)
    req.connect(app.endpoints["div"])

    req.send_multipart([pack(VALID), b"an extra frame", b"and another"])
    first = unpack(recv_frame(req))

    # A request is one frame: a multipart one is refused whole, its handler never called.
    assert first["error"]["type"] == "DecodeError"
    assert "multipart message of 3 frames" in first["error"]["message"]
    assert ask(req, pack(VALID)) == VALID_REPLY


# -- what a zmqservice requester raises -----------------------------------------------------


@pytest.fixture
def loose_client(runner: Runner, divider: App) -> App:
    """A requester with no models, so bad args reach the replyer."""
    client = App("client")
    client.requester("div", address=divider.endpoints["div"], timeout=5.0)
    return runner.serve(client)


def test_requester_raises_remote_validation_error_for_bad_args(loose_client: App) -> None:
    with pytest.raises(ValidationError) as caught:
        loose_client.send("div", {"a": "7", "b": 2})

    assert isinstance(caught.value, RemoteError)
    assert caught.value.type == "ValidationError"
    assert "a" in caught.value.message
    assert loose_client.send("div", {"a": 7, "b": 2}) == {"q": 3}


def test_requester_raises_remote_error_for_handler_exception(loose_client: App) -> None:
    with pytest.raises(RemoteError) as caught:
        loose_client.send("div", {"a": 1, "b": 0})

    assert not isinstance(caught.value, ValidationError)
    assert caught.value.type == "HandlerError"
    assert "ZeroDivisionError" in caught.value.message
    assert loose_client.send("div", {"a": 9, "b": 3}) == {"q": 3}


def test_requester_raises_remote_validation_error_for_bad_return(loose_client: App) -> None:
    with pytest.raises(RemoteValidationError) as caught:
        loose_client.send("div", {"a": 99, "b": 1})

    assert caught.value.type == "ValidationError"
    assert "q" in caught.value.message
    assert loose_client.send("div", {"a": 8, "b": 2}) == {"q": 4}


def test_requester_validates_args_before_sending(runner: Runner) -> None:
    calls: list[Any] = []
    server = runner.serve(divider_app("tcp://127.0.0.1:0", calls))
    client = App("client")
    client.requester("div", args={"a": int, "b": int}, address=server.endpoints["div"], timeout=5.0)
    runner.serve(client)

    with pytest.raises(ValidationError) as caught:
        client.send("div", {"a": "7", "b": 2})

    assert not isinstance(caught.value, RemoteError)
    assert "div" in str(caught.value)
    assert client.send("div", {"a": 7, "b": 7}) == {"q": 1}
    assert calls == [{"a": 7, "b": 7}]


# -- timeouts -------------------------------------------------------------------------------


def test_requester_times_out_then_works_once_a_replyer_appears(
    runner: Runner, ipc: Callable[[str], str]
) -> None:
    endpoint = ipc("late")
    client = App("client")
    client.requester("div", address=endpoint, timeout=0.2, retries=1)
    runner.serve(client)

    started = time.monotonic()
    with pytest.raises(RequestTimeout) as caught:
        client.send("div", {"a": 6, "b": 3})
    elapsed = time.monotonic() - started

    assert isinstance(caught.value, TimeoutError)
    assert endpoint in str(caught.value)
    assert 0.3 <= elapsed < 5.0  # two tries of 0.2 s, with a generous upper bound
    runner.serve(divider_app(endpoint))
    assert client.send("div", {"a": 6, "b": 3}) == {"q": 2}


def test_requester_timeout_on_a_slow_replyer_leaves_it_usable(
    runner: Runner, ipc: Callable[[str], str]
) -> None:
    release = threading.Event()
    server = App("slow")

    @server.replyer("work", address=ipc("slow"))
    def work(args: Any) -> Any:
        if args == "slow":
            release.wait(5)
        return args

    runner.serve(server)
    client = App("client")
    client.requester("work", address=server.endpoints["work"], timeout=0.5)
    runner.serve(client)

    with pytest.raises(RequestTimeout):
        client.send("work", "slow")
    release.set()

    # The stale "slow" reply went to the discarded socket; this one gets its own answer.
    assert client.send("work", "fast") == "fast"
