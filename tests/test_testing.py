"""`app.test_client()`: DESIGN.md section 3, in-process and without sockets."""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs
import pytest

from zmqservice import (
    App,
    ConfigError,
    RemoteError,
    RemoteValidationError,
    ValidationError,
    ZmqServiceError,
)
from zmqservice.log import WORKFLOW_ID
from zmqservice.testing import StubMissing, TestClient

ID = UUID("12345678-1234-5678-1234-567812345678")


@attrs.define
class OrdersConfig:
    symbol: str


@attrs.define
class CancelOrder:
    order_id: str
    reason: str = "user"


@attrs.define
class Cancelled:
    order_id: str
    ok: bool


@attrs.define
class Quote:
    price: Decimal
    id: UUID
    venues: set[str]
    at: dt.datetime


def make_app(seen: list[Any] | None = None) -> App:
    """The service of DESIGN.md sections 1 and 3."""
    seen = [] if seen is None else seen
    app = App("orders", config=OrdersConfig)
    app.requester("exchange_cancel", args={"order_id": str}, returns={"ok": bool})
    app.publisher("order_events", args={"order_id": str, "event": str}, topic="orders")
    app.external_target("double", lambda x: {"y": 2 * x}, args={"x": int}, returns={"y": int})

    @app.replyer("cancel_order", args=CancelOrder, returns=Cancelled)
    def cancel_order(args: CancelOrder, to_send: Any, config: OrdersConfig) -> Cancelled:
        seen.append(WORKFLOW_ID.get())
        reply = to_send("exchange_cancel", {"order_id": args.order_id})
        to_send("order_events", {"order_id": args.order_id, "event": "cancelled"})
        return Cancelled(order_id=args.order_id, ok=reply["ok"])

    @app.replyer("quote", returns=Quote)
    def quote() -> Quote:
        return Quote(Decimal("1.50"), ID, {"a", "b"}, dt.datetime(2024, 1, 2, 3, 4, 5))

    @app.replyer("fail", args={"mode": str}, returns={"ok": bool})
    def fail(args: dict[str, Any]) -> Any:
        if args["mode"] == "raise":
            raise KeyError("order")
        return {"ok": "yes"}

    @app.replyer("pair")
    def pair(args: Any) -> Any:
        return (args, args)

    @app.subscriber("prices", args={"symbol": str, "price": str}, topic="BTC")
    def prices(args: dict[str, Any], config: OrdersConfig) -> None:
        if args["price"] == "boom":
            raise ArithmeticError("boom")
        seen.append((args, config.symbol))

    @app.main
    def main(to_send: Any, config: OrdersConfig) -> str:
        to_send("order_events", {"order_id": "M1", "event": "started"})
        return config.symbol

    @app.init
    def init(to_send: Any) -> None:
        seen.append("init")

    return app


@pytest.fixture
def seen() -> list[Any]:
    return []


@pytest.fixture
def client(seen: list[Any]) -> TestClient:
    return make_app(seen).test_client(config={"symbol": "BTC"})


# -- the DESIGN.md example ------------------------------------------------------------------


def test_design_example(client: TestClient) -> None:
    client.stub("exchange_cancel", {"ok": True})
    assert client.request("cancel_order", {"order_id": "A1"}) == {"order_id": "A1", "ok": True}
    assert client.sent["order_events"] == [{"order_id": "A1", "event": "cancelled"}]


# -- request --------------------------------------------------------------------------------


def test_request_returns_a_plain_dict_not_an_instance(client: TestClient) -> None:
    client.stub("exchange_cancel", {"ok": True})
    assert type(client.request("cancel_order", {"order_id": "A1"})) is dict


def test_request_accepts_a_model_instance_as_args(client: TestClient) -> None:
    client.stub("exchange_cancel", {"ok": False})
    reply = client.request("cancel_order", CancelOrder("A1"))
    assert reply == {"order_id": "A1", "ok": False}


