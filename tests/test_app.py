"""`App`: registration through decorators, the predecessor-shaped views, hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from zmqservice import App, Connection, ValidationError
from zmqservice.testing import TestClient


@attrs.define
class CancelOrder:
    order_id: str
    reason: str = "user"


@attrs.define
class Cancelled:
    order_id: str
    ok: bool


@attrs.define
class OrdersConfig:
    symbol: str
    size: int = 1


def handler(args: Any) -> Any:
    return args


def other_handler(args: Any) -> Any:
    return args


def hook(to_send: Any, config: Any) -> None:
    pass


# -- decorators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "decorate",
    [
        lambda app: app.replyer("r"),
        lambda app: app.subscriber("s"),
        lambda app: app.external_target("e"),
        lambda app: app.main,
        lambda app: app.init,
        lambda app: app.setup_config,
        lambda app: app.setup_addresses,
        lambda app: app.on_sigint,
        lambda app: app.on_sigterm,
    ],
    ids=[
        "replyer",
        "subscriber",
        "external_target",
        "main",
        "init",
        "setup_config",
        "setup_addresses",
        "on_sigint",
        "on_sigterm",
    ],
)
def test_decorator_returns_the_function_unchanged(
    decorate: Callable[[App], Callable[[Any], Any]],
) -> None:
    assert decorate(App("demo"))(handler) is handler


def test_decorator_registers_the_function_as_the_handler() -> None:
    app = App("demo")
    app.replyer("cancel_order")(handler)
    assert app.connections["cancel_order"].handler is handler


def test_external_target_decorator_registers_the_function_as_the_target() -> None:
    app = App("demo")
    app.external_target("dumps")(handler)
    assert app.connections["dumps"].target is handler


def test_external_target_with_a_target_registers_it_and_returns_none() -> None:
    app = App("demo")
    assert app.external_target("dumps", "json:dumps") is None
    assert app.connections["dumps"].target == "json:dumps"


def test_hook_decorator_registers_the_hook() -> None:
    app = App("demo")
    app.init(hook)
    assert app.hooks == {"init": hook}


def test_connections_keep_declaration_order() -> None:
    app = App("demo")
    app.publisher("b")
    app.replyer("a")(handler)
    app.requester("c")
    assert list(app.connections) == ["b", "a", "c"]


# -- duplicates and the setup guard ---------------------------------------------------------


def test_duplicate_connection_name_raises_naming_both_functions() -> None:
    app = App("demo")
    app.replyer("cancel_order")(handler)
    with pytest.raises(ValueError) as info:
        app.subscriber("cancel_order")(other_handler)
    message = str(info.value)
    assert "'cancel_order' is declared twice" in message
    assert f"replyer ({__name__}:handler)" in message
    assert f"subscriber ({__name__}:other_handler)" in message


def test_duplicate_name_across_sides_raises() -> None:
    app = App("demo")
    app.requester("exchange")
    with pytest.raises(ValueError, match="'exchange' is declared twice"):
        app.publisher("exchange")


def test_duplicate_hook_raises_naming_both_functions() -> None:
    app = App("demo")
    app.main(hook)
    with pytest.raises(ValueError) as info:
        app.main(handler)
    assert str(info.value) == (f"hook 'main' is set twice: {__name__}:hook and {__name__}:handler")


def test_unknown_hook_name_raises() -> None:
    with pytest.raises(ValueError, match="unknown hook 'teardown'"):
        App("demo").add_hook("teardown", hook)


def test_registering_while_running_raises() -> None:
    app = App("testapp")
    caught: list[BaseException] = []

    @app.main
    def main() -> None:
        try:
            app.requester("late")
        except RuntimeError as exc:
            caught.append(exc)

    app.run(main=True)
    assert len(caught) == 1
    assert "cannot register 'late'" in str(caught[0])
    assert "late" not in app.connections


def test_registering_after_the_app_has_run_raises() -> None:
    app = App("testapp")
    app.main(hook)
    app.run(main=True)
    with pytest.raises(RuntimeError, match="already running"):
        app.on_sigint(handler)


# -- argument checks ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", None, 5])
def test_app_name_must_be_a_non_empty_string(name: Any) -> None:
    with pytest.raises(TypeError, match="non-empty string"):
        App(name)


def test_dict_config_model_takes_only_required_and_optional() -> None:
    with pytest.raises(TypeError, match=r"'required' and 'optional', got \['symbol'\]"):
        App("demo", config={"symbol": str})


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_requester_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be > 0"):
        App("demo").requester("exchange", timeout=timeout)


def test_requester_retries_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="retries must be >= 0"):
        App("demo").requester("exchange", retries=-1)


def test_unsupported_model_spec_raises_at_declaration() -> None:
    with pytest.raises(TypeError, match="exchange_args: a model must be"):
        App("demo").requester("exchange", args=str)


# -- records --------------------------------------------------------------------------------


def test_connection_records_are_frozen() -> None:
    app = App("demo")
    app.requester("exchange")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        app.connections["exchange"].timeout = 1.0  # type: ignore[misc]


def test_connection_record_holds_the_declared_options() -> None:
    app = App("demo")
    app.subscriber("prices", topic="BTC", bind=True, hwm=10, address="h:1")(handler)
    conn = app.connections["prices"]
    assert isinstance(conn, Connection)
    assert (conn.kind, conn.topic, conn.bind, conn.hwm, conn.address) == (
        "subscriber",
        "BTC",
        True,
        10,
        "h:1",
    )


@pytest.mark.parametrize(
    ("declare", "label"),
    [
        (lambda app: app.replyer("x")(handler), "in.x (replyer)"),
        (lambda app: app.subscriber("x")(handler), "in.x (subscriber)"),
        (lambda app: app.requester("x"), "out.x (requester)"),
        (lambda app: app.publisher("x"), "out.x (publisher)"),
        (lambda app: app.external_target("x", handler), "out.x (external_target)"),
    ],
    ids=["replyer", "subscriber", "requester", "publisher", "external_target"],
)
def test_connection_label_names_side_name_and_kind(
    declare: Callable[[App], Any], label: str
) -> None:
    app = App("demo")
    declare(app)
    assert app.connections["x"].label == label


def test_replyer_binds_and_publisher_binds_unless_xpub() -> None:
    app = App("demo")
    app.replyer("r")(handler)
    app.publisher("p")
    app.publisher("x", xpub=True)
    bound = {name: conn.bind for name, conn in app.connections.items()}
    assert bound == {"r": True, "p": True, "x": False}


# -- predecessor-shaped views ---------------------------------------------------------------


def design_app() -> tuple[App, Callable[..., Any]]:
    app = App("orders", config=OrdersConfig)

    @app.replyer("cancel_order", args=CancelOrder, returns=Cancelled)
    def cancel_order(args: Any, to_send: Any, config: Any) -> Cancelled:
        return Cancelled(order_id=args.order_id, ok=True)

    app.publisher("order_events", args={"order_id": str, "event": str}, topic="orders")
    return app, cancel_order


def test_connection_models_has_the_predecessor_replyer_shape() -> None:
    app, cancel_order = design_app()
    assert app.connection_models["in"] == {
        "cancel_order": {
            "connection_type": "replyer",
            "required_creation_arguments": {"connection_function": cancel_order},
            "optional_creation_arguments": {},
            "required_arguments": {"order_id": str},
            "optional_arguments": {"reason": str},
            "required_return_arguments": {"order_id": str, "ok": bool},
            "optional_return_arguments": {},
        }
    }


def test_connection_models_has_the_predecessor_publisher_shape() -> None:
    app, _ = design_app()
    assert app.connection_models["out"] == {
        "order_events": {
            "connection_type": "publisher",
            "required_creation_arguments": {},
            "optional_creation_arguments": {"topic": "orders"},
            "required_arguments": {"order_id": str, "event": str},
            "optional_arguments": {},
        }
    }


def test_connection_models_of_an_empty_app() -> None:
    assert App("demo").connection_models == {"in": {}, "out": {}}


def test_connection_models_of_a_requester_include_returns() -> None:
    app = App("demo")
    app.requester("exchange", args={"id": str}, returns={"ok": bool}, optional_returns={"n": int})
    assert app.connection_models["out"]["exchange"] == {
        "connection_type": "requester",
        "required_creation_arguments": {},
        "optional_creation_arguments": {},
        "required_arguments": {"id": str},
        "optional_arguments": {},
        "required_return_arguments": {"ok": bool},
        "optional_return_arguments": {"n": int},
    }


def test_connection_models_of_an_external_target_name_the_target() -> None:
    app = App("demo")
    app.external_target("dumps", "json:dumps", args={"obj": list})
    model = app.connection_models["out"]["dumps"]
    assert model["connection_type"] == "external_target"
    assert model["required_creation_arguments"] == {"target": "json:dumps"}


def test_connection_models_mark_binding_subscribers_and_xpub_publishers() -> None:
    app = App("demo")
    app.subscriber("prices", bind=True)(handler)
    app.publisher("events", xpub=True)
    models = app.connection_models
    assert models["in"]["prices"]["optional_creation_arguments"] == {"is_binder": True}
    assert models["out"]["events"]["optional_creation_arguments"] == {"is_x_pub": True}


def test_config_model_from_an_attrs_class() -> None:
    app, _ = design_app()
    assert app.config_model == {"required": {"symbol": str}, "optional": {"size": int}}


def test_config_model_from_a_predecessor_dict() -> None:
    app = App("demo", config={"required": {"symbol": str}, "optional": {"size": int}})
    assert app.config_model == {"required": {"symbol": str}, "optional": {"size": int}}


def test_config_model_without_a_model_is_empty() -> None:
    assert App("demo").config_model == {"required": {}, "optional": {}}


# -- not running ----------------------------------------------------------------------------


def test_send_outside_a_running_app_raises() -> None:
    app = App("demo")
    app.publisher("events")
    with pytest.raises(RuntimeError, match="not running"):
        app.send("events", {})


def test_endpoints_are_empty_when_not_running() -> None:
    assert App("demo").endpoints == {}


class FakeRun:
    """A `RunState` with canned answers, as a transport would attach it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, dict[str, Any]]] = []
        self.stopped = 0
        self.stats = {"prices": "counters"}
        self.endpoints = {"events": "tcp://192.0.2.1:5555"}

    def send(self, name: str, args: Any, **options: Any) -> Any:
        self.sent.append((name, args, options))
        return "reply"

    def stop(self) -> None:
        self.stopped += 1


