"""Middleware around inbound messages and outbound sends, through the test client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from zmqservice import App, RemoteError, ValidationError, codec
from zmqservice.dispatch import Dispatcher
from zmqservice.middleware import Message, around_inbound, outcome_of
from zmqservice.peek import envelope_headers
from zmqservice.testing import TestClient


class Recorder:
    """A middleware that records what it sees on entry and on exit."""

    def __init__(self, tag: str = "", headers: dict[str, Any] | None = None) -> None:
        self.tag = tag
        self.headers = headers or {}
        self.seen: list[tuple[Any, ...]] = []

    @contextmanager
    def __call__(self, message: Message) -> Iterator[None]:
        name = message.connection.name
        self.seen.append(("enter", self.tag, name, message.workflow_id, message.outcome))
        if not message.inbound:
            message.headers.update(self.headers)
        yield
        self.seen.append(("exit", self.tag, name, message.outcome, message.error))
        assert message.duration >= 0


def calculator(*middlewares: Any) -> App:
    app = App("calc", max_message_size=1000)
    for middleware in middlewares:
        app.middleware(middleware)

    @app.replyer("div", args={"a": int, "b": int}, returns={"q": int})
    def div(args: dict[str, int]) -> dict[str, int]:
        if args["a"] == 99:
            return {"q": "not an int"}  # type: ignore[dict-item]
        return {"q": args["a"] // args["b"]}

    @app.subscriber("ticks", args={"price": int})
    def ticks(args: dict[str, int]) -> None:
        if args["price"] < 0:
            raise RuntimeError("negative")

    @app.replyer("relay", args={"a": int}, returns=None)
    def relay(args: dict[str, int], to_send: Any) -> Any:
        to_send("events", {"a": args["a"]})
        return to_send("remote", {"a": args["a"]})

    app.publisher("events", args={"a": int})
    app.requester("remote", args={"a": int}, returns={"q": int})
    return app


def test_a_replyer_outcome_is_seen_for_each_kind_of_reply() -> None:
    recorder = Recorder()
    client = calculator(recorder).test_client()
    assert client.request("div", {"a": 7, "b": 2}, workflow_id="w1") == {"q": 3}
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        client.request("div", {"a": 1, "b": 0}, workflow_id="w2")
    with pytest.raises(RemoteError):
        client.request("div", {"a": 99, "b": 1}, workflow_id="w3")
    with pytest.raises(ValidationError):
        client.request("div", {"a": "x", "b": 1}, workflow_id="w4")
    exits = [entry[3:] for entry in recorder.seen if entry[0] == "exit"]
    assert exits == [
        ("ok", None),
        ("handler_error", "ZeroDivisionError"),
        ("handler_error", "ValidationError"),  # the handler's return value did not fit
        ("validation_error", "ValidationError"),
    ]
    enters = [entry[3:] for entry in recorder.seen if entry[0] == "enter"]
    assert enters == [("w1", None), ("w2", None), ("w3", None), ("w4", None)]


def test_undecodable_and_oversized_frames_have_their_own_outcomes() -> None:
    recorder = Recorder()
    app = calculator(recorder)
    dispatcher = Dispatcher(app, None, TestClient(app)._outbound)
    reply = dispatcher.replier(app.connections["div"])
    assert codec.decode(reply(b"\xc1 junk"))["error"]["type"] == "DecodeError"
    assert codec.decode(reply(b"\x00" * 2000))["error"]["type"] == "DecodeError"
    exits = [entry[3:] for entry in recorder.seen if entry[0] == "exit"]
    assert exits == [("decode_error", "DecodeError"), ("too_large", "DecodeError")]


def test_subscriber_outcomes_and_the_publishers_headers_on_the_wire() -> None:
    recorder = Recorder(headers={"trace": {"traceparent": "00-aa-bb-01"}})
    app = calculator(recorder)
    client = app.test_client()
    client.stub("remote", {"q": 5})
    assert client.request("relay", {"a": 3}) == {"q": 5}
    published = client.sent["events"][0]
    frame = codec.encode_published_with(published, "w", "pub", 1, {"trace": {"x": 1}})
    assert envelope_headers(frame)[1] == {"trace": {"x": 1}, "seq": 1, "pub": "pub"}

    client.publish("ticks", {"price": 3})
    with pytest.raises(RuntimeError, match="negative"):
        client.publish("ticks", {"price": -1})  # the test client re-raises what was logged
    receive = Dispatcher(app, None, TestClient(app)._outbound).receiver(app.connections["ticks"])
    assert isinstance(receive(codec.encode_published({"price": "high"}, "w", "p", 1)), Exception)
    assert isinstance(receive(b"\x00" * 2000), Exception)
    exits = [entry[2:] for entry in recorder.seen if entry[0] == "exit"]
    assert exits == [
        ("events", "ok", None),
        ("remote", "ok", None),
        ("relay", "ok", None),
        ("ticks", "ok", None),
        ("ticks", "handler_error", "RuntimeError"),
        ("ticks", "validation_error", "ValidationError"),
        ("ticks", "too_large", "TooLarge"),
    ]


def test_outbound_headers_go_out_in_the_envelope_and_cannot_replace_its_keys() -> None:
    recorder = Recorder(headers={"trace": {"traceparent": "t"}, "args": "forged", "seq": -1})
    app = calculator(recorder)
    frames: list[bytes] = []

    class Wire:
        def request(self, conn: Any, frame: bytes, workflow_id: str = "", *rest: Any) -> bytes:
            frames.append(frame)
            return codec.encode_reply({"q": 1}, workflow_id)

        def publish(self, conn: Any, frame: bytes) -> None:
            frames.append(frame)

        def call(self, conn: Any, target: Any, args: Any) -> Any:
            return None

    dispatcher = Dispatcher(app, None, Wire())
    assert dispatcher.senders["remote"]({"a": 1}, "w_1") == {"q": 1}
    dispatcher.senders["events"]({"a": 2}, "w_2")
    request, published = (codec.decode(frame) for frame in frames)
    trace = {"traceparent": "t"}
    assert request == {"args": {"a": 1}, "workflow_id": "w_1", "trace": trace, "seq": -1}
    assert published["args"] == {"a": 2} and published["seq"] == 1
    assert published["trace"] == {"traceparent": "t"}


def test_middlewares_nest_in_the_order_they_were_added() -> None:
    outer, inner = Recorder("outer"), Recorder("inner")
    client = calculator(outer, inner).test_client()
    client.request("div", {"a": 4, "b": 2})
    log = [(entry[0], entry[1]) for entry in outer.seen + inner.seen]
    assert log[:2] == [("enter", "outer"), ("exit", "outer")]
    order: list[str] = []

    def tagged(tag: str) -> Any:
        @contextmanager
        def middleware(message: Message) -> Iterator[None]:
            order.append(f"{tag}>")
            yield
            order.append(f"<{tag}")

        return middleware

    calculator(tagged("a"), tagged("b")).test_client().request("div", {"a": 4, "b": 2})
    assert order == ["a>", "b>", "<b", "<a"]


def test_a_failing_middleware_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    def broken(message: Message) -> Any:
        raise RuntimeError("middleware bug")

    recorder = Recorder()
    client = calculator(broken, recorder).test_client()
    with caplog.at_level(logging.ERROR, logger="zmqservice.middleware"):
        assert client.request("div", {"a": 9, "b": 3}) == {"q": 3}
    assert "middleware bug" in caplog.text
    assert [entry[3] for entry in recorder.seen if entry[0] == "exit"] == ["ok"]


def test_with_no_middleware_the_frame_functions_are_the_plain_ones() -> None:
    app = calculator()
    conn = app.connections["div"]

    def handle(frame: bytes) -> bytes:
        return frame

    assert around_inbound(handle, conn, ()) is handle
    plain = Dispatcher(app, None, TestClient(app)._outbound)
    observed = Dispatcher(app, None, TestClient(app)._outbound, middlewares=[Recorder()])
    assert plain.replier(conn).__name__ == "reply"
    assert observed.replier(conn).__name__ == "observed"
    assert plain.senders["remote"].__name__ == "plain"
    assert observed.senders["remote"].__name__ == "request"


def test_registering_a_middleware_after_start_or_a_non_callable_is_refused() -> None:
    app = calculator()
    with pytest.raises(TypeError, match="callable"):
        app.middleware("not a middleware")  # type: ignore[arg-type]
    app.finish_setup()
    with pytest.raises(RuntimeError, match="already running"):
        app.middleware(Recorder())


def test_send_outcomes_name_what_went_wrong() -> None:
    from zmqservice import RequestTimeout
    from zmqservice.errors import DecodeError

    assert outcome_of(RequestTimeout("t")) == "timeout"
    assert outcome_of(RemoteError("HandlerError", "x")) == "remote_error"
    assert outcome_of(ValidationError("v")) == "validation_error"
    assert outcome_of(DecodeError("d")) == "decode_error"
    assert outcome_of(OSError("o")) == "error"


@pytest.mark.parametrize(
    ("frame", "prefix", "expected"),
    [
        (codec.encode_request({"big": [1] * 100}, "w"), b"", ("w", {})),
        (
            codec.encode_published_with(1, "w", "p", 7, {"trace": "t"}),
            b"",
            ("w", {"trace": "t", "seq": 7, "pub": "p"}),
        ),
        (
            codec.topic_prefix("BTC") + codec.encode_published(1, "w", "p", 2),
            codec.topic_prefix("BTC"),
            ("w", {"seq": 2, "pub": "p"}),
        ),
        (
            codec.topic_prefix("BTC") + codec.encode_published(1, "w", "p", 2),
            b"",
            ("w", {"seq": 2, "pub": "p"}),
        ),
        (b"\xc1 junk", b"", ("", {})),
        (codec.encode([1, 2]), b"", ("", {})),
        (codec.encode({"args": 1, "workflow_id": 5}), b"", ("", {})),
    ],
)
def test_envelope_headers_reads_the_optional_keys_without_the_args(
    frame: bytes, prefix: bytes, expected: tuple[str, dict[str, Any]]
) -> None:
    assert envelope_headers(frame, prefix) == expected