def test_request_decodes_decimal_uuid_and_set_and_gets_datetimes_as_iso(
    client: TestClient,
) -> None:
    reply = client.request("quote", None)
    assert reply == {
        "price": Decimal("1.50"),
        "id": ID,
        "venues": {"a", "b"},
        "at": "2024-01-02T03:04:05",
    }
    assert (type(reply["price"]), type(reply["id"]), type(reply["venues"])) == (
        Decimal,
        UUID,
        set,
    )


def test_request_returns_what_the_wire_carries(client: TestClient) -> None:
    assert client.request("pair", "x") == ["x", "x"]


def test_request_uses_the_given_workflow_id(client: TestClient, seen: list[Any]) -> None:
    client.stub("exchange_cancel", {"ok": True})
    client.request("cancel_order", {"order_id": "A1"}, workflow_id="W-42")
    assert seen == ["W-42"]


def test_request_with_invalid_args_raises_validation_error(client: TestClient) -> None:
    with pytest.raises(ValidationError, match=r"in\.cancel_order \(replyer\) args: .*\$\.order_id"):
        client.request("cancel_order", {"order_id": 5})


def test_request_with_unknown_field_raises_validation_error(client: TestClient) -> None:
    with pytest.raises(ValidationError, match=r"extra fields found \(colour\)"):
        client.request("cancel_order", {"order_id": "A1", "colour": "red"})


def test_request_with_an_invalid_return_value_raises_validation_error(client: TestClient) -> None:
    with pytest.raises(ValidationError, match=r"in\.fail \(replyer\) return value"):
        client.request("fail", {"mode": "bad-return"})


def test_handler_exception_reaches_request_as_remote_error(client: TestClient) -> None:
    with pytest.raises(RemoteError) as info:
        client.request("fail", {"mode": "raise"})
    assert (info.value.type, info.value.message) == ("HandlerError", "KeyError: 'order'")
    assert not isinstance(info.value, ValidationError)


def test_request_to_an_unknown_replyer_raises_naming_the_replyers(client: TestClient) -> None:
    with pytest.raises(ValueError, match=r"no replyer named 'prices' .*has: cancel_order, quote"):
        client.request("prices", {})


def test_request_works_again_after_an_error(client: TestClient) -> None:
    with pytest.raises(RemoteError):
        client.request("fail", {"mode": "raise"})
    with pytest.raises(ValidationError):
        client.request("fail", {"mode": 1})
    assert client.request("quote", None)["id"] == ID


# -- the remote errors ----------------------------------------------------------------------


def test_remote_validation_error_is_both_a_validation_error_and_a_remote_error() -> None:
    error = RemoteValidationError("ValidationError", "bad")
    assert isinstance(error, ValidationError)
    assert isinstance(error, RemoteError)
    assert isinstance(error, ZmqServiceError)


def test_invalid_args_raise_a_remote_validation_error_with_type_and_message(
    client: TestClient,
) -> None:
    with pytest.raises(RemoteValidationError) as info:
        client.request("cancel_order", {"order_id": 5})
    assert info.value.type == "ValidationError"
    assert info.value.message == (
        "in.cancel_order (replyer) args: expected str, got int @ $.order_id"
    )


# -- stub -----------------------------------------------------------------------------------


def test_unstubbed_requester_in_a_replyer_reaches_request_as_remote_error(
    client: TestClient,
) -> None:
    with pytest.raises(RemoteError) as info:
        client.request("cancel_order", {"order_id": "A1"})
    assert info.value.type == "HandlerError"
    assert "client.stub('exchange_cancel', reply_or_function)" in info.value.message


def test_unstubbed_requester_used_directly_raises_stub_missing(client: TestClient) -> None:
    with pytest.raises(StubMissing, match=r"out\.exchange_cancel \(requester\) is not stubbed"):
        client.send("exchange_cancel", {"order_id": "A1"})


def test_stub_missing_is_a_lookup_error() -> None:
    assert issubclass(StubMissing, LookupError)


def test_stub_function_computes_the_reply_from_the_args(client: TestClient) -> None:
    client.stub("exchange_cancel", lambda args: {"ok": args["order_id"] == "A1"})
    assert client.request("cancel_order", {"order_id": "B2"})["ok"] is False


