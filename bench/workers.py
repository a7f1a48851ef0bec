"""Child-process bodies for `bench/run.py`: raw pyzmq peers and zmqservice peers.

Every function named ``*_server``, ``*_client``, ``*_publisher`` or ``*_subscriber`` is the
target of one child process. Each creates its own zmq context *inside* the child (nothing
zmq exists in the parent), talks to the parent over a `multiprocessing` pipe, and uses the
same payloads, so raw and zmqservice runs differ only in the framework.

Clock: every timestamp is `time.monotonic()`, which on Linux is ``CLOCK_MONOTONIC`` and so
comparable between processes (pub/sub rates use a publisher start and a subscriber end).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import msgpack
import zmq

from zmqservice import App

# -- payloads shared by the raw and the zmqservice peers -------------------------------------


@attrs.define
class Quote:
    """Request args: a typical small model, one optional field."""

    symbol: str
    side: str
    qty: int
    price: float
    client_id: str = "bench"


@attrs.define
class Ack:
    """Reply of the ``quote`` replyer."""

    symbol: str
    qty: int
    accepted: bool


@attrs.define
class Tick:
    """A published message. ``seq >= 0`` is data, -1 a probe, -2 the end of a burst."""

    seq: int
    symbol: str
    price: float
    qty: int


QUOTE = {"symbol": "BTC-USD", "side": "buy", "qty": 3, "price": 101.25, "client_id": "bench"}
ACK = {"symbol": "BTC-USD", "qty": 3, "accepted": True}
SYMBOL, PRICE = "BTC-USD", 101.25
TOPIC = "ticks"
HWM = 100_000
"""Send and receive high-water mark on both PUB/SUB pairs: zmqservice's default."""
WINDOW = 50_000
"""Pub/sub flow control: the publisher never has more than this many messages in flight
(sent minus counted by the subscriber), well under `HWM`, so nothing can be dropped."""
PROGRESS_EVERY = 1024
"""The subscriber publishes its count to the shared flow-control counter this often."""
WORKFLOW_ID = "6f1c2f0e-3f53-4f5e-9a55-0d2c2b9d8e11_1"
PROBE, END = -1, -2


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


# -- per-child setup ----------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:  # orphaned: the parent died without stopping us
            os._exit(3)


def setup_child(pin: bool) -> list[int]:
    """Pin (if asked), make SIGTERM a clean exit, die with the parent; return the affinity."""
    if pin:
        os.sched_setaffinity(0, {0})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    return sorted(os.sched_getaffinity(0))


def _profiled(profile_path: str | None, body: Callable[[], Any]) -> Any:
    """Run `body`, under cProfile when `profile_path` is set (stats dumped there)."""
    if not profile_path:
        return body()
    import cProfile

    prof = cProfile.Profile()
    try:
        return prof.runcall(body)
    finally:
        prof.dump_stats(profile_path)


# -- timing loops -------------------------------------------------------------------------


def timed_calls(call: Callable[[], Any], seconds: float) -> tuple[int, float]:
    """Call `call` back to back for about `seconds`; return (calls, elapsed seconds)."""
    clock = time.perf_counter
    n = 0
    start = clock()
    deadline = start + seconds
    while True:
        for _ in range(16):
            call()
        n += 16
        now = clock()
        if now >= deadline:
            return n, now - start


def command_loop(pipe: Any, call: Callable[[], Any]) -> None:
    """Serve the parent's ``("run", seconds)`` commands until ``("quit",)``."""
    while True:
        cmd = pipe.recv()
        if cmd[0] == "quit":
            return
        pipe.send(timed_calls(call, cmd[1]))


