"""The IO-free dispatch core, driven directly with a recording `Outbound`."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import uuid
from decimal import Decimal
from typing import Any

import msgpack
import pytest

from zmqservice import (
    App,
    ConfigError,
    Connection,
    DecodeError,
    RemoteError,
    RemoteValidationError,
    ValidationError,
    codec,
    get_logger,
)
from zmqservice.dispatch import Dispatcher
from zmqservice.log import WORKFLOW_ID
from zmqservice.sending import call_target

LOG = get_logger()


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


class Recorder:
    """An `Outbound` that records frames and answers every request with `reply`."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.frames: list[tuple[str, bytes]] = []
        self.reply = reply

    def request(self, conn: Connection, frame: bytes, *options: Any) -> bytes:
        self.frames.append((conn.name, frame))
        _, workflow_id = codec.decode_request(frame)
        return self.reply or codec.encode_reply({"ok": True}, workflow_id)

    def publish(self, conn: Connection, frame: bytes) -> None:
        self.frames.append((conn.name, frame))

    def call(self, conn: Connection, target: Any, args: Any) -> Any:
        return call_target(target, args)

    def workflow_ids(self) -> list[str]:
        return [codec.decode_published(frame, b"")[1] for _, frame in self.frames]


def make_app() -> App:
    app = App("demo")
    app.requester("exchange", args={"order_id": str}, returns={"ok": bool})
    app.publisher("order_events", args={"order_id": str, "event": str}, topic="orders")
    return app


def reply_to(app: App, name: str, args: Any, workflow_id: str = "W", config: Any = None) -> Any:
    dispatcher = Dispatcher(app, config, Recorder())
    return codec.decode(
        dispatcher.replier(app.connections[name])(codec.encode_request(args, workflow_id))
    )


def answer(app: App, name: str, args: Any, config: Any = None) -> Any:
    """The return_args of one request, failing loudly on an error reply."""
    reply = reply_to(app, name, args, config=config)
    assert "error" not in reply, reply
    return reply["return_args"]


# -- injection by name ----------------------------------------------------------------------


def test_handler_with_args_only_receives_the_args() -> None:
    app = App("demo")

    @app.replyer("echo")
    def echo(args: Any) -> Any:
        return args

    assert answer(app, "echo", {"a": 1}) == {"a": 1}


def test_handler_with_args_and_to_send_can_send() -> None:
    app = make_app()

    @app.replyer("cancel")
    def cancel(args: Any, to_send: Any) -> Any:
        return to_send("exchange", {"order_id": args})

    assert answer(app, "cancel", "A1") == {"ok": True}


def test_handler_with_args_and_config_receives_the_config() -> None:
    app = App("demo")

    @app.replyer("symbol")
    def symbol(args: Any, config: Any) -> Any:
        return [args, config["symbol"]]

    assert answer(app, "symbol", 1, config={"symbol": "BTC"}) == [1, "BTC"]


def test_handler_may_take_config_before_to_send_by_name() -> None:
    app = App("demo")

    @app.replyer("ordered")
    def ordered(args: Any, config: Any, to_send: Any) -> Any:
        return [args, config, callable(to_send)]

    assert answer(app, "ordered", 1, config="cfg") == [1, "cfg", True]


def test_handler_without_parameters_is_called_without_args() -> None:
    app = App("demo")

    @app.replyer("ping")
    def ping() -> str:
        return "pong"

    assert answer(app, "ping", {"ignored": True}) == "pong"


def test_handler_with_only_config_receives_only_the_config() -> None:
    app = App("demo")

    @app.replyer("settings")
    def settings(config: Any) -> Any:
        return config

    assert answer(app, "settings", "ignored", config={"symbol": "BTC"}) == {"symbol": "BTC"}


def test_handler_with_a_keyword_only_config_receives_it() -> None:
    app = App("demo")

    @app.replyer("kw")
    def kw(args: Any, *, config: Any) -> Any:
        return [args, config]

    assert answer(app, "kw", 1, config=2) == [1, 2]


def test_handler_with_any_first_parameter_name_receives_the_args() -> None:
    app = App("demo")

    @app.replyer("named")
    def named(request: Any, to_send: Any) -> Any:
        return request

    assert answer(app, "named", [1]) == [1]