def test_stub_reply_is_validated_against_the_returns_model(client: TestClient) -> None:
    client.stub("exchange_cancel", {"ok": "yes"})
    with pytest.raises(ValidationError, match=r"stub for out\.exchange_cancel \(requester\)"):
        client.send("exchange_cancel", {"order_id": "A1"})


def test_later_stub_replaces_the_earlier_one(client: TestClient) -> None:
    client.stub("exchange_cancel", {"ok": True})
    client.stub("exchange_cancel", {"ok": False})
    assert client.send("exchange_cancel", {"order_id": "A1"}) == {"ok": False}


@pytest.mark.parametrize("name", ["order_events", "cancel_order", "nope"])
def test_stub_of_something_other_than_a_requester_or_target_raises(
    client: TestClient, name: str
) -> None:
    with pytest.raises(ValueError, match=f"no requester or external target '{name}'"):
        client.stub(name, {})


def test_unstubbed_external_target_calls_the_real_target(client: TestClient) -> None:
    assert client.send("double", {"x": 4}) == {"y": 8}


def test_stubbed_external_target_answers_from_the_stub_and_is_recorded(
    client: TestClient,
) -> None:
    client.stub("double", {"y": 0})
    assert client.send("double", {"x": 4}) == {"y": 0}
    assert client.sent["double"] == [{"x": 4}]


# -- sent -----------------------------------------------------------------------------------


def test_sent_records_what_each_out_connection_was_given(client: TestClient) -> None:
    client.stub("exchange_cancel", {"ok": True})
    client.request("cancel_order", {"order_id": "A1"})
    client.request("cancel_order", {"order_id": "A2"})
    assert client.sent["exchange_cancel"] == [{"order_id": "A1"}, {"order_id": "A2"}]


def test_sent_is_empty_for_an_unused_connection(client: TestClient) -> None:
    assert client.sent["order_events"] == []


def test_outbound_args_are_validated_before_they_are_recorded(client: TestClient) -> None:
    with pytest.raises(ValidationError, match=r"out\.order_events \(publisher\) args"):
        client.send("order_events", {"order_id": 1, "event": "x"})
    assert client.sent["order_events"] == []


def test_sent_holds_values_as_the_peer_decodes_them() -> None:
    app = App("demo")
    app.publisher("quotes", args={"price": Decimal, "venues": {str}})
    client = app.test_client()
    client.send("quotes", {"price": Decimal("2.5"), "venues": {"x"}})
    assert client.sent["quotes"] == [{"price": Decimal("2.5"), "venues": {"x"}}]


# -- publish --------------------------------------------------------------------------------


def test_publish_delivers_to_the_subscriber_with_its_config(
    client: TestClient, seen: list[Any]
) -> None:
    client.publish("prices", {"symbol": "BTC", "price": "1.5"})
    assert seen == [({"symbol": "BTC", "price": "1.5"}, "BTC")]


def test_publish_with_invalid_args_raises_validation_error(
    client: TestClient, seen: list[Any]
) -> None:
    with pytest.raises(ValidationError, match=r"in\.prices \(subscriber\) args: .*\$\.price"):
        client.publish("prices", {"symbol": "BTC", "price": 1.5})
    assert seen == []


def test_publish_reraises_the_handler_exception(client: TestClient) -> None:
    with pytest.raises(ArithmeticError, match="boom"):
        client.publish("prices", {"symbol": "BTC", "price": "boom"})


def test_publish_to_an_unknown_subscriber_raises(client: TestClient) -> None:
    with pytest.raises(ValueError, match="no subscriber named 'cancel_order'"):
        client.publish("cancel_order", {})


# -- main, init, send, config ---------------------------------------------------------------


def test_run_main_runs_main_and_returns_its_result(client: TestClient) -> None:
    assert client.run_main() == "BTC"
    assert client.sent["order_events"] == [{"order_id": "M1", "event": "started"}]


