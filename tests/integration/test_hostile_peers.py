"""What a hostile peer can make a service hold, spend, log or count: each bounded, over real
sockets. See docs/reliability.md ("Hostile peers") and docs/security.md."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from zmqservice import App, codec
from zmqservice.log import PEER_TEXT_LIMIT, setup_logging

from .conftest import Runner, Spawner, pack, recv_frame, unpack, wait_for

Sock = Callable[[int], zmq.Socket[bytes]]
Ipc = Callable[[str], str]
Write = Callable[[str, Any], Path]


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The service log as `setup_logging` writes it; the logger is restored afterwards."""
    logger = logging.getLogger("zmqservice")
    handlers, level = list(logger.handlers), logger.level
    path = tmp_path / "service.log"
    setup_logging("CRITICAL", path, "INFO")
    try:
        yield path
    finally:
        for handler in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(level)


def log_lines(path: Path) -> list[str]:
    for handler in logging.getLogger("zmqservice").handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines()


def echo_app(endpoint: str) -> App:
    app = App("victim")

    @app.replyer("echo", address=endpoint, args={"name": str}, returns={"name": str})
    def echo(args: Any) -> Any:
        return args

    return app


def ask(sock: zmq.Socket[bytes], envelope: Any) -> bytes:
    sock.send(pack(envelope))
    return recv_frame(sock)


# -- error texts and log lines are bounded and escaped ----------------------------------------


def test_a_request_with_100k_unknown_keys_gets_a_small_error_reply_and_log_line(
    runner: Runner, zsock: Sock, ipc: Ipc, log_file: Path
) -> None:
    app = runner.serve(echo_app(ipc("keys")))
    sock = zsock(zmq.REQ)
    sock.connect(app.endpoints["echo"])

    extra = {f"key{i}": 1 for i in range(100_000)}
    reply = ask(sock, {"args": {"name": "x", **extra}, "workflow_id": "w"})

    error = unpack(reply)["error"]
    print(f"\nerror reply to 100,000 unknown keys: {len(reply):,} bytes")
    assert len(reply) < 4 * PEER_TEXT_LIMIT  # it was 789,006 bytes
    assert error["type"] == "ValidationError"
    assert error["message"].startswith("in.echo (replyer) args: extra fields found (key0, key1")
    assert error["message"].endswith(" characters]")  # the cut is marked
    longest = max(len(line) for line in log_lines(log_file))
    assert longest < PEER_TEXT_LIMIT + 200, longest
    assert unpack(ask(sock, {"args": {"name": "ok"}, "workflow_id": "v"}))["return_args"] == {
        "name": "ok"
    }


FORGED = "2026-01-01 00:00:00,000 CRITICAL zmqservice [w] database wiped"


def test_newlines_in_a_key_or_a_workflow_id_cannot_forge_a_log_line(
    runner: Runner, zsock: Sock, ipc: Ipc, log_file: Path
) -> None:
    app = runner.serve(echo_app(ipc("forge")))
    sock = zsock(zmq.REQ)
    sock.connect(app.endpoints["echo"])

    reply = ask(sock, {"args": {"name": "x", f"k\n{FORGED}": 1}, "workflow_id": f"w\n{FORGED}"})

    assert "\n" not in unpack(reply)["error"]["message"]
    lines = log_lines(log_file)
    assert len(lines) == 1, lines
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING zmqservice\.dispatch ", lines[0])
    assert f"[w\\n{FORGED}]" in lines[0]  # the workflow id, escaped
    assert f"(k\\n{FORGED})" in lines[0]  # the key, escaped


# -- CPU: what decoding and validating one request may cost ---------------------------------


