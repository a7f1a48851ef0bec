"""Reliability of a `zmqservice run` child process: floods of malformed frames, handler
exceptions, signals and exits with messages still in flight. See docs/reliability.md."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from .conftest import WAIT_S, Child, Spawner, pack, unpack, wait_for

Write = Callable[[str, Any], Path]
Sock = Callable[[int], zmq.Socket[bytes]]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def start(
    spawn: Spawner, write: Write, source: str, addresses: dict[str, Any], *args: str
) -> Child:
    write("svc.py", source)
    write("addresses.json", addresses)
    return spawn.start("run", "svc.py", "-a", "addresses.json", "-cl", "ERROR", *args)


def ask(sock: zmq.Socket[bytes], *frames: bytes, timeout: float = WAIT_S) -> Any:
    sock.send_multipart(list(frames))
    if not sock.poll(int(timeout * 1000), zmq.POLLIN):
        raise AssertionError(f"no reply within {timeout}s")
    return unpack(sock.recv())


def connected_req(zsock: Sock, child: Child, endpoint: str) -> zmq.Socket[bytes]:
    """A REQ socket to the child, once the child answers (it takes ~0.5 s to start)."""
    assert child.request(endpoint, {"n": -1}, "ping")["workflow_id"] == "ping"
    sock = zsock(zmq.REQ)
    sock.connect(endpoint)
    return sock


# -- a flood of malformed frames --------------------------------------------------------------

VICTIM = """
from zmqservice import App

app = App("victim", max_message_size=256 * 1024)
CALLS = []


@app.replyer("echo", args={"n": int}, returns={"n": int, "calls": int})
def echo(args):
    CALLS.append(args["n"])
    return {"n": args["n"], "calls": len(CALLS)}
"""


def malformed_frames(count: int, seed: int = 20240) -> Iterator[tuple[str, list[bytes]]]:
    """`count` bad requests of every kind, as (kind, frames), in a repeatable mix."""
    rng = random.Random(seed)
    valid = pack({"args": {"n": 1}, "workflow_id": "w"})
    huge = [
        b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
        b"\xc6\xff\xff\xff\xff",  # bin32
        b"\xdd\xff\xff\xff\xff",  # array32 of 4G items
        b"\xdf\xff\xff\xff\xff",  # map32
        b"\xc9\xff\xff\xff\xff\x01",  # ext32
        b"\x82\xa4args\xdb\xff\xff\xff\xff",  # inside a request
    ]
    shapes = [
        pack([1, 2, 3]),
        pack("args"),
        pack(None),
        pack(12),
        pack({"workflow_id": "w"}),
        pack({"args": {"n": 1}, "workflow_id": 5}),
        pack({"args": {"n": "1"}, "workflow_id": "w"}),  # valid envelope, invalid args
        pack({"args": {"n": 1, "x": 2}, "workflow_id": "w"}),
        pack({"args": {"__uuid__": True, "as_str": "nope"}, "workflow_id": "w"}),
        pack({"args": {"__set__": True, "value": [[1]]}, "workflow_id": "w"}),
        b"\x81\x01\x02",  # int map key
    ]
    kinds = [
        ("random bytes", 30),
        ("truncated", 15),
        ("huge length", 10),
        ("deep nesting", 3),
        ("wrong shape", 25),
        ("multipart", 12),
        ("over the limit", 5),
    ]
    names = [name for name, weight in kinds for _ in range(weight)]
    for _ in range(count):
        kind = rng.choice(names)
        if kind == "random bytes":
            frames = [rng.randbytes(rng.randint(1, 300))]
        elif kind == "truncated":
            frames = [valid[: rng.randint(0, len(valid) - 1)]]
        elif kind == "huge length":
            frames = [rng.choice(huge)]
        elif kind == "deep nesting":
            frames = [rng.choice([b"\x91" * 100_000, b"\x81\xa1k" * 50_000])]
        elif kind == "wrong shape":
            frames = [rng.choice(shapes)]
        elif kind == "multipart":
            frames = [valid, *[rng.randbytes(8) for _ in range(rng.randint(1, 4))]]
        else:
            frames = [b"\x00" * (300 * 1024)]  # under the hard cap (16 x 256 KiB): an error reply
        yield kind, frames


def test_ten_thousand_malformed_frames_get_error_replies_and_cost_no_memory(
    spawn: Spawner, write: Write, ipc: Callable[[str], str], zsock: Sock
) -> None:
    endpoint = ipc("victim")
    child = start(spawn, write, VICTIM, {"in": {"echo": {"replyer": endpoint}}})
    req = connected_req(zsock, child, endpoint)
    for _, frames in malformed_frames(300, seed=1):  # warm up allocator and caches
        ask(req, *frames)
    before = rss_kib(child.pid)

    errors: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    for kind, frames in malformed_frames(10_000):
        reply = ask(req, *frames)
        assert reply["return_args"] is None, (kind, frames[0][:40], reply)
        errors[reply["error"]["type"]] += 1
        kinds[kind] += 1
    flood_s = time.monotonic() - started
    after = rss_kib(child.pid)

    started = time.monotonic()
    reply = ask(req, pack({"args": {"n": 7}, "workflow_id": "valid"}), timeout=1.0)
    answer_s = time.monotonic() - started
    print(
        f"\n10,000 malformed frames in {flood_s:.2f}s {dict(kinds)} -> {dict(errors)}; "
        f"RSS {before} -> {after} KiB ({(after - before) / 1024:+.1f} MiB); "
        f"next valid request answered in {answer_s * 1000:.1f} ms"
    )
    assert sum(errors.values()) == 10_000
    assert set(errors) <= {"DecodeError", "ValidationError"}
    # The ping and this request are the only calls the handler ever saw.
    assert reply == {"return_args": {"n": 7, "calls": 2}, "workflow_id": "valid"}
    assert after - before < 20 * 1024
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()


# -- handler isolation -----------------------------------------------------------------------

FAILING = """
from zmqservice import App