def test_run_main_without_a_main_raises() -> None:
    with pytest.raises(ValueError, match=r"has no @app\.main"):
        App("demo").test_client().run_main()


def test_run_init_runs_init(client: TestClient, seen: list[Any]) -> None:
    client.run_init()
    assert seen == ["init"]


def test_send_calls_an_out_connection_as_the_app_would(client: TestClient) -> None:
    client.stub("exchange_cancel", {"ok": True})
    assert client.send("exchange_cancel", {"order_id": "A1"}) == {"ok": True}


def test_client_config_is_validated_into_the_model(client: TestClient) -> None:
    assert client.config == OrdersConfig(symbol="BTC")


def test_client_with_missing_config_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="config key 'symbol': required field missing"):
        make_app().test_client()


def test_clients_of_one_app_do_not_share_stubs_or_sent() -> None:
    app = make_app()
    first = app.test_client(config={"symbol": "BTC"})
    second = app.test_client(config={"symbol": "BTC"})
    first.stub("exchange_cancel", {"ok": True})
    first.send("exchange_cancel", {"order_id": "A1"})
    assert second.sent["exchange_cancel"] == []
    with pytest.raises(StubMissing):
        second.send("exchange_cancel", {"order_id": "A1"})


def test_test_client_does_not_start_the_app(client: TestClient) -> None:
    client.app.publisher("late")
    assert "late" in client.app.connections


def test_unstubbed_external_targets_run_and_are_recorded() -> None:
    app = App("shop")
    app.external_target("double", lambda n: {"n": n * 2}, args={"n": int}, returns={"n": int})

    @app.replyer("run")
    def run(args: Any, to_send: Any) -> Any:
        return to_send("double", {"n": args})

    client = app.test_client()
    assert client.request("run", 4) == {"n": 8}
    assert client.sent["double"] == [{"n": 4}]


# -- app.send, app.stats, app.endpoints and app.stop under the test client ----------------


def app_sending() -> App:
    """Handlers and hooks that reach out through `app.send`, not `to_send`."""
    app = App("desk")
    app.requester("exchange", args={"order_id": str}, returns={"ok": bool})
    app.publisher("fills", args={"order_id": str}, topic="fills")

    @app.replyer("cancel", args={"order_id": str})
    def cancel(args: Any) -> Any:
        app.send("fills", {"order_id": args["order_id"]})
        return app.send("exchange", {"order_id": args["order_id"]})

    @app.subscriber("prices", args={"order_id": str}, topic="px")
    def on_price(args: Any) -> None:
        app.send("fills", args)

    @app.replyer("views")
    def views(args: Any) -> Any:
        if args == "stop":
            app.stop()
        return {"stats": sorted(app.stats), "endpoints": app.endpoints}

    @app.main
    def main() -> Any:
        return app.send("exchange", {"order_id": "M"})

    return app


def test_app_send_in_a_handler_reaches_the_stubs_and_sent() -> None:
    client = app_sending().test_client()
    client.stub("exchange", lambda args: {"ok": args["order_id"] == "A1"})

    assert client.request("cancel", {"order_id": "A1"}) == {"ok": True}
    client.publish("prices", {"order_id": "P1"})
    assert client.run_main() == {"ok": False}

    assert client.sent["exchange"] == [{"order_id": "A1"}, {"order_id": "M"}]
    assert client.sent["fills"] == [{"order_id": "A1"}, {"order_id": "P1"}]


def test_app_send_in_a_handler_without_a_stub_says_how_to_stub_it() -> None:
    client = app_sending().test_client()
    with pytest.raises(RemoteError, match=r"client\.stub\('exchange'"):
        client.request("cancel", {"order_id": "A1"})


def test_app_send_outside_the_clients_calls_is_still_not_running() -> None:
    app = app_sending()
    client = app.test_client()
    client.stub("exchange", {"ok": True})
    client.request("cancel", {"order_id": "A1"})
    with pytest.raises(RuntimeError, match="not running"):
        app.send("fills", {"order_id": "X"})
    assert app.stats == {} and app.endpoints == {}