def test_a_mebibyte_of_wrong_items_is_explained_in_ten_errors(
    runner: Runner, zsock: Sock, ipc: Ipc
) -> None:
    app = App("typed")

    @app.replyer("take", address=ipc("typed"), args={"items": list[list[int]]}, returns=None)
    def take(args: Any) -> None:
        raise AssertionError("invalid args reached the handler")

    runner.serve(app)
    sock = zsock(zmq.REQ)
    sock.connect(app.endpoints["take"])
    frame = pack({"args": {"items": ["x"] * 524_000}, "workflow_id": "w"})
    assert len(frame) < 1 << 20

    start = time.monotonic()
    sock.send(frame)
    error = unpack(recv_frame(sock))["error"]
    elapsed = time.monotonic() - start

    print(f"\n524,000 wrong items ({len(frame):,} bytes): explained in {elapsed:.3f}s")
    assert error["type"] == "ValidationError"
    assert error["message"].count("expected array, got str") == 10
    assert "524000" not in error["message"]  # it was 524,000 failures, 19 MB of text, 7 s
    assert "523990 more value(s) not checked after 10 errors @ $.items" in error["message"]


# -- gap counting under forged sequence numbers ---------------------------------------------


def test_a_forged_sequence_number_does_not_poison_gap_counting(
    runner: Runner, zsock: Sock, ipc: Ipc
) -> None:
    endpoint = ipc("numbers")
    app = App("listener")
    got: list[int] = []

    @app.subscriber("ticks", address=endpoint, bind=True)
    def on_tick(args: Any) -> None:
        got.append(args)

    runner.serve(app)
    real, forger = zsock(zmq.PUB), zsock(zmq.PUB)
    for sock in (real, forger):
        sock.connect(endpoint)
    stats = app.stats["ticks"]

    def reaches(sock: zmq.Socket[bytes]) -> bool:  # past the slow joiner: a probe arrives
        before = stats.received
        sock.send(pack({"args": -1, "workflow_id": "probe"}))
        return bool(wait_for(lambda: stats.received > before, timeout=0.2))

    assert wait_for(lambda: reaches(real) and reaches(forger))

    def publish(sock: zmq.Socket[bytes], seq: int) -> None:
        sent = stats.received
        sock.send(codec.encode_published(seq % 1000, "w", "3fa94c0e1b2d", seq))
        assert wait_for(lambda: stats.received > sent)

    for seq in range(1, 51):
        publish(real, seq)
    publish(forger, 2**64 - 1)  # under the real publisher's id
    for seq in [*range(51, 61), *range(70, 81)]:  # 61-69 really lost
        publish(real, seq)

    print(f"\nafter a forged 2**64-1: {stats.as_dict()}")
    assert (stats.missed, stats.gaps, stats.resets, stats.out_of_order) == (9, 1, 1, 0)
    assert stats.last_seq["3fa94c0e1b2d"] == 80


# -- memory and loop time a peer can take: frames and queues ------------------------------


def frames_app(endpoints: dict[str, str]) -> list[App]:
    """A plain, a pooled (concurrency=4) and an asyncio replyer, each echoing its args."""
    plain = App("plain")
    plain.replyer("plain", address=endpoints["plain"])(lambda args: args)
    plain.replyer("pooled", address=endpoints["pooled"], concurrency=4)(lambda args: args)
    asynchronous = App("asynchronous")

    @asynchronous.replyer("awaited", address=endpoints["awaited"])
    async def awaited(args: Any) -> Any:
        return args

    return [plain, asynchronous]


MULTIPART_100K = "a request is one frame, got a multipart message of 100000 frames"


