"""What a hostile peer can make a service hold, spend, log or count: each bounded, over real
sockets. See docs/reliability.md ("Hostile peers") and docs/security.md."""

from __future__ import annotations

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

from .conftest import Runner, pack, recv_frame, unpack, wait_for

Sock = Callable[[int], zmq.Socket[bytes]]
Ipc = Callable[[str], str]


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
        return wait_for(lambda: stats.received > before, timeout=0.2)

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