def test_a_with_block_serves_app_send_from_the_tests_own_code() -> None:
    app = app_sending()
    with app.test_client() as client:
        app.send("fills", {"order_id": "T"})
    assert client.sent["fills"] == [{"order_id": "T"}]
    with pytest.raises(RuntimeError, match="not running"):
        app.send("fills", {"order_id": "X"})


def test_nested_clients_of_one_app_each_get_their_own_sends() -> None:
    app = App("desk")
    app.publisher("fills")
    inner = app.test_client()

    @app.replyer("relay")
    def relay(args: Any) -> Any:
        app.send("fills", f"outer {args}")
        inner.publish("ticks", args)  # a handler driving another client of the same app
        app.send("fills", f"outer again {args}")
        return args

    @app.subscriber("ticks")
    def on_tick(args: Any) -> None:
        app.send("fills", f"inner {args}")

    outer = app.test_client()
    assert outer.request("relay", 1) == 1
    assert outer.sent["fills"] == ["outer 1", "outer again 1"]
    assert inner.sent["fills"] == ["inner 1"]


def test_app_send_reaches_the_client_from_an_async_handler() -> None:
    app = App("desk")
    app.publisher("fills")

    @app.replyer("relay")
    async def relay(args: Any) -> Any:
        app.send("fills", f"async {args}")
        return args

    client = app.test_client()
    assert client.request("relay", 1) == 1
    assert client.sent["fills"] == ["async 1"]


def test_a_thread_a_handler_starts_reaches_the_client_through_its_context() -> None:
    app = App("desk")
    app.publisher("fills")
    errors: list[BaseException] = []

    def worker(tag: str) -> None:
        try:
            app.send("fills", tag)
        except BaseException as exc:
            errors.append(exc)

    @app.replyer("relay")
    def relay(args: Any) -> Any:
        copied = threading.Thread(target=contextvars.copy_context().run, args=(worker, "copied"))
        bare = threading.Thread(target=worker, args=("bare",))
        for thread in (copied, bare):
            thread.start()
            thread.join(5)
        return args

    client = app.test_client()
    assert client.request("relay", 1) == 1
    assert client.sent["fills"] == ["copied"]
    assert len(errors) == 1 and "App 'desk' is not running" in str(errors[0])


def test_app_views_under_the_test_client() -> None:
    client = app_sending().test_client()
    client.publish("prices", {"order_id": "P"})
    assert client.request("views", None) == {"stats": ["prices"], "endpoints": {}}
    assert not client.stopped

    client.request("views", "stop")
    assert client.stopped


def test_a_client_does_not_take_app_send_from_a_run_attached_elsewhere() -> None:
    app = App("desk")
    app.publisher("fills")

    class Run:
        def __init__(self) -> None:
            self.sends: list[Any] = []
            self.stats: dict[str, Any] = {}
            self.endpoints = {"fills": "tcp://192.0.2.1:5"}

        def send(self, name: str, args: Any, **options: Any) -> Any:
            self.sends.append(args)

        def stop(self) -> None:
            raise AssertionError("the client's app.stop() stopped the real run")

    @app.replyer("relay")
    def relay(args: Any) -> Any:
        app.send("fills", f"client {args}")
        app.stop()
        return app.endpoints

    run = Run()
    app.attach(run)
    try:
        client = app.test_client()
        assert client.request("relay", 1) == {}
        app.send("fills", "real")
        assert app.endpoints == {"fills": "tcp://192.0.2.1:5"}
    finally:
        app.detach(run)
    assert client.sent["fills"] == ["client 1"] and run.sends == ["real"]
    assert client.stopped


def test_with_blocks_of_one_client_in_two_threads_end_in_any_order() -> None:
    app = App("desk")
    app.publisher("fills")
    client = app.test_client()
    entered, first_left = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with client:
                entered.set()
                first_left.wait(5)
                app.send("fills", "other")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    with client:
        thread.start()
        assert entered.wait(5)
        app.send("fills", "main")
    first_left.set()
    thread.join(5)
    assert errors == [] and sorted(client.sent["fills"]) == ["main", "other"]