app = App("failing")


@app.replyer("work", args={"n": int})
def work(args):
    if args["n"] >= 0:
        raise RuntimeError(f"boom {args['n']}")
    return "fine"
"""


def test_a_thousand_handler_exceptions_then_a_valid_call(
    spawn: Spawner, write: Write, ipc: Callable[[str], str], zsock: Sock
) -> None:
    endpoint = ipc("failing")
    child = start(spawn, write, FAILING, {"in": {"work": {"replyer": endpoint}}})
    req = connected_req(zsock, child, endpoint)

    started = time.monotonic()
    for n in range(1000):
        reply = ask(req, pack({"args": {"n": n}, "workflow_id": f"w{n}"}))
        assert reply["workflow_id"] == f"w{n}"
        assert reply["error"]["type"] == "HandlerError"
        assert reply["error"]["message"] == f"RuntimeError: boom {n}"
    failing_s = time.monotonic() - started

    assert ask(req, pack({"args": {"n": -5}, "workflow_id": "ok"})) == {
        "return_args": "fine",
        "workflow_id": "ok",
    }
    print(f"\n1,000 handler exceptions (traceback logged for each) in {failing_s:.2f}s")
    child.signal(signal.SIGTERM)
    assert child.wait() == 0
    assert child.stderr().count("RuntimeError: boom") >= 1000  # every traceback was logged


# -- signals ----------------------------------------------------------------------------------

SLOW = """
import time
from pathlib import Path
from zmqservice import App

app = App("slow")


@app.replyer("slow")
def slow(args):
    Path(args).touch()
    time.sleep(0.5)
    return "done"
"""


def test_sigterm_during_a_handler_still_delivers_its_reply_then_exits_zero(
    spawn: Spawner,
    write: Write,
    ipc: Callable[[str], str],
    tmp_path: Path,
    zsock: Sock,
) -> None:
    endpoint = ipc("slow")
    mark = tmp_path / "handling"
    child = start(spawn, write, SLOW, {"in": {"slow": {"replyer": endpoint}}})
    assert child.request(endpoint, str(tmp_path / "warm"))["return_args"] == "done"
    req = zsock(zmq.REQ)
    req.connect(endpoint)
    req.send(pack({"args": str(mark), "workflow_id": "in-hand"}))
    assert wait_for(mark.exists), "the handler never started"

    signalled = time.monotonic()
    child.signal(signal.SIGTERM)
    reply = unpack(req.recv()) if req.poll(int(WAIT_S * 1000)) else None
    code = child.wait()
    exit_s = time.monotonic() - signalled

    print(f"\nSIGTERM during a 500 ms handler: reply delivered, exit {code} after {exit_s:.2f}s")
    assert reply == {"return_args": "done", "workflow_id": "in-hand"}
    assert code == 0
    assert exit_s < 5.0  # Service.stop_service's grace period


STUCK = """
from pathlib import Path
from zmqservice import App

app = App("stuck")
app.requester("nowhere")  # no timeout: it waits for ever


@app.replyer("stuck")
def stuck(args, to_send):
    Path(args).touch()
    return to_send("nowhere", args)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_ends_a_service_blocked_in_a_requester_at_once(
    spawn: Spawner,
    write: Write,
    ipc: Callable[[str], str],
    tmp_path: Path,
    zsock: Sock,
    signum: int,
) -> None:
    endpoint = ipc("stuck")
    mark = tmp_path / "stuck"
    addresses = {
        "in": {"stuck": {"replyer": endpoint}},
        "out": {"nowhere": {"requester": ipc("nobody")}},
    }
    child = start(spawn, write, STUCK, addresses)
    req = zsock(zmq.REQ)
    req.connect(endpoint)
    req.send(pack({"args": str(mark), "workflow_id": "w"}))
    assert wait_for(mark.exists), child.stderr()

    child.signal(signum)  # finish the message in hand ... which never ends
    assert not wait_for(lambda: child.proc.poll() is not None, timeout=0.5)
    signalled = time.monotonic()
    child.signal(signum)
    code = child.wait()
    exit_s = time.monotonic() - signalled

    print(f"\nsecond {signal.Signals(signum).name} while blocked in recv: exit after {exit_s:.2f}s")
    assert code == 1  # a forced stop: the reply in hand was given up (docs/deploy.md)
    assert exit_s < 3.0


