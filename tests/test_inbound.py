"""The per-message steps (`inbound`): values, not exceptions; one DEBUG line; sync = async."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from zmqservice import (
    App,
    DecodeError,
    RemoteValidationError,
    ValidationError,
    codec,
    dispatch,
    dispatch_async,
    inbound,
)
from zmqservice.dispatch import Dispatcher
from zmqservice.inbound import reply_steps, subscriber_steps
from zmqservice.log import WORKFLOW_ID
from zmqservice.stats import SubscriberStats


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


class NoOutbound:
    """An `Outbound` for apps that send nothing."""

    def request(self, conn: Any, frame: bytes, *options: Any) -> bytes:
        raise AssertionError("no request expected")

    def publish(self, conn: Any, frame: bytes) -> None:
        raise AssertionError("no publish expected")

    def call(self, conn: Any, target: Any, args: Any) -> Any:
        raise AssertionError("no call expected")


def error_type(reply: bytes) -> str | None:
    _, error = codec.decode_reply(reply)
    return None if error is None else error["type"]


# -- the steps return values ----------------------------------------------------------------


def test_a_replyer_accepts_a_frame_as_an_error_reply_or_as_validated_args() -> None:
    app = App("demo")
    app.replyer("add", args={"a": int}, returns={"a": int})(lambda args: 0)
    accept, *_ = reply_steps(app.connections["add"], 100, lambda wid: b"described " + wid.encode())

    assert error_type(accept(b"\xc1")) == "DecodeError"
    assert error_type(accept(packb({"args": {"a": 1}, "pad": "x" * 100}))) == "DecodeError"
    assert accept(packb({"args": None, "workflow_id": "W", "_describe": True})) == b"described W"
    invalid = accept(codec.encode_request({"a": "x"}, "W"))
    assert isinstance(invalid, bytes) and error_type(invalid) == "ValidationError"
    assert WORKFLOW_ID.get() == ""  # an error reply leaves no workflow id behind

    accepted = accept(codec.encode_request({"a": 1}, "W"))
    assert isinstance(accepted, tuple)
    value, workflow_id, token = accepted
    assert (value["a"], workflow_id, WORKFLOW_ID.get()) == (1, "W", "W")
    WORKFLOW_ID.reset(token)


def test_a_replyer_finishes_with_the_reply_or_the_error_reply() -> None:
    app = App("demo")
    app.replyer("add", args={"a": int}, returns={"a": int})(lambda args: 0)
    _, finish, fail, _ = reply_steps(app.connections["add"], 100, lambda wid: b"")

    assert finish({"a": 2}, "W") == codec.encode_reply({"a": 2}, "W")
    assert codec.decode_reply(finish({"a": "two"}, "W"))[1] == {
        "type": "ValidationError",
        "message": "in.add (replyer) return value: expected int, got str @ $.a",
    }
    assert fail(KeyError("k"), "W") == codec.encode_error("HandlerError", "KeyError: 'k'", "W")


def test_a_subscriber_accepts_a_frame_as_the_drop_or_as_validated_args() -> None:
    app = App("demo")
    app.subscriber("ticks", args={"n": int}, topic="t")(lambda args: None)
    stats = SubscriberStats()
    accept, fail, _ = subscriber_steps(app.connections["ticks"], 100, stats)
    prefix = codec.topic_prefix("t")

    assert isinstance(accept(prefix + b"\xc1"), DecodeError)
    assert isinstance(accept(prefix + codec.encode_request({"n": "x"}, "W")), ValidationError)
    assert isinstance(
        accept(prefix + codec.encode_request({"n": 1, "pad": "x" * 100}, "W")), DecodeError
    )
    assert WORKFLOW_ID.get() == ""
    accepted = accept(prefix + codec.encode_published({"n": 1}, "W", "p", 1))
    assert isinstance(accepted, tuple)
    value, workflow_id, token = accepted
    assert (value["n"], workflow_id, WORKFLOW_ID.get()) == (1, "W", "W")
    WORKFLOW_ID.reset(token)
    error = ValueError("bad")
    assert fail(error) is error
    assert (stats.received, stats.dropped, stats.failed, stats.last_seq) == (4, 3, 1, {"p": 1})


def test_the_async_driver_hands_nothing_off_by_exception() -> None:
    for module in (dispatch, dispatch_async, inbound):
        assert not hasattr(module, "_Captured")
        assert not hasattr(module, "_capture")
        own_exceptions = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, BaseException)
            and value.__module__ == module.__name__
        ]
        assert own_exceptions == [], module.__name__


# -- the per-message DEBUG line, sync and async ---------------------------------------------

DEBUG_LINE = re.compile(
    r"in\.(\w+) \((replyer|subscriber)\): workflow_id (\S+) handled in \d+\.\d µs"
)


def timing_app(flavour: str) -> App:
    app = App("demo")

    def add(args: Any) -> Any:
        return {"a": args["a"] + 1}

    def ticks(args: Any) -> None:
        pass

    if flavour == "async":
        add, ticks = awaitable(add), awaitable(ticks)
    app.replyer("add", args={"a": int}, returns={"a": int})(add)
    app.subscriber("ticks", args={"n": int})(ticks)
    return app


def awaitable(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def handler(args: Any) -> Any:
        await asyncio.sleep(0)
        return fn(args)

    return handler


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_each_message_gets_one_debug_line(flavour: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="zmqservice.dispatch")
    client = timing_app(flavour).test_client()
    assert client.request("add", {"a": 1}, workflow_id="wf-1") == {"a": 2}
    with pytest.raises(RemoteValidationError):
        client.request("add", {"a": "x"}, workflow_id="wf-2")
    client.publish("ticks", {"n": 1}, workflow_id="wf-3")

    lines = [r for r in caplog.records if "handled in" in r.getMessage()]
    assert [DEBUG_LINE.fullmatch(r.getMessage()).groups() for r in lines] == [  # type: ignore[union-attr]
        ("add", "replyer", "wf-1"),
        ("add", "replyer", "wf-2"),
        ("ticks", "subscriber", "wf-3"),
    ]
    assert {(r.name, r.levelno) for r in lines} == {("zmqservice.dispatch", logging.DEBUG)}
    assert [r.workflow_id for r in lines] == ["wf-1", "wf-2", "wf-3"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_no_debug_line_when_debug_is_off(flavour: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zmqservice.dispatch")
    app = timing_app(flavour)
    dispatcher = Dispatcher(app, None, NoOutbound())
    conn = app.connections["add"]
    build = dispatcher.replier_async if flavour == "async" else dispatcher.replier
    assert build(conn).__qualname__.endswith(".reply")  # not wrapped: no cost when off
    client = app.test_client()
    client.request("add", {"a": 1})
    client.publish("ticks", {"n": 1})
    assert not [r for r in caplog.records if "handled in" in r.getMessage()]


# -- the async driver answers exactly as the sync one ---------------------------------------


def twin_app(flavour: str) -> App:
    app = App("demo", max_message_size=64)

    def add(args: Any) -> Any:
        if args["a"] < 0:
            raise ValueError("negative")
        if args["a"] == 0:
            return {"a": "zero"}  # does not fit `returns`
        return {"a": args["a"] + 1}

    def anything(args: Any) -> Any:
        return object()  # cannot be encoded

    def ticks(args: Any) -> None:
        if args["n"] < 0:
            raise ValueError("negative tick")

    if flavour == "async":
        add, anything, ticks = awaitable(add), awaitable(anything), awaitable(ticks)
    app.replyer("add", args={"a": int}, returns={"a": int})(add)
    app.replyer("anything")(anything)
    app.subscriber("ticks", args={"n": int}, topic="t")(ticks)
    return app


REQUESTS = {
    "valid": ("add", codec.encode_request({"a": 1}, "W1"), None),
    "invalid args": ("add", codec.encode_request({"a": "x"}, "W2"), "ValidationError"),
    "handler raised": ("add", codec.encode_request({"a": -1}, "W3"), "HandlerError"),
    "result does not fit": ("add", codec.encode_request({"a": 0}, "W4"), "ValidationError"),
    "unencodable result": ("anything", codec.encode_request(None, "W5"), "HandlerError"),
    "no workflow id": ("add", packb({"args": {"a": 1}}), None),
    "undecodable": ("add", b"\xc1", "DecodeError"),
    "too large": ("add", codec.encode_request({"a": 1, "pad": "x" * 64}, "W6"), "DecodeError"),
    "describe": ("add", packb({"args": None, "workflow_id": "W7", "_describe": True}), None),
}


@pytest.mark.parametrize("case", list(REQUESTS))
def test_an_async_replier_answers_as_the_sync_one(case: str) -> None:
    name, frame, expected = REQUESTS[case]
    sync_app, async_app = twin_app("sync"), twin_app("async")
    sync = Dispatcher(sync_app, None, NoOutbound()).replier(sync_app.connections[name])
    async_ = Dispatcher(async_app, None, NoOutbound()).replier_async(async_app.connections[name])

    sync_reply, async_reply = sync(frame), asyncio.run(async_(frame))
    assert WORKFLOW_ID.get() == ""
    assert error_type(sync_reply) == expected
    assert without_workflow_id(async_reply) == without_workflow_id(sync_reply)
    if case != "no workflow id":  # a fresh one each time
        assert async_reply == sync_reply


def without_workflow_id(reply: bytes) -> Any:
    envelope = codec.decode(reply)
    envelope.pop("workflow_id")
    return envelope


PUBLISHED = {
    "valid": codec.encode_published({"n": 1}, "W1", "p", 1),
    "invalid args": codec.encode_published({"n": "x"}, "W2", "p", 2),
    "handler raised": codec.encode_published({"n": -1}, "W3", "p", 4),  # after a gap
    "undecodable": b"\xc1",
    "too large": codec.encode_request({"n": 1, "pad": "x" * 64}, "W4"),
}


def test_an_async_receiver_drops_counts_and_fails_as_the_sync_one() -> None:
    sync_app, async_app = twin_app("sync"), twin_app("async")
    sync_dispatcher = Dispatcher(sync_app, None, NoOutbound())
    async_dispatcher = Dispatcher(async_app, None, NoOutbound())
    sync = sync_dispatcher.receiver(sync_app.connections["ticks"])
    async_ = async_dispatcher.receiver_async(async_app.connections["ticks"])
    prefix = codec.topic_prefix("t")

    for case, frame in PUBLISHED.items():
        sync_error, async_error = sync(prefix + frame), asyncio.run(async_(prefix + frame))
        assert (type(async_error), str(async_error)) == (type(sync_error), str(sync_error)), case
    assert isinstance(sync_error, DecodeError)
    assert async_dispatcher.stats["ticks"].as_dict() == sync_dispatcher.stats["ticks"].as_dict()
    assert sync_dispatcher.stats["ticks"].as_dict() == {
        "received": 5,
        "dropped": 3,
        "failed": 1,
        "missed": 1,
        "gaps": 1,
        "out_of_order": 0,
        "resets": 0,
        "publishers": 1,
    }


# -- bulky frames: decoded and validated with the cyclic GC paused ----------------------------


def gc_seen_by_validation() -> tuple[App, list[bool]]:
    """An app whose args validator records whether the cyclic GC is on while it runs."""
    import attrs

    seen: list[bool] = []

    def record(instance: Any, attribute: Any, value: Any) -> None:
        seen.append(gc.isenabled())

    @attrs.define
    class Bulky:
        items: list[list[int]] = attrs.field(validator=record)

    app = App("bulky")
    app.replyer("take", args=Bulky, returns=None)(lambda args: len(args.items))
    app.subscriber("hear", args=Bulky)(lambda args: None)
    return app, seen


@pytest.mark.parametrize("kind", ["take", "hear"])
def test_a_bulky_frame_is_validated_with_the_gc_paused_and_a_small_one_is_not(kind: str) -> None:
    app, seen = gc_seen_by_validation()
    conn = app.connections[kind]
    steps: Any = (
        reply_steps(conn, 1 << 20, lambda wid: b"")
        if kind == "take"
        else subscriber_steps(conn, 1 << 20, SubscriberStats())
    )
    small = packb({"args": {"items": [[1]]}, "workflow_id": "w"})
    bulky = packb({"args": {"items": [[]] * (inbound.BULKY_BYTES + 1)}, "workflow_id": "w"})
    for frame in (small, bulky):
        accepted = steps.accept(frame)
        assert isinstance(accepted, tuple), accepted
        WORKFLOW_ID.reset(accepted[2])
    assert seen == [True, False]
    assert gc.isenabled()


def test_without_gc_leaves_a_gc_the_application_disabled_alone() -> None:
    gc.disable()
    try:
        assert inbound.without_gc(lambda frame, paused: gc.isenabled(), b"") is False
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_enable_the_gc_once_the_last_one_ends() -> None:
    inside: list[bool] = []

    def outer(frame: bytes, paused: bool) -> None:
        inbound.without_gc(lambda f, p: inside.append(gc.isenabled()), frame)
        inside.append(gc.isenabled())

    inbound.without_gc(outer, b"")
    assert inside == [False, False]
    assert gc.isenabled()