def test_every_replyer_drops_a_message_of_100k_frames_unlisted_and_goes_on(
    runner: Runner, zsock: Sock, ipc: Ipc
) -> None:
    names = ("plain", "pooled", "awaited")
    apps = [runner.serve(app) for app in frames_app({name: ipc(name) for name in names})]
    endpoints = {**apps[0].endpoints, **apps[1].endpoints}
    for name in names:
        dealer = zsock(zmq.DEALER)
        dealer.connect(endpoints[name])
        start = time.monotonic()
        dealer.send_multipart([b"", *[b"x"] * 100_000])
        empty, reply = dealer.recv_multipart() if dealer.poll(10_000) else (b"", b"")
        print(f"\n{name}: 100,000 frames refused in {time.monotonic() - start:.2f}s")
        assert empty == b""
        message = unpack(reply)["error"]["message"]
        assert message == f"in.{name} (replyer): {MULTIPART_100K}"
        dealer.send_multipart([b"", pack({"args": name, "workflow_id": "w"})])
        assert dealer.poll(10_000)
        assert unpack(dealer.recv_multipart()[1])["return_args"] == name


def test_a_replyer_queues_a_few_requests_per_peer_not_libzmqs_thousand(
    runner: Runner, ipc: Ipc
) -> None:
    from zmqservice.transport.sockets import REPLYER_RCVHWM

    app = App("queues")
    app.replyer("plain", address=ipc("q-plain"))(lambda args: args)
    app.replyer("pooled", address=ipc("q-pooled"), concurrency=8)(lambda args: args)
    runner.serve(app)
    plain, pooled = app._run.sockets[:2]  # type: ignore[union-attr]
    assert REPLYER_RCVHWM == 4
    assert (plain.getsockopt(zmq.RCVHWM), pooled.getsockopt(zmq.RCVHWM)) == (4, 8)