def test_an_attached_run_serves_send_stats_endpoints_and_stop() -> None:
    app = App("demo")
    run = FakeRun()
    app.attach(run)
    assert app.send("events", {"n": 1}, timeout=2.0) == "reply"
    assert run.sent == [("events", {"n": 1}, {"timeout": 2.0})]
    assert app.stats == {"prices": "counters"}
    assert app.endpoints == {"events": "tcp://192.0.2.1:5555"}
    app.stop()
    assert run.stopped == 1


def test_wait_ready_returns_between_mark_ready_and_detach() -> None:
    app = App("demo")
    run = FakeRun()
    app.attach(run)
    assert not app.wait_ready(0)
    app.mark_ready()
    assert app.wait_ready(0)
    app.detach(run)
    assert not app.wait_ready(0)
    assert (app.stats, app.endpoints) == ({}, {})
    with pytest.raises(RuntimeError, match="not running"):
        app.send("events", {})
    app.stop()  # not running: nothing to stop
    assert run.stopped == 0


def test_detaching_another_run_keeps_the_attached_one() -> None:
    app = App("demo")
    run = FakeRun()
    app.attach(run)
    app.detach(FakeRun())
    assert app.send("events", {}) == "reply"


def test_finish_setup_closes_registration() -> None:
    app = App("demo")
    app.finish_setup()
    with pytest.raises(RuntimeError, match="cannot register 'events': App 'demo' is already"):
        app.publisher("events")
    with pytest.raises(RuntimeError, match="cannot register 'init'"):
        app.init(hook)