def test_predecessor_handler_with_other_names_gets_everything_positionally() -> None:
    app = make_app()

    @app.replyer("legacy")
    def legacy(a: Any, b: Any, c: Any) -> Any:
        return [a, b("exchange", {"order_id": "A1"}), c]

    assert answer(app, "legacy", 1, config={"k": 2}) == [1, {"ok": True}, {"k": 2}]


def test_predecessor_handler_naming_only_to_send_still_gets_the_config() -> None:
    app = App("demo")

    @app.replyer("legacy")
    def legacy(args: Any, to_send: Any, conf: Any) -> Any:
        return [args, conf]

    assert answer(app, "legacy", 1, config={"k": 2}) == [1, {"k": 2}]


def test_handler_with_var_keywords_receives_to_send_and_config() -> None:
    app = App("demo")

    @app.replyer("kwargs")
    def kwargs(args: Any, **extra: Any) -> Any:
        return sorted(extra)

    assert answer(app, "kwargs", 1) == ["config", "to_send"]


def test_handler_receives_a_class_instance_for_a_class_model() -> None:
    app = App("demo")

    @app.replyer("price", args={"p": Decimal}, returns={"doubled": Decimal})
    def price(args: Any) -> Any:
        return {"doubled": args["p"] * 2}

    assert answer(app, "price", {"p": Decimal("1.25")}) == {"doubled": Decimal("2.50")}


# -- workflow ids ---------------------------------------------------------------------------


def sending_app() -> App:
    app = make_app()

    @app.replyer("cancel")
    def cancel(args: Any, to_send: Any) -> str:
        to_send("exchange", {"order_id": "A1"})
        to_send("order_events", {"order_id": "A1", "event": "cancelled"})
        to_send("exchange", {"order_id": "A2"})
        return "done"

    @app.subscriber("fills")
    def fills(args: Any, to_send: Any) -> None:
        to_send("exchange", {"order_id": "F1"})

    @app.main
    def main(to_send: Any) -> None:
        to_send("exchange", {"order_id": "M1"})
        to_send("order_events", {"order_id": "M1", "event": "placed"})

    @app.init
    def init(to_send: Any) -> None:
        to_send("exchange", {"order_id": "I1"})

    return app


def test_onward_calls_of_a_request_are_numbered_from_its_workflow_id() -> None:
    app, outbound = sending_app(), Recorder()
    replier = Dispatcher(app, None, outbound).replier(app.connections["cancel"])
    replier(codec.encode_request(None, "W"))
    assert outbound.workflow_ids() == ["W_1", "W_2", "W_3"]


def test_numbering_starts_again_for_each_message() -> None:
    app, outbound = sending_app(), Recorder()
    replier = Dispatcher(app, None, outbound).replier(app.connections["cancel"])
    replier(codec.encode_request(None, "W"))
    replier(codec.encode_request(None, "V"))
    assert outbound.workflow_ids()[3:] == ["V_1", "V_2", "V_3"]


def test_reply_carries_the_request_workflow_id() -> None:
    assert reply_to(sending_app(), "cancel", None, "W") == {
        "return_args": "done",
        "workflow_id": "W",
    }


def test_request_without_workflow_id_gets_a_fresh_uuid() -> None:
    app, outbound = sending_app(), Recorder()
    replier = Dispatcher(app, None, outbound).replier(app.connections["cancel"])
    reply = codec.decode(replier(packb({"args": None})))
    uuid.UUID(reply["workflow_id"])
    assert outbound.workflow_ids()[0] == reply["workflow_id"] + "_1"


def test_uuid_marker_workflow_id_is_used_as_its_string() -> None:
    app, outbound = sending_app(), Recorder()
    replier = Dispatcher(app, None, outbound).replier(app.connections["cancel"])
    wid = uuid.UUID(int=7)
    marker = {"__uuid__": True, "as_str": str(wid)}
    reply = codec.decode(replier(packb({"args": None, "workflow_id": marker})))
    assert reply["workflow_id"] == str(wid)
    assert outbound.workflow_ids()[0] == f"{wid}_1"


def test_subscriber_onward_calls_are_numbered_from_the_published_workflow_id() -> None:
    app, outbound = sending_app(), Recorder()
    receiver = Dispatcher(app, None, outbound).receiver(app.connections["fills"])
    receiver(codec.encode_request(None, "P"))
    assert outbound.workflow_ids() == ["P_1"]