BUSY = """
    import time
    from pathlib import Path
    from zmqservice import App

    app = App("busy")


    @app.replyer("slow", args={"n": int}, returns={"n": int})
    def slow(args):
        time.sleep(1.5)
        return args
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_pipelined_big_requests_to_a_busy_replyer_wait_in_tcp_not_in_its_memory(
    spawn: Spawner, write: Write, zsock: Sock, ipc: Ipc
) -> None:
    endpoint = ipc("busy")
    write("svc.py", BUSY)
    write("addresses.json", {"in": {"slow": {"replyer": endpoint}}})
    child = spawn.start("run", "svc.py", "-a", "addresses.json", "-cl", "ERROR")
    assert child.request(endpoint, {"n": 0})["return_args"] == {"n": 0}
    dealer = zsock(zmq.DEALER)
    dealer.setsockopt(zmq.SNDHWM, 0)
    dealer.connect(endpoint)
    before = rss_mib(child.pid)
    dealer.send_multipart([b"", pack({"args": {"n": 1}, "workflow_id": "busy"})])
    big = b"x" * (4 << 20)  # over the 1 MiB limit, under the 16 MiB hard one: refused unread
    for _ in range(40):
        dealer.send_multipart([b"", big])
    peak = before
    deadline = time.monotonic() + 1.0  # while the handler sleeps, nothing is read
    while time.monotonic() < deadline:
        peak = max(peak, rss_mib(child.pid))
        time.sleep(0.02)
    replies: list[Any] = []
    while len(replies) < 41 and dealer.poll(10_000):
        replies.append(unpack(dealer.recv_multipart()[1]))

    print(f"\n40 pipelined 4 MiB requests to a busy replyer: RSS {before:.0f} -> {peak:.0f} MiB")
    assert replies[0]["return_args"] == {"n": 1}
    assert [r["error"]["type"] for r in replies[1:]] == ["DecodeError"] * 40
    assert peak - before < 100  # 160 MiB were queued before: 4 + 2 requests at most now


# -- a socket that connects survives one oversized frame ----------------------------------

OVERSIZED = b"x" * (17 * 1024)  # over the hard limit of 16 x max_message_size=1024


def test_a_connecting_subscriber_reconnects_after_an_oversized_frame(
    runner: Runner, zsock: Sock, ipc: Ipc, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = ipc("big-pub")
    pub = zsock(zmq.PUB)
    pub.bind(endpoint)
    app = App("listener", max_message_size=1024)
    got: list[int] = []

    @app.subscriber("ticks", address=endpoint)  # connects, as subscribers do
    def on_tick(args: Any) -> None:
        got.append(args)

    runner.serve(app)

    def heard_after_probing() -> bool:  # the slow joiner: probe until one arrives
        pub.send(pack({"args": -1, "workflow_id": "probe"}))
        return bool(wait_for(lambda: -1 in got, timeout=0.05))

    with caplog.at_level(logging.WARNING, logger="zmqservice"):
        assert wait_for(heard_after_probing)
        pub.send(OVERSIZED)  # libzmq drops the connection: a protocol error
        got.clear()
        assert wait_for(heard_after_probing), "the subscriber never heard anything again"
        for n in range(120):
            pub.send(pack({"args": n, "workflow_id": f"w{n}"}))
        assert wait_for(lambda: len([n for n in got if n >= 0]) == 120)

    assert [n for n in got if n >= 0] == list(range(120))
    warnings = [r.getMessage() for r in caplog.records if "connected again" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"in.ticks (subscriber): libzmq dropped the connection to {endpoint}"
    )


def replyer_behind_a_dealer(kind: str, endpoint: str) -> App:
    app = App(f"behind-{kind}", max_message_size=1024)
    if kind == "async":

        @app.replyer("echo", address=endpoint, bind=False)
        async def echo_async(args: Any) -> Any:
            return args

    else:
        concurrency = 2 if kind == "pooled" else 1
        app.replyer("echo", address=endpoint, bind=False, concurrency=concurrency)(
            lambda args: args
        )
    return app


@pytest.mark.parametrize("kind", ["plain", "pooled", "async"])
def test_a_replyer_with_bind_false_reconnects_after_an_oversized_request(
    kind: str, runner: Runner, zsock: Sock, ipc: Ipc
) -> None:
    endpoint = ipc(f"broker-{kind}")
    broker = zsock(zmq.DEALER)  # a reqrep proxy's backend, as `zmqservice proxy reqrep` binds
    broker.bind(endpoint)
    runner.serve(replyer_behind_a_dealer(kind, endpoint))

    def answered(n: int) -> bool:
        with contextlib.suppress(zmq.Again):  # no replyer connected right now
            broker.send_multipart([b"", pack({"args": n, "workflow_id": f"w{n}"})], zmq.NOBLOCK)
        if not broker.poll(200):
            return False
        return bool(unpack(broker.recv_multipart()[-1])["return_args"] == n)

    assert wait_for(lambda: answered(1))
    broker.send_multipart([b"", OVERSIZED])  # libzmq drops the replyer's connection
    assert not broker.poll(300)  # no reply: the request was never read
    assert wait_for(lambda: answered(2)), f"the {kind} replyer went deaf"
    assert answered(3)


WORKERS = """
    import os

    from zmqservice import App

    app = App("pids", max_message_size=1024)


    @app.replyer("pid", args={"n": int})
    def pid(args):
        return os.getpid()
"""


def test_workers_keep_answering_after_oversized_requests(
    spawn: Spawner, write: Write, zsock: Sock, ipc: Ipc
) -> None:
    endpoint = ipc("workers")
    write("svc.py", WORKERS)
    write("addresses.json", {"in": {"pid": {"replyer": endpoint}}})
    child = spawn.start("run", "svc.py", "-a", "addresses.json", "--workers", "2", "-cl", "WARNING")
    assert isinstance(child.request(endpoint, {"n": 0})["return_args"], int)
    # The parent's load balancer refuses them at its own socket (as a replyer's does), so
    # no worker's connecting socket ever sees one; whichever way, both must keep answering.
    for _ in range(4):
        sock = zsock(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(OVERSIZED)
        assert not sock.poll(200)
    pids: set[int] = set()

    def both_answer() -> bool:
        reply = child.request(endpoint, {"n": len(pids)})
        pids.add(reply["return_args"])
        return len(pids) == 2

    assert wait_for(both_answer), child.stderr()