def test_run_returns_what_main_returned() -> None:
    app = App("testapp")

    @app.main
    def main() -> str:
        return "done"

    assert app.run(main=True) == "done"


def test_test_client_is_a_test_client_of_the_app() -> None:
    app = App("demo")
    client = app.test_client()
    assert isinstance(client, TestClient)
    assert client.app is app


def test_repr_names_the_app_and_counts_connections() -> None:
    app = App("demo")
    app.publisher("events")
    assert repr(app) == "<App 'demo' with 1 connections>"


def test_import_string_without_colon_walks_nested_attributes() -> None:
    import json.decoder

    from zmqservice.imports import import_string

    found = import_string("json.decoder.JSONDecoder.decode")
    assert found is json.decoder.JSONDecoder.decode


def test_a_shorthand_can_be_the_whole_model() -> None:
    """docs/decorators.md: ``args=[int]`` takes a list of ints, ``args={str: int}`` a map."""
    app = App("shapes")

    @app.replyer("total", args=[int], returns={"sum": int})
    def total(args: list[int]) -> dict[str, int]:
        return {"sum": sum(args)}

    @app.replyer("keys", args={str: int}, returns=[str])
    def keys(args: dict[str, int]) -> list[str]:
        return sorted(args)

    client = app.test_client()
    assert client.request("total", [1, 2, 3]) == {"sum": 6}
    assert client.request("keys", {"b": 1, "a": 2}) == ["a", "b"]
    with pytest.raises(ValidationError, match=r"expected int, got str @ \$\[1\]"):
        client.request("total", [1, "2"])