def publisher_loop(pipe: Any, publish: Callable[[int, int], None], shared: Any) -> None:
    """Serve the parent's ``probe`` / ``burst`` / ``quit`` commands.

    ``probe``: publish probes every 10 ms until the subscriber has seen one (slow joiner).
    ``burst``: publish data for `seconds`, never more than `WINDOW` ahead of what the
    subscriber has counted, then an end marker; report (burst id, sent, start, stalls).
    """
    received, probe_seen = shared
    sent_total = 0
    clock, sleep = time.monotonic, time.sleep
    while True:
        cmd = pipe.recv()
        if cmd[0] == "quit":
            return
        if cmd[0] == "probe":
            deadline = clock() + cmd[1]
            while not probe_seen.value and clock() < deadline:
                publish(PROBE, 0)
                sleep(0.01)
            pipe.send(("probed", bool(probe_seen.value)))
            continue
        _, seconds, burst_id = cmd
        sent = stalls = 0
        start = clock()
        deadline = start + seconds
        while True:
            for seq in range(sent, sent + PROGRESS_EVERY):
                publish(seq, seq)
            sent += PROGRESS_EVERY
            if clock() >= deadline:
                break
            while sent_total + sent - received.value > WINDOW:
                stalls += 1
                sleep(0.0002)
        sent_total += sent
        publish(END, burst_id)
        pipe.send(("burst", burst_id, sent, start, stalls))


class Counter:
    """The subscriber's per-message work, identical for raw and zmqservice."""

    def __init__(self, pipe: Any, shared: Any) -> None:
        self.pipe = pipe
        self.received, self.probe_seen = shared
        self.count = 0
        self.total = 0
        self.last_seq = -1
        self.out_of_order = 0

    def __call__(self, seq: int, qty: int) -> None:
        if seq >= 0:
            if seq != self.last_seq + 1:
                self.out_of_order += 1
            self.last_seq = seq
            self.count += 1
            if not self.count % PROGRESS_EVERY:
                self.received.value = self.total + self.count
        elif seq == END:
            now = time.monotonic()
            self.total += self.count
            self.received.value = self.total
            self.pipe.send(("burst", qty, self.count, now, self.out_of_order))
            self.count = self.out_of_order = 0
            self.last_seq = -1
        else:
            self.probe_seen.value = 1


# -- request/reply: raw pyzmq ---------------------------------------------------------------


def raw_rep_server(pipe: Any, pin: bool) -> None:
    """REP on an ephemeral port: unpack the envelope, pack the reply, forever."""
    affinity = setup_child(pin)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:0")
    pipe.send(("endpoint", sock.getsockopt(zmq.LAST_ENDPOINT).decode(), affinity))
    recv, send, unpackb = sock.recv, sock.send, msgpack.unpackb
    try:
        while True:
            envelope = unpackb(recv(), raw=False)
            args = envelope["args"]
            reply = {"symbol": args["symbol"], "qty": args["qty"], "accepted": True}
            send(_packb({"return_args": reply, "workflow_id": envelope["workflow_id"]}))
    finally:
        sock.close(linger=0)
        ctx.term()


def raw_req_client(pipe: Any, endpoint: str, pin: bool) -> None:
    """REQ: pack the envelope, send, receive, unpack; timed by the parent's commands."""
    affinity = setup_child(pin)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    send, recv, unpackb = sock.send, sock.recv, msgpack.unpackb

    def call() -> Any:
        send(_packb({"args": QUOTE, "workflow_id": WORKFLOW_ID}))
        return unpackb(recv(), raw=False)["return_args"]

    try:
        reply = call()
        if reply != ACK:
            raise RuntimeError(f"raw reply {reply!r} != {ACK!r}")
        pipe.send(("ready", affinity))
        command_loop(pipe, call)
    finally:
        sock.close(linger=0)
        ctx.term()


# -- request/reply: zmqservice --------------------------------------------------------------


def zs_rep_server(pipe: Any, pin: bool, profile_path: str | None = None) -> None:
    """An App with one ``@app.replyer``, served by ``app.run()`` until SIGTERM."""
    affinity = setup_child(pin)
    app = App("bench_server")

    @app.replyer("quote", args=Quote, returns=Ack, address="tcp://127.0.0.1:0")
    def quote(args: Quote) -> Ack:
        return Ack(symbol=args.symbol, qty=args.qty, accepted=True)

    @app.init
    def announce() -> None:
        pipe.send(("endpoint", app.endpoints["quote"], affinity))

    _profiled(profile_path, app.run)