def test_main_numbers_its_calls_from_one_fresh_uuid() -> None:
    app, outbound = sending_app(), Recorder()
    Dispatcher(app, None, outbound).run_hook("main")
    first, second = outbound.workflow_ids()
    root = first.removesuffix("_1")
    uuid.UUID(root)
    assert (first, second) == (f"{root}_1", f"{root}_2")


def test_hooks_share_one_root_workflow_id_per_run() -> None:
    # DESIGN 4: where no id came in, the run takes one fresh id X and numbers its calls.
    app, outbound = sending_app(), Recorder()
    dispatcher = Dispatcher(app, None, outbound)
    dispatcher.run_hook("init")
    dispatcher.run_hook("init")
    first, second = outbound.workflow_ids()
    root = dispatcher.root_sender.workflow_id
    assert (first, second) == (f"{root}_1", f"{root}_2")
    uuid.UUID(root)


def test_root_sender_numbers_calls_from_many_threads_without_duplicates() -> None:
    import threading

    app, outbound = sending_app(), Recorder()
    dispatcher = Dispatcher(app, None, outbound)
    send = dispatcher.root_sender

    def work() -> None:
        for _ in range(200):
            send("exchange", {"order_id": "A1"})

    threads = [threading.Thread(target=work, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    ids = outbound.workflow_ids()
    assert len(ids) == 800
    assert len(set(ids)) == 800


def test_workflow_id_is_set_while_the_handler_runs_and_reset_after() -> None:
    app = App("demo")
    seen: list[str] = []

    @app.replyer("look")
    def look(args: Any) -> None:
        seen.append(WORKFLOW_ID.get())

    reply_to(app, "look", None, "W")
    assert (seen, WORKFLOW_ID.get()) == (["W"], "")


def test_log_records_in_a_handler_carry_the_workflow_id(caplog: pytest.LogCaptureFixture) -> None:
    app = App("demo")

    @app.replyer("log")
    def log(args: Any) -> None:
        LOG.warning("handling %s", args)

    with caplog.at_level(logging.WARNING, logger="zmqservice"):
        reply_to(app, "log", "A1", "W")
    record = next(r for r in caplog.records if r.getMessage() == "handling A1")
    assert record.workflow_id == "W"  # type: ignore[attr-defined]


# -- error replies --------------------------------------------------------------------------


def error_app(calls: list[Any] | None = None) -> App:
    app = App("demo")

    @app.replyer("cancel", args={"order_id": str}, returns={"ok": bool})
    def cancel(args: Any) -> Any:
        if calls is not None:
            calls.append(args)
        if args["order_id"] == "boom":
            raise KeyError("missing")
        if args["order_id"] == "bad":
            return {"ok": "yes"}
        return {"ok": True}

    @app.replyer("anything")
    def anything(args: Any) -> Any:
        return object()

    return app


def replier_of(app: App, name: str = "cancel") -> Any:
    replier = Dispatcher(app, None, Recorder()).replier(app.connections[name])
    return lambda frame: codec.decode(replier(frame))


@pytest.mark.parametrize(
    "frame", [b"\xc1", b"", packb([1, 2])[:-1]], ids=["bad", "empty", "truncated"]
)
def test_bad_bytes_get_a_decode_error_reply(frame: bytes) -> None:
    reply = replier_of(error_app())(frame)
    assert (reply["error"]["type"], reply["workflow_id"]) == ("DecodeError", "")


@pytest.mark.parametrize(
    "envelope", [[1], {"arguments": 1, "workflow_id": "W"}, {"args": 1, "workflow_id": 5}], ids=str
)
def test_bad_envelope_gets_a_decode_error_reply(envelope: Any) -> None:
    assert replier_of(error_app())(packb(envelope))["error"]["type"] == "DecodeError"


def test_broken_marker_gets_a_decode_error_reply() -> None:
    frame = packb({"args": {"__uuid__": True, "as_str": 5}, "workflow_id": "W"})
    assert replier_of(error_app())(frame)["error"]["type"] == "DecodeError"


def test_invalid_args_get_a_validation_error_reply_naming_the_field() -> None:
    reply = replier_of(error_app())(codec.encode_request({"order_id": 5}, "W"))
    assert reply == {
        "return_args": None,
        "workflow_id": "W",
        "error": {
            "type": "ValidationError",
            "message": "in.cancel (replyer) args: expected str, got int @ $.order_id",
        },
    }


def test_invalid_args_never_reach_the_handler() -> None:
    calls: list[Any] = []
    replier_of(error_app(calls))(codec.encode_request({"order_id": 5}, "W"))
    assert calls == []


def test_invalid_return_value_gets_a_validation_error_reply() -> None:
    reply = replier_of(error_app())(codec.encode_request({"order_id": "bad"}, "W"))
    assert reply["error"] == {
        "type": "ValidationError",
        "message": "in.cancel (replyer) return value: expected bool, got str @ $.ok",
    }


def test_handler_exception_gets_a_handler_error_reply() -> None:
    reply = replier_of(error_app())(codec.encode_request({"order_id": "boom"}, "W"))
    assert reply["error"] == {"type": "HandlerError", "message": "KeyError: 'missing'"}


def test_unencodable_return_value_gets_a_handler_error_reply() -> None:
    reply = replier_of(error_app(), "anything")(codec.encode_request(None, "W"))
    assert reply["error"]["type"] == "HandlerError"
    assert "cannot encode the return value" in reply["error"]["message"]


def test_replyer_keeps_answering_after_errors() -> None:
    reply = replier_of(error_app())
    reply(b"\xc1")
    reply(codec.encode_request({"order_id": 5}, "W"))
    reply(codec.encode_request({"order_id": "boom"}, "W"))
    reply(codec.encode_request({"order_id": "bad"}, "W"))
    assert reply(codec.encode_request({"order_id": "A1"}, "OK")) == {
        "return_args": {"ok": True},
        "workflow_id": "OK",
    }


# -- subscribers ----------------------------------------------------------------------------


def subscriber_app(got: list[Any], topic: str = "") -> App:
    app = App("demo")

    @app.subscriber("prices", args={"symbol": str}, topic=topic)
    def prices(args: Any) -> None:
        if args["symbol"] == "boom":
            raise RuntimeError("boom")
        got.append(args)

    return app


def receiver_of(app: App) -> Any:
    return Dispatcher(app, None, Recorder()).receiver(app.connections["prices"])


def test_subscriber_handler_receives_the_args() -> None:
    got: list[Any] = []
    assert receiver_of(subscriber_app(got))(codec.encode_request({"symbol": "BTC"}, "P")) is None
    assert got == [{"symbol": "BTC"}]


def test_subscriber_with_a_topic_takes_frames_of_its_topic() -> None:
    got: list[Any] = []
    frame = packb("BTC") + codec.encode_request({"symbol": "BTC"}, "P")
    receiver_of(subscriber_app(got, topic="BTC"))(frame)
    assert got == [{"symbol": "BTC"}]


def test_subscriber_without_a_topic_takes_frames_with_a_topic() -> None:
    got: list[Any] = []
    frame = packb("BTC") + codec.encode_request({"symbol": "BTC"}, "P")
    receiver_of(subscriber_app(got))(frame)
    assert got == [{"symbol": "BTC"}]


def test_subscriber_returns_a_decode_error_for_bad_bytes() -> None:
    assert isinstance(receiver_of(subscriber_app([]))(b"\xc1"), DecodeError)


def test_subscriber_returns_a_validation_error_for_invalid_args() -> None:
    error = receiver_of(subscriber_app([]))(codec.encode_request({"symbol": 1}, "P"))
    assert isinstance(error, ValidationError)
    assert "in.prices (subscriber) args" in str(error)


def test_subscriber_returns_the_handler_exception() -> None:
    error = receiver_of(subscriber_app([]))(codec.encode_request({"symbol": "boom"}, "P"))
    assert isinstance(error, RuntimeError)


def test_subscriber_keeps_receiving_after_errors() -> None:
    got: list[Any] = []
    receive = receiver_of(subscriber_app(got))
    receive(b"\xc1")
    receive(codec.encode_request({"symbol": 1}, "P"))
    receive(codec.encode_request({"symbol": "boom"}, "P"))
    receive(codec.encode_request({"symbol": "ETH"}, "P"))
    assert got == [{"symbol": "ETH"}]


# -- outbound -------------------------------------------------------------------------------


def test_published_frame_is_the_topic_then_the_envelope() -> None:
    app, outbound = make_app(), Recorder()
    dispatcher = Dispatcher(app, None, outbound)
    dispatcher.send("order_events", {"order_id": "A", "event": "x"}, "W_1")
    pub = dispatcher.publisher_ids["order_events"]  # numbered: see docs/reliability.md
    envelope = {"args": {"order_id": "A", "event": "x"}, "workflow_id": "W_1", "seq": 1, "pub": pub}
    assert outbound.frames == [("order_events", packb("orders") + packb(envelope))]


def test_request_returns_the_decoded_return_args() -> None:
    outbound = Recorder(reply=codec.encode_reply({"ok": True, "at": Decimal("1.5")}, "W_1"))
    app = App("demo")
    app.requester("exchange")
    assert Dispatcher(app, None, outbound).send("exchange", 1, "W_1") == {
        "ok": True,
        "at": Decimal("1.5"),
    }


def test_invalid_outbound_args_raise_before_anything_is_sent() -> None:
    app, outbound = make_app(), Recorder()
    with pytest.raises(ValidationError, match=r"out\.exchange \(requester\) args: expected str"):
        Dispatcher(app, None, outbound).send("exchange", {"order_id": 1}, "W_1")
    assert outbound.frames == []


def test_invalid_published_args_raise_before_anything_is_sent() -> None:
    app, outbound = make_app(), Recorder()
    with pytest.raises(ValidationError, match=r"out\.order_events \(publisher\) args"):
        Dispatcher(app, None, outbound).send("order_events", {"order_id": "A"}, "W_1")
    assert outbound.frames == []


def test_error_reply_raises_remote_error() -> None:
    outbound = Recorder(reply=codec.encode_error("HandlerError", "KeyError: 'x'", "W_1"))
    with pytest.raises(RemoteError) as info:
        Dispatcher(make_app(), None, outbound).send("exchange", {"order_id": "A"}, "W_1")
    assert (info.value.type, info.value.message) == ("HandlerError", "KeyError: 'x'")


def test_validation_error_reply_raises_remote_validation_error() -> None:
    outbound = Recorder(reply=codec.encode_error("ValidationError", "bad", "W_1"))
    with pytest.raises(RemoteValidationError, match="ValidationError: bad"):
        Dispatcher(make_app(), None, outbound).send("exchange", {"order_id": "A"}, "W_1")


def test_unknown_out_connection_raises_naming_it_and_the_known_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"no out-connection named 'exchnage' \(out-connections: exchange, order_events\)",
    ):
        Dispatcher(make_app(), None, Recorder()).send("exchnage", {}, "W_1")


# -- external targets -----------------------------------------------------------------------


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


def external_app(target: Any, **models: Any) -> App:
    app = App("demo")
    app.external_target("target", target, **models)
    return app


def call_external(app: App, args: Any) -> Any:
    return Dispatcher(app, None, Recorder()).send("target", args, "W_1")


def test_external_callable_is_called_with_the_args_as_keywords() -> None:
    app = external_app(add, args={"a": int, "b": int}, returns={"sum": int})
    assert call_external(app, {"a": 1, "b": 2}) == {"sum": 3}


def test_external_import_string_is_imported_and_called() -> None:
    assert call_external(external_app("json:dumps"), {"obj": [1, 2]}) == json.dumps([1, 2])


def test_external_import_string_may_name_a_function_in_a_test_module() -> None:
    assert call_external(external_app(f"{__name__}:add"), {"a": 2, "b": 3}) == {"sum": 5}


def test_external_target_decorator_form_calls_the_function() -> None:
    app = App("demo")

    @app.external_target("double", args={"x": int}, returns={"y": int})
    def double(x: int) -> dict[str, int]:
        return {"y": 2 * x}

    assert Dispatcher(app, None, Recorder()).send("double", {"x": 4}, "W_1") == {"y": 8}


def test_external_target_with_non_map_args_gets_them_positionally() -> None:
    assert call_external(external_app(sorted), [3, 1, 2]) == [1, 2, 3]


def test_external_target_result_takes_the_codec_round_trip() -> None:
    assert call_external(external_app(lambda: ("a", Decimal("1.5"))), {}) == ["a", Decimal("1.5")]


def test_external_target_args_are_validated_before_the_call() -> None:
    calls: list[Any] = []
    app = external_app(lambda **kw: calls.append(kw), args={"a": int})
    with pytest.raises(ValidationError, match=r"out\.target \(external_target\) args"):
        call_external(app, {"a": "1"})
    assert calls == []


def test_external_target_return_value_is_validated() -> None:
    app = external_app(add, args={"a": int, "b": int}, returns={"sum": str})
    with pytest.raises(ValidationError, match=r"out\.target \(external_target\) return value"):
        call_external(app, {"a": 1, "b": 2})


def test_external_target_that_cannot_be_imported_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"out\.target \(external_target\): cannot import target"):
        Dispatcher(external_app("json:no_such_function"), None, Recorder())


