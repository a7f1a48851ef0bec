"""Every connection kind over real sockets, apps running in threads."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest
import zmq

from zmqservice import App, get_logger

from .conftest import WAIT_S, Inbox, Runner, pack, wait_for


def until_subscribed(publisher: App, name: str, inbox: Inbox, **extra: Any) -> None:
    """Publish probes until the subscriber hears one (PUB drops before it is connected)."""
    for _ in range(200):
        publisher.send(name, {"kind": "probe", "n": 0, **extra})
        if wait_for(inbox.snapshot, timeout=0.05):
            return
    raise AssertionError(f"subscriber never heard publisher {name!r}")


def adder_app(address: str) -> App:
    app = App("adder")

    @app.replyer("add", args={"a": int, "b": int}, returns={"sum": int}, address=address)
    def add(args: dict[str, int]) -> dict[str, int]:
        return {"sum": args["a"] + args["b"]}

    return app


def client_app(endpoint: str, **options: Any) -> App:
    client = App("client")
    client.requester(
        "add",
        args={"a": int, "b": int},
        returns={"sum": int},
        address=endpoint,
        timeout=5.0,
        **options,
    )
    return client


# -- replyer + requester --------------------------------------------------------------------


def test_request_reply_over_tcp_ephemeral_port(runner: Runner) -> None:
    server = runner.serve(adder_app("tcp://127.0.0.1:0"))
    endpoint = server.endpoints["add"]
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", endpoint)
    assert not endpoint.endswith(":0")
    client = runner.serve(client_app(endpoint))

    assert client.send("add", {"a": 2, "b": 3}) == {"sum": 5}
    assert client.send("add", {"a": -1, "b": 1}) == {"sum": 0}


def test_request_reply_over_ipc(runner: Runner, ipc: Any) -> None:
    endpoint = ipc("adder")
    server = runner.serve(adder_app(endpoint))
    assert server.endpoints["add"] == endpoint
    client = runner.serve(client_app(endpoint))

    assert [client.send("add", {"a": i, "b": i}) for i in range(5)] == [
        {"sum": 2 * i} for i in range(5)
    ]


def test_addresses_dict_overrides_decorator_address(runner: Runner, ipc: Any) -> None:
    endpoint = ipc("override")
    server = runner.serve(
        adder_app("tcp://127.0.0.1:0"), addresses={"in": {"add": {"replyer": endpoint}}}
    )
    assert server.endpoints["add"] == endpoint
    client = runner.serve(client_app(ipc("unused")), {"out": {"add": {"requester": endpoint}}})

    assert client.send("add", {"a": 20, "b": 22}) == {"sum": 42}


def test_requester_inside_a_handler_chains_services(runner: Runner, ipc: Any) -> None:
    back = runner.serve(adder_app(ipc("back")))
    front = App("front")
    front.requester(
        "add",
        args={"a": int, "b": int},
        returns={"sum": int},
        address=back.endpoints["add"],
        timeout=WAIT_S,
    )

    @front.replyer(
        "double_sum", args={"a": int, "b": int}, returns={"twice": int}, address=ipc("f")
    )
    def double_sum(args: dict[str, int], to_send: Any) -> dict[str, int]:
        return {"twice": 2 * to_send("add", args)["sum"]}

    runner.serve(front)
    client = App("client")
    client.requester("double_sum", address=front.endpoints["double_sum"], timeout=5.0)
    runner.serve(client)

    assert client.send("double_sum", {"a": 3, "b": 4}) == {"twice": 14}


# -- publisher + subscriber -----------------------------------------------------------------


def subscriber_app(address: str, inbox: Inbox, *, topic: str = "", bind: bool = False) -> App:
    app = App("listener")

    @app.subscriber(
        "events",
        args={"kind": str, "n": int},
        topic=topic,
        bind=bind,
        address=address,
    )
    def on_event(args: dict[str, Any]) -> None:
        inbox.add(args)

    return app


def publisher_app(address: str, *, topic: str = "", xpub: bool = False) -> App:
    app = App("speaker")
    app.publisher("events", args={"kind": str, "n": int}, topic=topic, xpub=xpub, address=address)
    return app


@pytest.mark.parametrize("topic", ["", "fruit"])
def test_publish_subscribe(runner: Runner, topic: str) -> None:
    inbox = Inbox()
    pub = runner.serve(publisher_app("tcp://127.0.0.1:0", topic=topic))
    runner.serve(subscriber_app(pub.endpoints["events"], inbox, topic=topic))
    until_subscribed(pub, "events", inbox)

    for n in range(1, 6):
        pub.send("events", {"kind": "real", "n": n})

    assert wait_for(lambda: len(inbox.real()) == 5)
    assert inbox.real() == [{"kind": "real", "n": n} for n in range(1, 6)]


def test_unfiltered_subscriber_hears_topic_messages(runner: Runner, ipc: Any) -> None:
    inbox = Inbox()
    pub = runner.serve(publisher_app(ipc("pub"), topic="fruit"))
    runner.serve(subscriber_app(pub.endpoints["events"], inbox, topic=""))
    until_subscribed(pub, "events", inbox)

    pub.send("events", {"kind": "real", "n": 7})

    assert wait_for(inbox.real)
    assert inbox.real() == [{"kind": "real", "n": 7}]


def test_subscriber_with_another_topic_hears_nothing(
    runner: Runner, ipc: Any, zsock: Callable[[int], zmq.Socket[bytes]]
) -> None:
    """One PUB socket, so one ordered stream: the veg subscriber hears the veg message sent
    after the fruit ones (it is connected, and the stream got past them), and nothing else."""
    veg = Inbox()
    pub = zsock(zmq.PUB)
    pub.bind(ipc("pub"))
    runner.serve(subscriber_app(ipc("pub"), veg, topic="veg"))

    def publish(topic: str, kind: str, n: int) -> None:
        pub.send(pack(topic) + pack({"args": {"kind": kind, "n": n}, "workflow_id": "w"}))

    assert wait_for(lambda: publish("veg", "probe", 0) or veg.snapshot(), step=0.05)
    for n in range(1, 4):
        publish("fruit", "real", n)
    publish("veg", "end", 4)

    assert wait_for(lambda: {"kind": "end", "n": 4} in veg.snapshot())
    assert veg.real() == [{"kind": "end", "n": 4}]  # no fruit got through the filter


def test_bound_subscriber_filters_connecting_xpub_publishers(runner: Runner, ipc: Any) -> None:
    inbox = Inbox()
    sub = runner.serve(subscriber_app(ipc("sub"), inbox, topic="fruit", bind=True))
    endpoint = sub.endpoints["events"]
    pub = App("speaker")
    pub.publisher("fruit", args={"kind": str, "n": int}, topic="fruit", xpub=True, address=endpoint)
    pub.publisher("veg", args={"kind": str, "n": int}, topic="veg", xpub=True, address=endpoint)
    runner.serve(pub)
    until_subscribed(pub, "fruit", inbox)

    for n in range(1, 11):
        pub.send("veg", {"kind": "veg", "n": n})
        pub.send("fruit", {"kind": "fruit", "n": n})

    assert wait_for(lambda: len(inbox.real()) == 10)
    assert inbox.real() == [{"kind": "fruit", "n": n} for n in range(1, 11)]


def test_bound_subscriber_hears_connecting_xpub_publisher(runner: Runner) -> None:
    inbox = Inbox()
    sub = runner.serve(subscriber_app("tcp://127.0.0.1:0", inbox, bind=True))
    pub = runner.serve(publisher_app(sub.endpoints["events"], xpub=True))
    until_subscribed(pub, "events", inbox)

    pub.send("events", {"kind": "real", "n": 1})

    assert wait_for(inbox.real)
    assert inbox.real() == [{"kind": "real", "n": 1}]


def test_subscriber_survives_invalid_published_args(runner: Runner, ipc: Any) -> None:
    inbox = Inbox()
    pub = App("speaker")
    pub.publisher("events", address=ipc("pub"))  # no model: sends anything
    runner.serve(pub)
    runner.serve(subscriber_app(pub.endpoints["events"], inbox))
    until_subscribed(pub, "events", inbox)

    pub.send("events", {"kind": "bad", "n": "not an int"})
    pub.send("events", {"unknown": 1})
    pub.send("events", {"kind": "real", "n": 2})

    assert wait_for(inbox.real)
    assert inbox.real() == [{"kind": "real", "n": 2}]


# -- external targets -----------------------------------------------------------------------


def test_external_targets_inside_a_running_service(runner: Runner, ipc: Any) -> None:
    calls: list[dict[str, Any]] = []

    def rate(pair: str) -> dict[str, Any]:
        calls.append({"pair": pair})
        return {"rate": Decimal("1.25")}

    app = App("quotes")
    app.external_target("rate", rate, args={"pair": str}, returns={"rate": Decimal})
    app.external_target(
        "shorten", "textwrap:shorten", args={"text": str, "width": int}, returns=None
    )

    @app.external_target("fee", args={"amount": Decimal}, returns={"fee": Decimal})
    def fee(amount: Decimal) -> dict[str, Decimal]:
        return {"fee": amount / 100}

    @app.replyer("quote", args={"pair": str, "amount": Decimal}, address=ipc("quotes"))
    def quote(args: dict[str, Any], to_send: Any) -> dict[str, Any]:
        rate = to_send("rate", {"pair": args["pair"]})["rate"]
        total = args["amount"] * rate
        return {
            "total": total,
            "fee": to_send("fee", {"amount": total})["fee"],
            "label": to_send("shorten", {"text": f"{args['pair']} quote for you", "width": 12}),
        }

    runner.serve(app)
    client = App("client")
    client.requester("quote", address=app.endpoints["quote"], timeout=5.0)
    runner.serve(client)

    reply = client.send("quote", {"pair": "EURUSD", "amount": Decimal("100")})

    assert reply == {"total": Decimal("125.00"), "fee": Decimal("1.25"), "label": "EURUSD [...]"}
    assert calls == [{"pair": "EURUSD"}]


# -- values that need markers ---------------------------------------------------------------


@attrs.define
class Payment:
    amount: Decimal
    id: UUID
    tags: set[str]
    at: dt.datetime


def test_decimal_uuid_set_datetime_cross_the_wire(runner: Runner, ipc: Any) -> None:
    seen: list[Payment] = []
    server = App("payments")

    @server.replyer("pay", args=Payment, returns=Payment, address=ipc("pay"))
    def pay(args: Payment) -> Payment:
        seen.append(args)
        return Payment(
            amount=args.amount * 2,
            id=args.id,
            tags=args.tags | {"paid"},
            at=args.at + dt.timedelta(days=1),
        )

    runner.serve(server)
    client = App("client")
    client.requester(
        "pay", args=Payment, returns=Payment, address=server.endpoints["pay"], timeout=WAIT_S
    )
    runner.serve(client)
    uid = uuid4()
    at = dt.datetime(2024, 5, 17, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)

    reply = client.send("pay", Payment(amount=Decimal("10.05"), id=uid, tags={"a", "b"}, at=at))

    assert seen == [Payment(amount=Decimal("10.05"), id=uid, tags={"a", "b"}, at=at)]
    assert isinstance(seen[0].amount, Decimal)
    assert isinstance(seen[0].id, UUID)
    assert reply == {
        "amount": Decimal("20.10"),
        "id": uid,
        "tags": {"a", "b", "paid"},
        "at": "2024-05-18T12:30:15.250000+00:00",
    }


def test_untyped_values_keep_their_types(runner: Runner, ipc: Any) -> None:
    server = App("echo")

    @server.replyer("echo", address=ipc("echo"))
    def echo(args: Any) -> Any:
        return args

    runner.serve(server)
    client = App("client")
    client.requester("echo", address=server.endpoints["echo"], timeout=5.0)
    runner.serve(client)
    value = {
        "d": Decimal("-0.000001"),
        "u": UUID(int=7),
        "s": {1, 2, 3},
        "nested": [{"d": Decimal("1E+3")}, None, True, 1.5, b"\x00raw"],
    }

    assert client.send("echo", value) == value


# -- workflow ids ---------------------------------------------------------------------------


def test_workflow_id_numbering_crosses_services(
    runner: Runner, ipc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zmqservice")
    log = get_logger()
    back = App("back")

    @back.replyer("back", address=ipc("back"))
    def back_handler(args: Any) -> Any:
        log.info("back got %s", args)
        return args

    runner.serve(back)
    front = App("front")
    front.requester("back", address=back.endpoints["back"], timeout=5.0)

    @front.replyer("front", address=ipc("front"))
    def front_handler(args: Any, to_send: Any) -> Any:
        log.info("front got %s", args)
        return [to_send("back", "first"), to_send("back", "second")]

    runner.serve(front)
    client = App("client")
    client.requester("front", address=front.endpoints["front"], timeout=5.0)
    runner.serve(client)

    assert client.send("front", "one") == ["first", "second"]
    assert client.send("front", "two") == ["first", "second"]

    seen = [
        (record.getMessage(), record.workflow_id)  # type: ignore[attr-defined]
        for record in caplog.records
        if record.getMessage().startswith(("front got", "back got"))
    ]
    root = seen[0][1].removesuffix("_1")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", root)
    assert seen == [
        ("front got one", f"{root}_1"),
        ("back got first", f"{root}_1_1"),
        ("back got second", f"{root}_1_2"),
        ("front got two", f"{root}_2"),
        ("back got first", f"{root}_2_1"),
        ("back got second", f"{root}_2_2"),
    ]


def test_publisher_inside_a_replyer_handler(runner: Runner, ipc: Any) -> None:
    inbox = Inbox()
    orders = App("orders")
    orders.publisher(
        "order_events", args={"kind": str, "n": int}, topic="orders", address=ipc("events")
    )

    @orders.replyer("cancel", args={"n": int}, returns={"ok": bool}, address=ipc("cancel"))
    def cancel(args: dict[str, int], to_send: Any) -> dict[str, bool]:
        to_send("order_events", {"kind": "cancelled", "n": args["n"]})
        return {"ok": True}

    runner.serve(orders)
    runner.serve(subscriber_app(orders.endpoints["order_events"], inbox, topic="orders"))
    until_subscribed(orders, "order_events", inbox)
    client = App("client")
    client.requester("cancel", address=orders.endpoints["cancel"], timeout=5.0)
    runner.serve(client)

    assert client.send("cancel", {"n": 5}) == {"ok": True}
    assert wait_for(inbox.real)
    assert inbox.real() == [{"kind": "cancelled", "n": 5}]


def test_requester_used_from_several_threads(runner: Runner) -> None:
    server = runner.serve(adder_app("tcp://127.0.0.1:0"))
    client = runner.serve(client_app(server.endpoints["add"]))
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            results[worker] = [client.send("add", {"a": worker, "b": i}) for i in range(20)]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert results == {w: [{"sum": w + i} for i in range(20)] for w in range(4)}


def test_large_payload_round_trip(runner: Runner, ipc: Any) -> None:
    server = App("echo", max_message_size=4 << 20)  # the default limit is 1 MiB

    @server.replyer("echo", address=ipc("echo"))
    def echo(args: Any) -> Any:
        return args

    runner.serve(server)
    client = App("client")
    client.requester("echo", address=server.endpoints["echo"], timeout=5.0)
    runner.serve(client)
    payload = {"blob": b"\xab" * 2_000_000, "items": list(range(50_000))}

    assert client.send("echo", payload) == payload


def test_int_keyed_maps_are_refused_when_declared() -> None:
    # msgpack peers (the predecessor too) decode only str map keys, so a model that would
    # put int keys on the wire fails at declaration, not on the first message.
    server = App("counts")
    with pytest.raises(TypeError, match="map keys must be str"):
        server.replyer("invert", args={"names": {int: str}})
