"""In-process, socket-free per-message costs: the test client and each dispatch hot path.

Each case is a zero-argument callable doing one message's worth of work, so
`bench/run.py` can time it and `bench/profile_hotpath.py` can profile it. The ``raw`` cases
do the msgpack work the raw pyzmq peers of `bench/workers.py` do, for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
from workers import ACK, QUOTE, SYMBOL, TOPIC, WORKFLOW_ID, Ack, Quote, Tick

from zmqservice import App
from zmqservice.sending import call_target


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


REQUEST_FRAME = _packb({"args": QUOTE, "workflow_id": WORKFLOW_ID})
REPLY_FRAME = _packb({"return_args": ACK, "workflow_id": WORKFLOW_ID})
TICK = {"seq": 7, "symbol": SYMBOL, "price": 101.25, "qty": 7}
TICK_FRAME = _packb(TOPIC) + _packb({"args": TICK, "workflow_id": WORKFLOW_ID})


def server_app() -> App:
    """The benchmark's replyer and subscriber, as in `workers.zs_rep_server`."""
    app = App("bench_server")

    @app.replyer("quote", args=Quote, returns=Ack)
    def quote(args: Quote) -> Ack:
        return Ack(symbol=args.symbol, qty=args.qty, accepted=True)

    @app.subscriber("ticks", args=Tick, topic=TOPIC)
    def on_tick(args: Tick) -> None:
        pass

    return app


def client_app() -> App:
    """The benchmark's requester and publisher, as in `workers.zs_req_client`."""
    app = App("bench_client")
    app.requester("quote", args=Quote, returns=Ack)
    app.publisher("ticks", args=Tick, topic=TOPIC)
    return app


class CannedOutbound:
    """An `Outbound` with no socket: every request gets the same reply frame."""

    def request(self, conn: Any, frame: bytes, *options: Any) -> bytes:
        return REPLY_FRAME

    def publish(self, conn: Any, frame: bytes) -> None:
        pass

    def call(self, conn: Any, target: Any, args: Any) -> Any:
        return call_target(target, args)


def test_client_case() -> Callable[[], Any]:
    """``app.test_client().request("quote", {...})`` as a test would call it."""
    client = server_app().test_client()
    if client.request("quote", QUOTE) != ACK:
        raise RuntimeError("test client reply differs from ACK")
    return lambda: client.request("quote", QUOTE)


def dispatch_cases() -> dict[str, Callable[[], Any]]:
    """The four per-message framework paths, without sockets (uses zmqservice internals)."""
    from zmqservice.dispatch import Dispatcher

    server = server_app()
    sdisp = Dispatcher(server, {}, CannedOutbound())
    replier = sdisp.replier(server.connections["quote"])
    receiver = sdisp.receiver(server.connections["ticks"])
    client = client_app()
    to_send = Dispatcher(client, {}, CannedOutbound()).root_sender
    quote = Quote(**QUOTE)  # type: ignore[arg-type]
    if msgpack.unpackb(replier(REQUEST_FRAME))["return_args"] != ACK:
        raise RuntimeError("replier reply differs from ACK")
    if receiver(TICK_FRAME) is not None:
        raise RuntimeError("receiver rejected the tick frame")

    def publish() -> None:
        to_send("ticks", Tick(seq=7, symbol=SYMBOL, price=101.25, qty=7))

    return {
        "replyer   Dispatcher.replier(conn)(frame)": lambda: replier(REQUEST_FRAME),
        "requester to_send('quote', Quote) w/o socket": lambda: to_send("quote", quote),
        "publisher to_send('ticks', Tick(...)) w/o socket": publish,
        "subscriber Dispatcher.receiver(conn)(frame)": lambda: receiver(TICK_FRAME),
    }


def raw_cases() -> dict[str, Callable[[], Any]]:
    """What the raw pyzmq peers do per message, minus the socket calls."""
    unpackb = msgpack.unpackb
    prefix = _packb(TOPIC)
    skip = len(prefix)

    def server() -> bytes:
        envelope = unpackb(REQUEST_FRAME, raw=False)
        args = envelope["args"]
        reply = {"symbol": args["symbol"], "qty": args["qty"], "accepted": True}
        return _packb({"return_args": reply, "workflow_id": envelope["workflow_id"]})

    def client() -> Any:
        _packb({"args": QUOTE, "workflow_id": WORKFLOW_ID})
        return unpackb(REPLY_FRAME, raw=False)["return_args"]

    def publish() -> bytes:
        args = {"seq": 7, "symbol": SYMBOL, "price": 101.25, "qty": 7}
        return prefix + _packb({"args": args, "workflow_id": WORKFLOW_ID})

    def subscribe() -> Any:
        return unpackb(TICK_FRAME[skip:], raw=False)["args"]

    return {
        "raw replyer   unpackb + packb": server,
        "raw requester packb + unpackb": client,
        "raw publisher packb": publish,
        "raw subscriber unpackb": subscribe,
    }