def test_external_target_that_is_not_callable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not callable"):
        Dispatcher(external_app("json:__name__"), None, Recorder())


# -- hooks ----------------------------------------------------------------------------------


def test_missing_hook_runs_as_nothing() -> None:
    assert Dispatcher(App("demo"), None, Recorder()).run_hook("init") is None


def test_main_receives_to_send_and_config_by_name() -> None:
    app = make_app()

    @app.main
    def main(config: Any, to_send: Any) -> Any:
        return [config, to_send("exchange", {"order_id": "A"})]

    assert Dispatcher(app, "cfg", Recorder()).run_hook("main") == ["cfg", {"ok": True}]


def test_predecessor_main_gets_to_send_and_config_positionally() -> None:
    app = make_app()

    @app.main
    def main(send: Any, cfg: Any) -> Any:
        return [send("exchange", {"order_id": "A"}), cfg]

    assert Dispatcher(app, "cfg", Recorder()).run_hook("main") == [{"ok": True}, "cfg"]


def test_main_without_parameters_is_called_bare() -> None:
    app = App("demo")
    app.main(lambda: "ran")
    assert Dispatcher(app, None, Recorder()).run_hook("main") == "ran"


def test_signal_hook_receives_signum_frame_to_send_and_config_by_name() -> None:
    app = App("demo")

    @app.on_sigterm
    def on_sigterm(signum: int, config: Any) -> Any:
        return [signum, config]

    result = Dispatcher(app, "cfg", Recorder()).run_hook("on_sigterm", signal.SIGTERM, None)
    assert result == [signal.SIGTERM, "cfg"]


