"""Reliability over real sockets, apps in threads: requester timeouts, retries and
correlation, thread safety, size limits, and what PUB/SUB does (and does not) promise.

See docs/reliability.md. Child-process checks (floods, RSS, signals) are in
test_reliability_process.py.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

from zmqservice import App, RemoteError, RequestTimeout
from zmqservice.log import WORKFLOW_ID

from .conftest import WAIT_S, Runner, pack, recv_frame, unpack, wait_for

Sock = Callable[[int], zmq.Socket[bytes]]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def echo_app(address: str, name: str = "echo", seen: list[str] | None = None) -> App:
    app = App(name)

    @app.replyer("echo", address=address)
    def echo(args: Any) -> Any:
        if seen is not None:
            seen.append(WORKFLOW_ID.get())
        return args

    return app


def client_app(address: str, **options: Any) -> App:
    app = App("client")
    app.requester("echo", address=address, **options)
    return app


# -- timeouts and retries -------------------------------------------------------------------


def test_a_per_call_timeout_applies_to_a_requester_that_would_wait_for_ever(
    runner: Runner, ipc: Callable[[str], str]
) -> None:
    endpoint = ipc("late")
    client = runner.serve(client_app(endpoint))  # no timeout: it would wait for ever

    started = time.monotonic()
    with pytest.raises(RequestTimeout) as caught:
        client.send("echo", "hello", timeout=0.1, retries=2)
    elapsed = time.monotonic() - started

    assert "within 0.1s after 3 tries" in str(caught.value)
    assert 0.25 <= elapsed < WAIT_S  # three tries of 0.1 s
    # The next call works as soon as a replyer is there, with the connection's settings.
    runner.serve(echo_app(endpoint))
    assert client.send("echo", "again", timeout=WAIT_S) == "again"


def test_a_per_call_override_does_not_stick(runner: Runner, ipc: Callable[[str], str]) -> None:
    endpoint = ipc("sticky")
    client = runner.serve(client_app(endpoint, timeout=0.05))
    with pytest.raises(RequestTimeout):
        client.send("echo", 1)
    runner.serve(echo_app(endpoint))
    assert client.send("echo", 2, timeout=WAIT_S) == 2
    assert client.send("echo", 3) == 3  # back on the connection's 50 ms, answered in time


def test_a_thousand_timed_out_calls_leak_no_file_descriptors(
    runner: Runner, ipc: Callable[[str], str]
) -> None:
    endpoint = ipc("nobody")
    client = runner.serve(client_app(endpoint, timeout=0.005))
    for _ in range(5):  # warm up: the thread's socket, libzmq's reaper ...
        with pytest.raises(RequestTimeout):
            client.send("echo", 0)
    before = open_fds()

    started = time.monotonic()
    for n in range(1000):
        with pytest.raises(RequestTimeout):
            client.send("echo", n)
    elapsed = time.monotonic() - started

    after = wait_for(lambda: open_fds() <= before + 2 and open_fds(), timeout=2) or open_fds()
    print(f"1000 timed-out calls of 5 ms: {elapsed:.2f}s, fds {before} -> {after}")
    assert after <= before + 2
    runner.serve(echo_app(endpoint))
    assert client.send("echo", "back", timeout=WAIT_S) == "back"


def test_a_retry_after_a_lost_request_is_answered(
    runner: Runner, zsock: Sock, ipc: Callable[[str], str]
) -> None:
    # A replyer that drops the first request it sees: the retry on a fresh socket is answered.
    endpoint = ipc("flaky")
    router = zsock(zmq.ROUTER)
    router.bind(endpoint)
    client = runner.serve(client_app(endpoint, timeout=0.2, retries=2))
    result: list[Any] = []
    caller = threading.Thread(target=lambda: result.append(client.send("echo", "x")), daemon=True)
    caller.start()

    first = router.recv_multipart() if router.poll(int(WAIT_S * 1000)) else None
    assert first is not None
    second = router.recv_multipart() if router.poll(int(WAIT_S * 1000)) else None
    assert second is not None and second[0] != first[0]  # another socket: Lazy Pirate
    envelope = unpack(second[2])
    router.send_multipart([second[0], b"", pack({"return_args": "y", **envelope})])
    caller.join(WAIT_S)
    assert not caller.is_alive()

    assert result == ["y"]
    assert unpack(first[2])["workflow_id"] == envelope["workflow_id"]  # the same request


# -- correlation: a reply must answer this request -----------------------------------------


@pytest.fixture
def router_peer(zsock: Sock, ipc: Callable[[str], str]) -> Iterator[zmq.Socket[bytes]]:
    """A raw ROUTER where a replyer would be: the test decides what it answers."""
    router = zsock(zmq.ROUTER)
    router.bind(ipc("router"))
    yield router


def answer(router: zmq.Socket[bytes], *replies: Callable[[dict[str, Any]], Any]) -> None:
    """Take one request, send each reply (built from its envelope) back in order."""
    assert router.poll(int(WAIT_S * 1000)), "no request arrived"
    identity, delimiter, frame = router.recv_multipart()
    assert delimiter == b""  # the requester speaks REQ's envelope
    envelope = unpack(frame)
    for reply in replies:
        router.send_multipart([identity, b"", pack(reply(envelope))])


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no timeout", "timeout"])
def test_a_reply_for_another_request_is_discarded_and_the_wait_goes_on(
    runner: Runner, router_peer: zmq.Socket[bytes], timeout: float | None
) -> None:
    endpoint = router_peer.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
    client = runner.serve(client_app(endpoint, timeout=timeout))
    result: list[Any] = []
    caller = threading.Thread(
        target=lambda: result.append(client.send("echo", "mine")), daemon=True
    )
    caller.start()

    answer(
        router_peer,
        lambda e: {"return_args": "stale", "workflow_id": e["workflow_id"] + "0"},
        lambda e: {"return_args": "stale", "workflow_id": "someone-else_1"},
        lambda e: {"return_args": e["args"], "workflow_id": e["workflow_id"]},
    )
    caller.join(WAIT_S)
    assert not caller.is_alive()

    assert result == ["mine"]


def test_only_wrong_replies_end_in_request_timeout(
    runner: Runner, router_peer: zmq.Socket[bytes]
) -> None:
    endpoint = router_peer.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
    client = runner.serve(client_app(endpoint, timeout=0.3))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.send("echo", "mine")
        except RequestTimeout as exc:
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    answer(router_peer, lambda e: {"return_args": "stale", "workflow_id": "other_1"})
    caller.join(WAIT_S)
    assert not caller.is_alive()

    assert len(errors) == 1


def test_an_error_reply_without_a_workflow_id_is_taken(
    runner: Runner, router_peer: zmq.Socket[bytes]
) -> None:
    # What a replyer sends for a request it could not read (over its size limit ...).
    endpoint = router_peer.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
    client = runner.serve(client_app(endpoint, timeout=WAIT_S))
    errors: list[RemoteError] = []

    def call() -> None:
        try:
            client.send("echo", "mine")
        except RemoteError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    answer(
        router_peer,
        lambda e: {
            "return_args": None,
            "workflow_id": "",
            "error": {"type": "DecodeError", "message": "too big"},
        },
    )
    caller.join(WAIT_S)
    assert not caller.is_alive()

    assert [(e.type, e.message) for e in errors] == [("DecodeError", "too big")]


def test_a_request_over_the_replyers_limit_gets_a_clear_error(
    runner: Runner, ipc: Callable[[str], str]
) -> None:
    server = App("small")

    @server.replyer("echo", address=ipc("small"), max_message_size=1000)
    def echo(args: Any) -> Any:
        return args

    runner.serve(server)
    client = runner.serve(client_app(server.endpoints["echo"], timeout=WAIT_S))

    with pytest.raises(RemoteError) as caught:
        client.send("echo", "x" * 2000)

    assert caught.value.type == "DecodeError"
    assert "over the limit of 1000 bytes (max_message_size)" in caught.value.message
    assert client.send("echo", "x" * 100) == "x" * 100


# -- threads --------------------------------------------------------------------------------


def test_one_requester_from_eight_threads_matches_every_reply(runner: Runner) -> None:
    seen: list[str] = []
    server = runner.serve(echo_app("tcp://127.0.0.1:0", seen=seen))
    client = runner.serve(client_app(server.endpoints["echo"], timeout=WAIT_S))
    results: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        got = results.setdefault(worker, [])
        try:
            for i in range(200):
                got.append(client.send("echo", {"worker": worker, "i": i}))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 3)
    assert not any(thread.is_alive() for thread in threads)

    assert errors == []
    assert results == {w: [{"worker": w, "i": i} for i in range(200)] for w in range(8)}
    assert len(seen) == len(set(seen)) == 1600  # a unique workflow_id per call


def test_sockets_of_ended_threads_are_closed(runner: Runner) -> None:
    server = runner.serve(echo_app("tcp://127.0.0.1:0"))
    client = runner.serve(client_app(server.endpoints["echo"], timeout=WAIT_S))

    def one_call() -> None:
        client.send("echo", 1)

    def churn(n: int) -> None:
        for _ in range(n):
            thread = threading.Thread(target=one_call, daemon=True)
            thread.start()
            thread.join(WAIT_S)
            assert not thread.is_alive()

    churn(20)
    before = open_fds()
    churn(200)
    after = open_fds()
    print(f"200 short-lived calling threads: fds {before} -> {after}")
    assert after <= before + 4


# -- limits on inbound sockets --------------------------------------------------------------


def test_a_message_far_over_the_limit_drops_the_peer_and_the_service_goes_on(
    runner: Runner, zsock: Sock, ipc: Callable[[str], str]
) -> None:
    server = App("small")

    @server.replyer("echo", address=ipc("hard"), max_message_size=1024)
    def echo(args: Any) -> Any:
        return args

    runner.serve(server)
    endpoint = server.endpoints["echo"]
    rep = server._run.sockets[0]  # type: ignore[union-attr]
    assert rep.getsockopt(zmq.MAXMSGSIZE) == 16 * 1024

    soft = zsock(zmq.REQ)
    soft.connect(endpoint)
    soft.send(b"x" * 2000)
    assert "over the limit of 1024 bytes" in unpack(recv_frame(soft))["error"]["message"]

    hard = zsock(zmq.REQ)
    hard.connect(endpoint)
    hard.send(b"x" * (17 * 1024))  # libzmq cuts the connection before reading it all
    assert not hard.poll(500, zmq.POLLIN)

    fresh = zsock(zmq.REQ)
    fresh.connect(endpoint)
    fresh.send(pack({"args": "hi", "workflow_id": "w"}))
    assert unpack(recv_frame(fresh)) == {"return_args": "hi", "workflow_id": "w"}


# -- PUB/SUB --------------------------------------------------------------------------------


def test_high_water_marks_are_set_on_both_sides(runner: Runner, ipc: Callable[[str], str]) -> None:
    publisher = App("pub")
    publisher.publisher("ticks", address=ipc("hwm"), hwm=123)
    subscriber = App("sub")

    @subscriber.subscriber("ticks", address=ipc("hwm"), hwm=45)
    def on_tick(args: Any) -> None:
        pass

    runner.serve(publisher)
    runner.serve(subscriber)
    pub_sock = publisher._run.outbound._publishers["ticks"]  # type: ignore[union-attr]
    sub_sock = subscriber._run.sockets[0]  # type: ignore[union-attr]
    assert pub_sock.getsockopt(zmq.SNDHWM) == 123
    assert sub_sock.getsockopt(zmq.RCVHWM) == 45


SENTINEL = -(10**6)


def test_a_slow_subscriber_never_blocks_the_publisher_and_counts_what_it_missed(
    runner: Runner, ipc: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = ipc("slow")
    publisher = App("pub")
    publisher.publisher("ticks", address=endpoint, hwm=100)
    subscriber = App("sub")
    got: list[int] = []
    pad = "x" * 2000  # big enough that socket buffers hold only a few hundred

    @subscriber.subscriber("ticks", address=endpoint, hwm=100)
    def on_tick(args: dict[str, Any]) -> None:
        got.append(args["n"])
        if args["n"] >= 0:
            time.sleep(0.002)  # far slower than the publisher

    runner.serve(publisher)
    runner.serve(subscriber)
    probes = 0
    while not got and probes < 500:  # the slow joiner: wait until the subscription is in
        probes += 1
        publisher.send("ticks", {"n": -probes})
        wait_for(lambda: got, timeout=0.02)
    assert got, "the subscriber never heard the publisher"

    count = 20_000
    with caplog.at_level(logging.WARNING, logger="zmqservice"):
        started = time.monotonic()
        for n in range(count):
            publisher.send("ticks", {"n": n, "pad": pad})
        publishing = time.monotonic() - started
        # Sentinels behind everything queued, a new one until the newest gets through:
        # then the subscriber has drained its queue and nothing else is in flight.
        sentinels, deadline = 0, time.monotonic() + 60
        while not sentinels or SENTINEL - sentinels not in got:
            assert time.monotonic() < deadline, "the subscriber never drained its queue"
            sentinels += 1
            publisher.send("ticks", {"n": SENTINEL - sentinels})
            wait_for(lambda n=SENTINEL - sentinels: n in got, timeout=0.2)

    stats = subscriber.stats["ticks"]
    print(
        f"published {count} in {publishing:.3f}s ({publishing / count * 1e6:.1f} us each); "
        f"the slow subscriber got {len(got)}, missed {stats.missed} in {stats.gaps} gaps"
    )
    assert publishing < 10.0  # blocking on the subscriber would take count * 2 ms = 40 s
    assert stats.missed > 0 and stats.gaps > 0 and stats.out_of_order == 0
    assert any("missed" in record.getMessage() for record in caplog.records)

    # Exact accounting: from the first message heard on, each one is heard or counted missed.
    def seq(n: int) -> int:  # probes are numbered 1..probes, then the burst, then sentinels
        if n <= SENTINEL:
            return probes + count + (SENTINEL - n)
        return -n if n < 0 else probes + 1 + n

    assert len(got) + stats.missed == seq(got[-1]) - seq(got[0]) + 1
    assert stats.received == len(got)