def zs_req_client(pipe: Any, endpoint: str, pin: bool, profile_path: str | None = None) -> None:
    """An App with ``app.requester``; ``@app.main`` calls ``to_send`` on the parent's cue."""
    affinity = setup_child(pin)
    app = App("bench_client")
    app.requester("quote", args=Quote, returns=Ack)

    @app.main
    def main(to_send: Callable[[str, Any], Any]) -> None:
        quote = Quote(**QUOTE)  # type: ignore[arg-type]

        def call() -> Any:
            return to_send("quote", quote)

        reply = call()
        if reply != ACK:
            raise RuntimeError(f"zmqservice reply {reply!r} != {ACK!r}")
        pipe.send(("ready", affinity))
        command_loop(pipe, call)

    addresses = {"out": {"quote": {"requester": endpoint}}}
    _profiled(profile_path, lambda: app.run(addresses, main=True))


# -- pub/sub: raw pyzmq ---------------------------------------------------------------------


def raw_publisher(pipe: Any, shared: Any, pin: bool) -> None:
    """PUB bound on an ephemeral port; frames are ``packb(topic) + packb(envelope)``."""
    affinity = setup_child(pin)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:0")
    pipe.send(("endpoint", sock.getsockopt(zmq.LAST_ENDPOINT).decode(), affinity))
    send, prefix = sock.send, _packb(TOPIC)

    def publish(seq: int, qty: int) -> None:
        args = {"seq": seq, "symbol": SYMBOL, "price": PRICE, "qty": qty}
        send(prefix + _packb({"args": args, "workflow_id": WORKFLOW_ID}))

    try:
        publisher_loop(pipe, publish, shared)
    finally:
        sock.close(linger=0)
        ctx.term()


def raw_subscriber(pipe: Any, endpoint: str, shared: Any, pin: bool) -> None:
    """SUB on the topic prefix: strip it, unpack, count; until SIGTERM."""
    affinity = setup_child(pin)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.setsockopt(zmq.LINGER, 0)
    prefix = _packb(TOPIC)
    sock.setsockopt(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    pipe.send(("ready", affinity))
    counter, recv, unpackb, skip = Counter(pipe, shared), sock.recv, msgpack.unpackb, len(prefix)
    try:
        while True:
            args = unpackb(recv()[skip:], raw=False)["args"]
            counter(args["seq"], args["qty"])
    finally:
        sock.close(linger=0)
        ctx.term()


# -- pub/sub: zmqservice --------------------------------------------------------------------


def zs_publisher(pipe: Any, shared: Any, pin: bool, profile_path: str | None = None) -> None:
    """An App with ``app.publisher``; ``@app.main`` publishes with ``to_send``."""
    affinity = setup_child(pin)
    app = App("bench_pub")
    app.publisher("ticks", args=Tick, topic=TOPIC, hwm=HWM, address="tcp://127.0.0.1:0")

    @app.main
    def main(to_send: Callable[[str, Any], Any]) -> None:
        pipe.send(("endpoint", app.endpoints["ticks"], affinity))

        def publish(seq: int, qty: int) -> None:
            to_send("ticks", Tick(seq=seq, symbol=SYMBOL, price=PRICE, qty=qty))

        publisher_loop(pipe, publish, shared)

    _profiled(profile_path, lambda: app.run(main=True))


def zs_subscriber(
    pipe: Any, endpoint: str, shared: Any, pin: bool, profile_path: str | None = None
) -> None:
    """An App with one ``@app.subscriber``, served by ``app.run()`` until SIGTERM."""
    affinity = setup_child(pin)
    app = App("bench_sub")
    counter = Counter(pipe, shared)

    @app.subscriber("ticks", args=Tick, topic=TOPIC, hwm=HWM)
    def on_tick(args: Tick) -> None:
        counter(args.seq, args.qty)

    @app.init
    def announce() -> None:
        pipe.send(("ready", affinity))

    addresses = {"in": {"ticks": {"subscriber": endpoint}}}
    _profiled(profile_path, lambda: app.run(addresses))
