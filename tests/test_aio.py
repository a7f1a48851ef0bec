"""Async handlers and hooks through the test client: no sockets, one loop per call."""

from __future__ import annotations

import asyncio

import pytest

from zmqservice import App, RemoteError, ValidationError
from zmqservice.invoke import is_async_app
from zmqservice.sending import AsyncToSend, ToSend


def make_app() -> App:
    app = App("aiosvc")
    app.requester("prices", args={"symbol": str}, returns={"price": float})
    app.publisher("events", args={"event": str}, topic="ev")

    @app.replyer("quote", args={"symbol": str}, returns={"symbol": str, "price": float})
    async def quote(args, to_send):
        await asyncio.sleep(0)
        reply = await to_send("prices", {"symbol": args["symbol"]})
        await to_send("events", {"event": "quoted"})
        return {"symbol": args["symbol"], "price": reply["price"]}

    @app.replyer("boom", args=None, returns=None)
    async def boom(args):
        raise KeyError("nope")

    @app.replyer("plain", args={"x": int}, returns={"x": int})
    def plain(args):
        return {"x": args["x"] + 1}

    return app


def test_an_app_with_a_coroutine_handler_is_async() -> None:
    assert is_async_app(make_app())
    sync = App("syncsvc")
    sync.replyer("echo")(lambda args: args)
    assert not is_async_app(sync)


def test_async_replyer_awaits_to_send_and_replies() -> None:
    client = make_app().test_client()
    client.stub("prices", {"price": 1.5})
    assert client.request("quote", {"symbol": "BTC"}) == {"symbol": "BTC", "price": 1.5}
    assert client.sent["prices"] == [{"symbol": "BTC"}]
    assert client.sent["events"] == [{"event": "quoted"}]


def test_async_replyer_validates_its_args() -> None:
    client = make_app().test_client()
    with pytest.raises(
        ValidationError, match=r"in\.quote \(replyer\) args: expected str, got int @ \$\.symbol"
    ):
        client.request("quote", {"symbol": 5})


def test_async_handler_exception_is_a_handler_error() -> None:
    client = make_app().test_client()
    with pytest.raises(RemoteError) as info:
        client.request("boom", 1)
    assert info.value.type == "HandlerError"
    assert "KeyError" in info.value.message


def test_unstubbed_requester_in_an_async_handler_is_a_remote_error() -> None:
    client = make_app().test_client()
    with pytest.raises(RemoteError, match=r"client\.stub"):
        client.request("quote", {"symbol": "BTC"})


def test_sync_handler_in_an_async_app_still_works() -> None:
    assert make_app().test_client().request("plain", {"x": 1}) == {"x": 2}


def test_async_subscriber_gets_the_message() -> None:
    app = App("aiosub")
    got: list[object] = []

    @app.subscriber("ticks", args={"n": int})
    async def ticks(args):
        await asyncio.sleep(0)
        got.append(args["n"])

    client = app.test_client()
    client.publish("ticks", {"n": 3})
    assert got == [3]
    assert client.stats["ticks"].received == 1


def test_async_subscriber_error_reaches_publish() -> None:
    app = App("aiosubfail")

    @app.subscriber("ticks", args=None)
    async def ticks(args):
        raise ValueError("bad tick")

    with pytest.raises(ValueError, match="bad tick"):
        app.test_client().publish("ticks", 1)


def test_async_main_and_init_run_with_an_async_to_send() -> None:
    app = App("aiomain")
    app.requester("prices", args=None, returns=None)
    seen: list[object] = []

    @app.init
    async def init(to_send):
        seen.append(type(to_send))

    @app.main
    async def main(to_send, config):
        return await to_send("prices", 1)

    client = app.test_client()
    client.stub("prices", lambda args: args + 1)
    client.run_init()
    assert client.run_main() == 2
    assert seen == [AsyncToSend]


def test_async_to_send_numbers_calls_from_one_workflow() -> None:
    app = App("aionum")
    app.requester("prices", args=None, returns=None)
    ids: list[str] = []
    client = app.test_client()
    client.stub("prices", None)
    original = client._outbound.request

    def record(conn, frame, workflow_id="", timeout=None, retries=0):  # type: ignore[no-untyped-def]
        ids.append(workflow_id)
        return original(conn, frame, workflow_id, timeout, retries)

    client._outbound.request = record  # type: ignore[method-assign]
    send = AsyncToSend(client.dispatcher, "W")

    async def two() -> None:
        await send("prices", 1)
        await send("prices", 2)

    asyncio.run(two())
    assert ids == ["W_1", "W_2"]


def test_async_to_send_rejects_unknown_names_and_options_for_publishers() -> None:
    client = make_app().test_client()
    send = AsyncToSend(client.dispatcher, "W")
    with pytest.raises(ValueError, match="no out-connection named 'nope'"):
        asyncio.run(send("nope", 1))
    with pytest.raises(TypeError, match="requesters only"):
        asyncio.run(send("events", {"event": "x"}, timeout=1.0))


def test_sync_to_send_is_unchanged() -> None:
    client = make_app().test_client()
    assert isinstance(client.dispatcher.root_sender, ToSend)


def test_inline_services_refuse_async_apps_clearly() -> None:
    from zmqservice import ConfigError, InlineServices

    with pytest.raises(ConfigError, match="async handlers"):
        InlineServices().add_service("quotes", make_app())