def test_predecessor_signal_handler_gets_everything_positionally() -> None:
    app = App("demo")

    @app.on_sigint
    def sigint_handler(s: int, f: Any, t: Any, c: Any) -> Any:
        return [s, f, callable(t), c]

    result = Dispatcher(app, "cfg", Recorder()).run_hook("on_sigint", signal.SIGINT, "frame")
    assert result == [signal.SIGINT, "frame", True, "cfg"]


# -- requester replies ----------------------------------------------------------------------


def test_requester_validates_the_reply_a_peer_sent() -> None:
    app = make_app()
    bad_reply = codec.encode_reply({"ok": "yes", "extra": 1}, "W_1")
    dispatcher = Dispatcher(app, None, Recorder(reply=bad_reply))
    with pytest.raises(ValidationError, match=r"out\.exchange \(requester\) reply"):
        dispatcher.send("exchange", {"order_id": "A1"}, "W_1")


def test_requester_returns_a_valid_reply_as_plain_data() -> None:
    dispatcher = Dispatcher(make_app(), None, Recorder())
    assert dispatcher.send("exchange", {"order_id": "A1"}, "W_1") == {"ok": True}


def test_a_subscriber_drops_a_describe_envelope_instead_of_stopping() -> None:
    app = App("demo")
    calls: list[Any] = []

    @app.subscriber("ticks")
    def ticks(args: Any) -> None:
        calls.append(args)

    receive = Dispatcher(app, None, Recorder()).receiver(app.connections["ticks"])
    error = receive(packb({"args": 1, "workflow_id": "w", "_describe": True}))
    assert isinstance(error, DecodeError)
    assert calls == []
    assert receive(packb({"args": 2, "workflow_id": "w"})) is None
    assert calls == [2]


def test_the_dispatch_core_imports_neither_asyncio_nor_zmq() -> None:
    modules = "zmqservice.dispatch, zmqservice.dispatch_async, zmqservice.inbound"
    code = f"import sys, {modules}; print(sorted({{'asyncio', 'zmq'}} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