MAIN_BLOCKED = """
from pathlib import Path
from zmqservice import App

app = App("caller")
app.requester("silent")  # no timeout


@app.main
def main(to_send, config):
    Path(config["mark"]).touch()
    to_send("silent", "are you there?")
"""


def test_main_blocked_mid_request_exits_on_the_first_signal(
    spawn: Spawner,
    write: Write,
    ipc: Callable[[str], str],
    tmp_path: Path,
    zsock: Sock,
) -> None:
    endpoint = ipc("silent")
    silent = zsock(zmq.REP)  # takes the request and never answers
    silent.bind(endpoint)
    mark = tmp_path / "asked"
    child = start(
        spawn,
        write,
        MAIN_BLOCKED,
        {"out": {"silent": {"requester": endpoint}}},
        "-m",
        "--mark",
        str(mark),
    )
    assert silent.poll(int(WAIT_S * 1000)), child.stderr()
    silent.recv()  # the request is in: the child waits for the reply

    signalled = time.monotonic()
    child.signal(signal.SIGTERM)
    code = child.wait()
    exit_s = time.monotonic() - signalled

    print(f"\nmain mode, SIGTERM mid-request: exit {code} after {exit_s:.2f}s")
    assert mark.exists()
    assert code == 0
    assert exit_s < 3.0


MAIN_WITH_BUSY_SERVER = """
import time
from pathlib import Path
from zmqservice import App

app = App("busy")
app.requester("nowhere")  # no timeout


@app.replyer("stuck")
def stuck(args, to_send):
    Path(args).touch()
    return to_send("nowhere", args)


@app.main
def main():
    while True:
        time.sleep(0.05)
"""


def test_main_mode_second_signal_interrupts_a_serving_thread_blocked_in_a_requester(
    spawn: Spawner,
    write: Write,
    ipc: Callable[[str], str],
    tmp_path: Path,
    zsock: Sock,
) -> None:
    endpoint = ipc("busy")
    mark = tmp_path / "busy"
    addresses = {
        "in": {"stuck": {"replyer": endpoint}},
        "out": {"nowhere": {"requester": ipc("nobody")}},
    }
    child = start(spawn, write, MAIN_WITH_BUSY_SERVER, addresses, "-m", "-cl", "WARNING")
    req = zsock(zmq.REQ)
    req.connect(endpoint)
    req.send(pack({"args": str(mark), "workflow_id": "w"}))
    assert wait_for(mark.exists), child.stderr()

    child.signal(signal.SIGTERM)  # main stops; the serving thread gets a grace period
    assert not wait_for(lambda: child.proc.poll() is not None, timeout=0.5)
    signalled = time.monotonic()
    child.signal(signal.SIGTERM)  # ... cut short
    code = child.wait()
    exit_s = time.monotonic() - signalled

    print(f"\nmain mode, busy serving thread, second SIGTERM: exit after {exit_s:.2f}s")
    assert code == 1  # a forced stop
    assert exit_s < 3.0  # not the 5 s grace period
    assert "interrupting it" in child.stderr()


# -- exits with messages still queued ---------------------------------------------------------

FLOODER = """
import time
from pathlib import Path
from zmqservice import App

app = App("flooder")
app.publisher("ticks", hwm=1000)


@app.main
def main(to_send, config):
    go = Path(config["go"])
    while not go.exists():
        to_send("ticks", "probe")
        time.sleep(0.01)
    blob = "x" * 10_000
    for n in range(20_000):
        to_send("ticks", blob)
    Path(config["done"]).touch()
"""


def test_exit_is_bounded_with_messages_queued_for_a_stalled_subscriber(
    spawn: Spawner,
    write: Write,
    ipc: Callable[[str], str],
    tmp_path: Path,
    zsock: Sock,
) -> None:
    endpoint = ipc("flood")
    sub = zsock(zmq.SUB)  # connected, subscribed, and never reading again
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    go, done = tmp_path / "go", tmp_path / "done"
    child = start(
        spawn,
        write,
        FLOODER,
        {"out": {"ticks": {"publisher": endpoint}}},
        "-m",
        "--go",
        str(go),
        "--done",
        str(done),
    )
    assert sub.poll(int(WAIT_S * 1000)), child.stderr()
    go.touch()
    assert wait_for(done.exists), child.stderr()
    finished = time.monotonic()
    code = child.wait()
    exit_s = time.monotonic() - finished

    print(f"\nexit with 200 MB published to a stalled subscriber: {exit_s:.2f}s after main")
    assert code == 0
    assert exit_s < 3.0  # linger is 0.5 s: the queue is dropped, not flushed for ever


def test_stats_and_limits_are_documented() -> None:
    text = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text(encoding="utf-8")
    for words in (
        "max_message_size",
        "ZMQ_MAXMSGSIZE",
        "RequestTimeout",
        "app.stats",
        "slow joiner",
        "high-water mark",
        '"seq"',
        '"pub"',
    ):
        assert words in text, words
