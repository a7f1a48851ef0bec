"""Interop and parity with the predecessor, ``service-framework`` 0.0.20 ("sf").

Both directions over real loopback TCP sockets, each service in its own child process:

1. an sf main-mode requester calling a zmqservice replyer (``zmqservice run`` or `Service`);
2. a zmqservice requester calling an sf replyer;
3. sf publisher -> zmqservice subscriber and zmqservice publisher -> sf subscriber;
4. the *same* predecessor-style files (``predecessor_services/sf_*.py``) under sf, under
   ``zmqservice run``, under `Service` and in `InlineServices`, with the same results;
5. `App.from_module` validation of predecessor models, checked against sf's own validator
   (in-process, like the `InlineServices` tests).

The services record what they received as pickle files in ``out_dir`` (pickle keeps
`Decimal`, `UUID` and `set` exact). Tests that start sf children skip when it is absent.

Facts about sf that these tests rely on or pin:

- its addresses are ``host:port`` only; binding sides bind ``tcp://*:port``, so a port is
  picked up front by binding a plain socket to port 0 and closing it;
- its serving loop polls with timeout 0 (a busy loop): serving sf children get ``-wt 0.001``;
- an invalid request or a handler exception kills an sf serving process;
- it installs no graceful SIGTERM path: a serving sf child dies with -SIGTERM;
- its subscriber cannot be declared as documented (see ``sf_listener.py`` for the fix-up);
- its main mode sends every request with a fresh ``uuid4`` *object* as ``workflow_id``
  (a UUID marker on the wire) and never numbers them.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import msgpack
import pytest
import zmq

from zmqservice import (
    App,
    ConfigError,
    InlineServices,
    RemoteError,
    RemoteValidationError,
    RequestTimeout,
    Service,
    ValidationError,
    codec,
)
from zmqservice.loading import load_target

from .conftest import free_port

SERVICES = Path(__file__).with_name("predecessor_services")
WAIT_S = 15.0
"""Bound on anything that should take well under a second (children start in ~0.5s)."""
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# What sf_caller.py / zs_caller.py send, and what the echo services make of it.
REQUESTS: list[dict[str, Any]] = [
    {
        "amount": Decimal("1.25"),
        "ident": UUID("12345678-1234-5678-1234-567812345678"),
        "tags": {"a", "b"},
        "note": "first",
    },
    {"amount": Decimal("-0.001"), "ident": UUID(int=7), "tags": set()},
]


def echoed(request: dict[str, Any], served_by: str) -> dict[str, Any]:
    """The reply sf_echo.py / zs_echo.py give to `request` (less zs_echo's workflow_id)."""
    return {
        "amount": request["amount"] * 2,
        "ident": request["ident"],
        "tags": request["tags"] | {"echoed"},
        "note": request.get("note", ""),
        "served_by": served_by,
    }


def tick(n: int) -> dict[str, Any]:
    """Tick `n` as sf_ticker.py / zs_ticker.py publish it."""
    return {
        "n": n,
        "symbol": "BTC-USD",
        "price": Decimal("100.25") + n,
        "ident": UUID(int=1000 + n),
        "flags": {"live", f"n{n}"},
    }


def records(out_dir: Path, tag: str) -> list[Any]:
    """Everything the services recorded under `tag` (each file is renamed in complete)."""
    found = []
    for path in sorted(out_dir.glob(f"{tag}-*.pkl")):
        with path.open("rb") as file:
            found.append(pickle.load(file))
    return found


def require_sf() -> None:
    """Skip unless the predecessor can be imported (it needs numpy without declaring it)."""
    pytest.importorskip("numpy")
    pytest.importorskip("service_framework")


# -- child processes ------------------------------------------------------------------------


class Child:
    """A child service: an sf or ``zmqservice run`` subprocess, or a `Service` child."""

    def __init__(
        self,
        label: str,
        log_path: Path,
        proc: subprocess.Popen[bytes] | None = None,
        service: Service | None = None,
    ) -> None:
        self.label = label
        self.log_path = log_path
        self.proc = proc
        self.service = service

    def log(self) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def returncode(self) -> int | None:
        if self.proc is not None:
            return self.proc.poll()
        assert self.service is not None
        return self.service.exitcode

    def alive(self) -> bool:
        return self.returncode() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise AssertionError(
                f"{self.label} exited with {self.returncode()}; log:\n{self.log()}"
            )

    def wait(self, timeout: float = WAIT_S) -> int:
        """Wait for the child to exit on its own; fail after `timeout` seconds."""
        if self.proc is not None:
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"{self.label} still running after {timeout}s; log:\n{self.log()}"
                ) from None
        assert self.service is not None and self.service.process is not None
        self.service.process.join(timeout)
        code = self.service.exitcode
        if code is None:
            raise AssertionError(f"{self.label} still running after {timeout}s")
        return code

    def stop(self) -> int | None:
        """Stop gracefully where the child supports it: SIGTERM, or `stop_service()`."""
        if self.service is not None:
            return self.service.stop_service()
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        """Whatever state it is in, make sure it is gone (the fixture's finalizer)."""
        if self.service is not None:
            self.service.stop_service(timeout=5)
            return
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Children:
    """Starts services from a private copy of ``predecessor_services``; kills all at the end.

    A service is named ``"KIND:FILE"``: KIND is ``sf`` (``python -m service_framework``),
    ``zs`` (``zmqservice run``) or ``service`` (`zmqservice.Service`, serving only).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def _write(self, label: str, what: str, data: dict[str, Any]) -> str:
        path = self.workdir / f"{label}.{what}.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return str(path)

    def _env(self) -> dict[str, str]:
        # Keep `<APP>_<KEY>` config variables of the outer environment away from the apps.
        prefixes = ("SF_", "ZS_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        return env

    def start(
        self,
        name: str,
        addresses: dict[str, Any],
        config: dict[str, Any] | None = None,
        *,
        main: bool = False,
    ) -> Child:
        kind, _, filename = name.partition(":")
        label = f"{len(self.children)}-{kind}-{Path(filename).stem}"
        log_path = self.workdir / f"{label}.log"
        if kind == "service":
            assert not main, "the tests only serve through Service"
            service = Service(
                str(self.workdir / filename),
                addresses=addresses,
                config=config,
                log_path=str(log_path),
            )
            child = Child(label, log_path, service=service)
            self.children.append(child)
            service.run_service()
            if not service.wait_ready(WAIT_S):
                raise AssertionError(f"{label} not ready within {WAIT_S}s; log:\n{child.log()}")
            return child
        argv = [sys.executable]
        if kind == "sf":
            # sf turns the -s path into an import string: run it from the file's folder.
            argv += ["-m", "service_framework", "-s", f"./{filename}"]
            if not main:
                argv += ["-wt", "0.001"]  # sf's serving loop otherwise spins at 100% CPU
        elif kind == "zs":
            argv += ["-m", "zmqservice", "run", f"./{filename}"]
        else:
            raise ValueError(f"unknown child kind {kind!r}")
        argv += ["-a", self._write(label, "addresses", addresses)]
        if config is not None:
            argv += ["-c", self._write(label, "config", config)]
        if main:
            argv.append("-m")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        child = Child(label, log_path, proc=proc)
        self.children.append(child)
        return child

    def close(self) -> None:
        for child in reversed(self.children):
            child.kill()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A private copy of the service modules, plus an ``out`` folder they record into."""
    work = tmp_path / "svc"
    shutil.copytree(SERVICES, work, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    (work / "out").mkdir()
    return work


@pytest.fixture
def children(workdir: Path) -> Iterator[Children]:
    """Start child services; every one still running at teardown is stopped or killed."""
    group = Children(workdir)
    try:
        yield group
    finally:
        group.close()


def wait_listening(port: int, child: Child, timeout: float = WAIT_S) -> None:
    """Wait until `child` accepts TCP connections on `port` (fails early if it died)."""
    deadline = time.monotonic() + timeout
    while True:
        child.check_alive()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{child.label} not listening on {port} within {timeout}s; log:\n{child.log()}"
                ) from None
            time.sleep(0.02)


def wait_records(out_dir: Path, tag: str, count: int, *watch: Child) -> list[Any]:
    """Wait (bounded) until at least `count` records exist; fail early if a child died."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = records(out_dir, tag)
        if len(found) >= count:
            return found
        for child in watch:
            if child.returncode() not in (None, 0):
                raise AssertionError(
                    f"{child.label} exited with {child.returncode()}; log:\n{child.log()}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {c.label}:\n{c.log()}" for c in watch)
            raise AssertionError(f"{len(found)}/{count} {tag!r} records after {WAIT_S}s\n{logs}")
        time.sleep(0.02)


def needs_sf(*names: str) -> None:
    if any(name.startswith("sf:") for name in names):
        require_sf()


SIGTERM_EXIT = {"sf": -signal.SIGTERM, "zs": 0, "service": 0}
"""How each kind of serving child ends on a stop: sf has no graceful SIGTERM path."""


# -- 1, 2, 4: request/reply across frameworks ------------------------------------------------

REQ_REP_PAIRS = [
    # (caller, replyer)
    ("sf:sf_caller.py", "zs:zs_echo.py"),  # 1: sf requester -> zmqservice run replyer
    ("sf:sf_caller.py", "service:zs_echo.py"),  # 1: ... replyer in a Service child
    ("zs:zs_caller.py", "sf:sf_echo.py"),  # 2: zmqservice requester -> sf replyer
    ("sf:sf_caller.py", "sf:sf_echo.py"),  # baseline: sf talking to itself
    ("sf:sf_caller.py", "zs:sf_echo.py"),  # 4: sf replyer module under zmqservice run
    ("zs:zs_caller.py", "service:sf_echo.py"),  # 4: ... under Service
    ("zs:sf_caller.py", "sf:sf_echo.py"),  # 4: sf main module under zmqservice run -m
    ("zs:sf_caller.py", "zs:zs_echo.py"),  # 4: ... against a native replyer, no sf at all
]


@pytest.mark.parametrize(("caller", "replyer"), REQ_REP_PAIRS)
def test_request_reply_round_trip(
    children: Children, workdir: Path, caller: str, replyer: str
) -> None:
    needs_sf(caller, replyer)
    port = free_port()
    out = workdir / "out"
    server = children.start(replyer, {"in": {"echo": {"replyer": f"127.0.0.1:{port}"}}})
    wait_listening(port, server)
    client = children.start(
        caller,
        {"out": {"echo": {"requester": f"127.0.0.1:{port}"}}},
        {"out_dir": str(out), "warmup_s": 0.3},
        main=True,
    )
    assert client.wait() == 0, client.log()
    [result] = records(out, "caller")

    assert result["sent"] == REQUESTS
    served_by = "zs_echo" if replyer.endswith("zs_echo.py") else "sf_echo"
    got = result["got"]
    workflow_ids = [reply.pop("workflow_id", None) for reply in got]
    assert got == [echoed(request, served_by) for request in REQUESTS]
    for reply in got:  # == above holds for Decimal vs float too: check the types
        assert type(reply["amount"]) is Decimal
        assert type(reply["ident"]) is UUID
        assert type(reply["tags"]) is set
    assert [str(reply["amount"]) for reply in got] == ["2.50", "-0.002"]

    if served_by == "sf_echo":
        assert workflow_ids == [None, None]
    elif caller.startswith("sf:"):
        # sf's main mode sends each request under a fresh uuid4 object (a UUID marker):
        # zmqservice takes its string form, and sf never numbers them.
        assert all(re.fullmatch(UUID_RE, wid) for wid in workflow_ids), workflow_ids
        assert workflow_ids[0] != workflow_ids[1]
    else:
        # zmqservice's main numbers its calls X_1, X_2 under one fresh id X.
        first, second = (re.fullmatch(f"({UUID_RE})_(\\d+)", wid) for wid in workflow_ids)
        assert first and second, workflow_ids
        assert first[1] == second[1]
        assert (first[2], second[2]) == ("1", "2")

    assert server.alive(), server.log()
    assert server.stop() == SIGTERM_EXIT[replyer.partition(":")[0]], server.log()


def zmqservice_requests(port: int, requests: list[Any], timeout: float) -> list[tuple[str, Any]]:
    """Send `requests` from an in-process zmqservice requester; each outcome or error."""
    app = App("probe")
    app.requester("echo", timeout=timeout, address=f"127.0.0.1:{port}")

    @app.main
    def main(to_send: Callable[[str, Any], Any]) -> list[tuple[str, Any]]:
        outcomes: list[tuple[str, Any]] = []
        for request in requests:
            try:
                outcomes.append(("ok", to_send("echo", request)))
            except (RemoteError, RequestTimeout) as exc:
                outcomes.append((type(exc).__name__, exc))
        return outcomes

    result: list[tuple[str, Any]] = app.run(main=True)
    return result


BAD_ARGS = {"amount": "1.25", "ident": UUID(int=1), "tags": {"a"}}  # amount is no Decimal
EXPLODE = {"amount": Decimal(1), "ident": UUID(int=1), "tags": {"a"}, "explode": True}
GOOD = REQUESTS[0]


@pytest.mark.parametrize("bad", [BAD_ARGS, EXPLODE], ids=["invalid-args", "handler-raises"])
def test_sf_replyer_dies_on_a_bad_request(
    children: Children, workdir: Path, bad: dict[str, Any]
) -> None:
    """The predecessor's misbehaviour, pinned: one bad request kills its serving process.

    A zmqservice requester with a timeout survives it with `RequestTimeout`.
    """
    require_sf()
    port = free_port()
    server = children.start("sf:sf_echo.py", {"in": {"echo": {"replyer": f"127.0.0.1:{port}"}}})
    wait_listening(port, server)
    outcomes = zmqservice_requests(port, [bad, GOOD], timeout=1.5)
    assert [kind for kind, _ in outcomes] == ["RequestTimeout", "RequestTimeout"]
    assert server.wait() == 1
    assert ("ValueError" if bad is BAD_ARGS else "RuntimeError: asked to explode") in server.log()


@pytest.mark.parametrize("module", ["sf_echo.py", "zs_echo.py"])
def test_zmqservice_replyer_survives_bad_requests(
    children: Children, workdir: Path, module: str
) -> None:
    """The same bad requests to a zmqservice replyer: error replies, and it keeps serving."""
    port = free_port()
    server = children.start(f"zs:{module}", {"in": {"echo": {"replyer": f"127.0.0.1:{port}"}}})
    wait_listening(port, server)
    outcomes = zmqservice_requests(port, [BAD_ARGS, EXPLODE, GOOD], timeout=WAIT_S)
    (k1, invalid), (k2, raised), (k3, reply) = outcomes
    assert (k1, k2, k3) == ("RemoteValidationError", "RemoteError", "ok")
    assert isinstance(invalid, RemoteValidationError) and isinstance(invalid, ValidationError)
    assert "echo" in invalid.message and "amount" in invalid.message
    assert raised.type == "HandlerError" and "asked to explode" in raised.message
    reply.pop("workflow_id", None)
    assert reply == echoed(GOOD, module.removesuffix(".py"))
    assert server.stop() == 0, server.log()


@pytest.mark.parametrize("caller", ["sf:sf_caller.py", "zs:sf_caller.py"])
def test_error_reply_reaches_the_predecessor_requester(
    children: Children, workdir: Path, caller: str
) -> None:
    """A zmqservice error reply fails the sf caller loudly instead of hanging it.

    sf reads the error reply's ``return_args: None`` and its reply validator raises
    ValueError; under zmqservice the same module's ``to_send`` raises `RemoteError`. Either
    way main fails (exit 1) and the replyer keeps serving.
    """
    needs_sf(caller)
    port = free_port()
    server = children.start("zs:zs_echo.py", {"in": {"echo": {"replyer": f"127.0.0.1:{port}"}}})
    wait_listening(port, server)
    client = children.start(
        caller,
        {"out": {"echo": {"requester": f"127.0.0.1:{port}"}}},
        {"out_dir": str(workdir / "out"), "warmup_s": 0.3, "explode": True},
        main=True,
    )
    assert client.wait() == 1, client.log()
    if caller.startswith("sf:"):
        assert "Attempting to validate unsupported type" in client.log()
    else:
        log = " ".join(client.log().split())  # rich wraps long lines
        assert "RemoteError" in log and "asked to explode" in log
    assert records(workdir / "out", "caller") == []
    [(kind, reply)] = zmqservice_requests(port, [GOOD], timeout=WAIT_S)
    assert kind == "ok" and reply["served_by"] == "zs_echo"
    assert server.stop() == 0, server.log()


# -- the wire, byte for byte ------------------------------------------------------------------


def raw_unpack(frame: bytes) -> Any:
    """What a plain msgpack peer sees: markers stay maps."""
    return msgpack.unpackb(frame, raw=False)


@pytest.mark.parametrize("caller", ["sf:sf_caller.py", "zs:sf_caller.py", "zs:zs_caller.py"])
def test_request_frames_on_the_wire(children: Children, workdir: Path, caller: str) -> None:
    """sf's requests and zmqservice's are the same envelope with the same markers.

    The one difference: sf's main mode sends ``workflow_id`` as a UUID marker.
    """
    needs_sf(caller)
    port = free_port()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        rep = ctx.socket(zmq.REP)
        rep.bind(f"tcp://127.0.0.1:{port}")
        client = children.start(
            caller,
            {"out": {"echo": {"requester": f"127.0.0.1:{port}"}}},
            {"out_dir": str(workdir / "out"), "warmup_s": 0.3},
            main=True,
        )
        for request in REQUESTS:
            if not rep.poll(int(WAIT_S * 1000), zmq.POLLIN):
                raise AssertionError(f"no request within {WAIT_S}s; log:\n{client.log()}")
            frame = rep.recv()
            envelope = raw_unpack(frame)
            assert set(envelope) == {"args", "workflow_id"}
            args = envelope["args"]
            assert args["amount"] == {"__decimal__": True, "as_str": str(request["amount"])}
            assert args["ident"] == {"__uuid__": True, "as_str": str(request["ident"])}
            assert args["tags"]["__set__"] is True
            assert sorted(args["tags"]["value"]) == sorted(request["tags"])
            if caller.startswith("sf:"):
                marker = envelope["workflow_id"]
                assert set(marker) == {"__uuid__", "as_str"}
                assert re.fullmatch(UUID_RE, marker["as_str"])
            else:
                assert re.fullmatch(f"{UUID_RE}_[12]", envelope["workflow_id"])
            decoded_args, workflow_id = codec.decode_request(frame)
            assert decoded_args == request
            assert workflow_id and isinstance(workflow_id, str)
            reply = {**echoed(request, "raw"), "workflow_id": workflow_id}
            rep.send(codec.encode_reply(reply, workflow_id))
        assert client.wait() == 0, client.log()
    finally:
        ctx.destroy(linger=0)
    [result] = records(workdir / "out", "caller")
    assert [reply["served_by"] for reply in result["got"]] == ["raw", "raw"]


@pytest.mark.parametrize("replyer", ["sf:sf_echo.py", "zs:sf_echo.py", "zs:zs_echo.py"])
def test_reply_frames_on_the_wire(children: Children, workdir: Path, replyer: str) -> None:
    """Replies from sf and from zmqservice: ``{"return_args", "workflow_id"}``, id echoed."""
    needs_sf(replyer)
    port = free_port()
    server = children.start(replyer, {"in": {"echo": {"replyer": f"127.0.0.1:{port}"}}})
    wait_listening(port, server)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        req = ctx.socket(zmq.REQ)
        req.connect(f"tcp://127.0.0.1:{port}")
        req.send(codec.encode_request(REQUESTS[0], "wf-42"))
        if not req.poll(int(WAIT_S * 1000), zmq.POLLIN):
            raise AssertionError(f"no reply within {WAIT_S}s; log:\n{server.log()}")
        frame = req.recv()
    finally:
        ctx.destroy(linger=0)
    envelope = raw_unpack(frame)
    assert set(envelope) == {"return_args", "workflow_id"}
    assert envelope["workflow_id"] == "wf-42"
    raw_args = envelope["return_args"]
    assert raw_args["amount"] == {"__decimal__": True, "as_str": "2.50"}
    assert raw_args["ident"] == {"__uuid__": True, "as_str": str(REQUESTS[0]["ident"])}
    assert sorted(raw_args["tags"]["value"]) == ["a", "b", "echoed"]
    return_args, error = codec.decode_reply(frame)
    assert error is None
    if replyer.endswith("zs_echo.py"):
        assert return_args.pop("workflow_id") == "wf-42"
    assert return_args == echoed(REQUESTS[0], Path(replyer.partition(":")[2]).stem)
    assert server.stop() == SIGTERM_EXIT[replyer.partition(":")[0]], server.log()


# -- 3, 4: publish/subscribe across frameworks ----------------------------------------------

PUB_SUB_PAIRS = [
    # (publisher, subscriber)
    ("sf:sf_ticker.py", "zs:zs_listener.py"),  # 3: sf publisher -> zmqservice subscriber
    ("zs:zs_ticker.py", "sf:sf_listener.py"),  # 3: zmqservice publisher -> sf subscriber
    ("sf:sf_ticker.py", "sf:sf_listener.py"),  # baseline (with sf_listener's workaround)
    ("sf:sf_ticker.py", "service:sf_listener.py"),  # 4: sf subscriber module under Service
    ("zs:sf_ticker.py", "zs:sf_listener.py"),  # 4: both sf modules under zmqservice run
]


@pytest.mark.parametrize(("publisher", "subscriber"), PUB_SUB_PAIRS)
def test_publish_subscribe(
    children: Children, workdir: Path, publisher: str, subscriber: str
) -> None:
    needs_sf(publisher, subscriber)
    port = free_port()
    out, stop = workdir / "out", workdir / "stop"
    listener = children.start(
        subscriber,
        {"in": {"ticks": {"subscriber": f"127.0.0.1:{port}"}}},
        {"out_dir": str(out)},
    )
    # PUB drops until the subscriber has connected: publish until it has heard some.
    ticker = children.start(
        publisher,
        {"out": {"ticks": {"publisher": f"127.0.0.1:{port}"}}},
        {"count": 300, "interval_s": 0.05, "stop_path": str(stop)},
        main=True,
    )
    wait_records(out, "tick", 3, listener, ticker)
    stop.touch()
    assert ticker.wait() == 0, ticker.log()
    listener.check_alive()

    heard = sorted(records(out, "tick"), key=lambda t: t["n"])
    numbers = [t["n"] for t in heard]
    assert numbers == sorted(set(numbers)), "a tick arrived twice"
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), "a tick went missing"
    for got in heard:
        workflow_id = got.pop("workflow_id", None)
        assert got == tick(got["n"])
        assert type(got["price"]) is Decimal and type(got["ident"]) is UUID
        assert type(got["flags"]) is set
        if workflow_id is not None:  # zs_listener records it
            assert re.fullmatch(f"{UUID_RE}(_\\d+)?", workflow_id), workflow_id
    assert listener.stop() == SIGTERM_EXIT[subscriber.partition(":")[0]], listener.log()


def test_unfiltered_zmqservice_subscriber_hears_an_sf_topic(
    children: Children, workdir: Path
) -> None:
    """A subscriber with no topic skips the topic string sf puts before each envelope."""
    require_sf()
    port = free_port()
    heard: list[Any] = []
    app = App("unfiltered")

    @app.subscriber("ticks", address=f"127.0.0.1:{port}")
    def on_tick(args: Any) -> None:
        heard.append(args)

    errors: list[BaseException] = []

    def serve() -> None:
        try:
            app.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, name="unfiltered-subscriber", daemon=True)
    thread.start()
    try:
        assert app.wait_ready(WAIT_S), errors
        stop = workdir / "stop"
        ticker = children.start(
            "sf:sf_ticker.py",
            {"out": {"ticks": {"publisher": f"127.0.0.1:{port}"}}},
            {"count": 300, "interval_s": 0.05, "stop_path": str(stop)},
            main=True,
        )
        deadline = time.monotonic() + WAIT_S
        while not heard and time.monotonic() < deadline:
            assert ticker.returncode() in (None, 0), ticker.log()
            time.sleep(0.02)
        stop.touch()
        assert ticker.wait() == 0, ticker.log()
    finally:
        app.stop()
        thread.join(WAIT_S)
    assert not thread.is_alive() and not errors, errors
    assert heard, "no tick heard"
    assert heard[0] == tick(heard[0]["n"])


@pytest.mark.parametrize("publisher", ["sf:sf_ticker.py", "zs:sf_ticker.py", "zs:zs_ticker.py"])
def test_published_frames_on_the_wire(children: Children, workdir: Path, publisher: str) -> None:
    """One frame, ``packb(topic) + packb(envelope)``, from both frameworks."""
    needs_sf(publisher)
    port = free_port()
    stop = workdir / "stop"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, msgpack.packb("prices"))
        sub.connect(f"tcp://127.0.0.1:{port}")
        ticker = children.start(
            publisher,
            {"out": {"ticks": {"publisher": f"127.0.0.1:{port}"}}},
            {"count": 300, "interval_s": 0.05, "stop_path": str(stop)},
            main=True,
        )
        if not sub.poll(int(WAIT_S * 1000), zmq.POLLIN):
            raise AssertionError(f"nothing published within {WAIT_S}s; log:\n{ticker.log()}")
        frame = sub.recv(zmq.NOBLOCK)
        assert not sub.getsockopt(zmq.RCVMORE), "a tick must be a single frame"
    finally:
        stop.touch()
        ctx.destroy(linger=0)
    prefix = msgpack.packb("prices")
    assert frame.startswith(prefix)
    envelope = raw_unpack(frame[len(prefix) :])
    # zmqservice numbers what it publishes (docs/reliability.md); the predecessor ignores it.
    extra = set() if publisher.startswith("sf:") else {"seq", "pub"}
    assert set(envelope) == {"args", "workflow_id", *extra}
    n = envelope["args"]["n"]
    assert envelope["args"]["price"] == {"__decimal__": True, "as_str": str(tick(n)["price"])}
    if publisher.startswith("sf:"):
        assert set(envelope["workflow_id"]) == {"__uuid__", "as_str"}
    else:
        assert re.fullmatch(f"{UUID_RE}_\\d+", envelope["workflow_id"])
    args, _ = codec.decode_published(frame, codec.topic_prefix("prices"))
    assert args == tick(n)
    assert ticker.wait() == 0, ticker.log()


# -- 4: InlineServices over the same files ---------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "replyer"),
    [
        ("sf_caller.py", "sf_echo.py"),
        ("sf_caller.py", "zs_echo.py"),
        ("zs_caller.py", "sf_echo.py"),
    ],
)
def test_inline_request_reply(workdir: Path, caller: str, replyer: str) -> None:
    inline = InlineServices()
    inline.set_main_service("caller", str(workdir / caller), {"out_dir": str(workdir / "out")})
    inline.add_service("echo", str(workdir / replyer))
    inline.add_relation("caller", "echo", "echo", "echo")
    replies = inline.start()

    served_by = Path(replyer).stem
    workflow_ids = [reply.pop("workflow_id", None) for reply in replies]
    assert replies == [echoed(request, served_by) for request in REQUESTS]
    assert all(type(reply["amount"]) is Decimal for reply in replies)
    [result] = records(workdir / "out", "caller")
    for reply in result["got"]:
        reply.pop("workflow_id", None)
    assert result["got"] == replies
    if served_by == "zs_echo":
        assert all(re.fullmatch(f"{UUID_RE}_[12]", wid) for wid in workflow_ids), workflow_ids


def test_inline_fan_out_one_publisher_to_two_subscribers(workdir: Path) -> None:
    out_sf, out_zs = workdir / "out" / "sf", workdir / "out" / "zs"
    out_sf.mkdir()
    out_zs.mkdir()
    inline = InlineServices()
    inline.set_main_service(
        "ticker", str(workdir / "sf_ticker.py"), {"count": 3, "interval_s": 0.0}
    )
    inline.add_service("listener_sf", str(workdir / "sf_listener.py"), {"out_dir": str(out_sf)})
    inline.add_service("listener_zs", str(workdir / "zs_listener.py"), {"out_dir": str(out_zs)})
    inline.add_relation("ticker", "ticks", "listener_sf", "ticks")
    inline.add_relation("ticker", "ticks", "listener_zs", "ticks")
    assert inline.relations == {
        ("ticker", "ticks"): [("listener_sf", "ticks"), ("listener_zs", "ticks")]
    }

    assert inline.start() == 3
    for out in (out_sf, out_zs):
        heard = sorted(records(out, "tick"), key=lambda t: t["n"])
        for got in heard:
            got.pop("workflow_id", None)
        assert heard == [tick(n) for n in range(3)]


def test_inline_at_most_one_replyer_per_out_connection(workdir: Path) -> None:
    inline = InlineServices()
    inline.set_main_service("caller", str(workdir / "sf_caller.py"), {"out_dir": str(workdir)})
    inline.add_service("echo_sf", str(workdir / "sf_echo.py"))
    inline.add_service("echo_zs", str(workdir / "zs_echo.py"))
    inline.add_relation("caller", "echo", "echo_sf", "echo")
    with pytest.raises(ValueError, match="at most one"):
        inline.add_relation("caller", "echo", "echo_zs", "echo")
    assert inline.relations == {("caller", "echo"): [("echo_sf", "echo")]}
    assert [reply["served_by"] for reply in inline.start()] == ["sf_echo", "sf_echo"]


def test_inline_unknown_names_raise_value_error_naming_them(workdir: Path) -> None:
    inline = InlineServices()
    with pytest.raises(ValueError, match="set_main_service"):
        inline.start()
    inline.set_main_service("caller", str(workdir / "sf_caller.py"), {"out_dir": str(workdir)})
    inline.add_service("echo", str(workdir / "sf_echo.py"))
    with pytest.raises(ValueError, match="'ghost'"):
        inline.add_relation("ghost", "echo", "echo", "echo")
    with pytest.raises(ValueError, match="'phantom'"):
        inline.add_relation("caller", "echo", "phantom", "echo")
    with pytest.raises(ValueError, match="'nope'"):
        inline.add_relation("caller", "nope", "echo", "echo")
    with pytest.raises(ValueError, match="'missing_in'"):
        inline.add_relation("caller", "echo", "echo", "missing_in")
    with pytest.raises(ValueError, match="'ghost'"):
        inline.get_service_config("ghost")
    with pytest.raises(ValueError, match="'echo'"):
        inline.add_service("echo", str(workdir / "zs_echo.py"))
    with pytest.raises(ValueError, match="'caller'"):
        inline.set_main_service("again", str(workdir / "sf_caller.py"))
    # No relation for the requester main uses: the error names the connection.
    with pytest.raises(ValueError, match=r"caller\.echo"):
        inline.start()


def test_inline_config_is_validated_against_the_module_config_model(workdir: Path) -> None:
    inline = InlineServices()
    with pytest.raises(ConfigError, match="out_dir"):
        inline.set_main_service("caller", str(workdir / "sf_caller.py"), {})
    with pytest.raises(ConfigError, match="interval_s"):
        inline.add_service("ticker", str(workdir / "sf_ticker.py"), {"count": 1})


# -- 5: App.from_module on predecessor models --------------------------------------------------


def predecessor_module(
    required: dict[Any, Any],
    optional: dict[Any, Any] | None = None,
    *,
    returns: dict[Any, Any] | None = None,
    optional_returns: dict[Any, Any] | None = None,
    handler: Callable[..., Any] | None = None,
    config_model: dict[str, Any] | None = None,
) -> types.ModuleType:
    """A module as the predecessor wanted it: one replyer named ``check``."""
    module = types.ModuleType("pred_check")

    def check(args, to_send, config):
        return {"ok": True}

    module.connection_models = {
        "in": {
            "check": {
                "connection_type": "replyer",
                "required_creation_arguments": {"connection_function": handler or check},
                "optional_creation_arguments": {},
                "required_arguments": required,
                "optional_arguments": optional or {},
                "required_return_arguments": returns if returns is not None else {"ok": bool},
                "optional_return_arguments": optional_returns or {},
            }
        }
    }
    if config_model is not None:
        module.config_model = config_model
    return module


def sf_accepts(args: Any, required: dict[Any, Any], optional: dict[Any, Any]) -> bool:
    """Does the predecessor's own validator take `args` (as they arrive off the wire)?"""
    from service_framework.utils.validation_utils import validate_args

    off_the_wire = codec.decode(codec.encode(args))
    try:
        validate_args(off_the_wire, required, optional)
    except Exception:  # ValueError mostly; TypeError/KeyError for some shapes
        return False
    return True


def zs_accepts(args: Any, required: dict[Any, Any], optional: dict[Any, Any]) -> bool:
    client = App.from_module(predecessor_module(required, optional)).test_client()
    try:
        assert client.request("check", args) == {"ok": True}
    except ValidationError as exc:
        assert "check" in str(exc), exc
        return False
    return True


NAME_QTY = {"name": str, "qty": int}
VALIDATION_CASES = [
    # id, required, optional, args, accepted
    ("required-present", NAME_QTY, {}, {"name": "x", "qty": 2}, True),
    ("required-missing", NAME_QTY, {}, {"name": "x"}, False),
    ("str-given-int", NAME_QTY, {}, {"name": 5, "qty": 2}, False),
    ("int-given-str", NAME_QTY, {}, {"name": "x", "qty": "2"}, False),
    ("int-given-float", NAME_QTY, {}, {"name": "x", "qty": 2.0}, False),
    ("unknown-field", NAME_QTY, {}, {"name": "x", "qty": 2, "extra": 1}, False),
    ("args-not-a-map", NAME_QTY, {}, ["x", 2], False),
    ("optional-absent", {"name": str}, {"note": str}, {"name": "x"}, True),
    ("optional-present", {"name": str}, {"note": str}, {"name": "x", "note": "y"}, True),
    ("optional-wrong-type", {"name": str}, {"note": str}, {"name": "x", "note": 5}, False),
    ("optional-only", {}, {"note": str}, {}, True),
    ("str-int-map", {"counts": {str: int}}, {}, {"counts": {"a": 1, "b": 2}}, True),
    ("str-int-map-empty", {"counts": {str: int}}, {}, {"counts": {}}, True),
    ("str-int-map-bad-value", {"counts": {str: int}}, {}, {"counts": {"a": "1"}}, False),
    ("str-int-map-bad-key", {"counts": {str: int}}, {}, {"counts": {b"a": 1}}, False),
    ("optional-str-int-map", {}, {"counts": {str: int}}, {"counts": {"a": 1}}, True),
    ("optional-str-int-map-bad", {}, {"counts": {str: int}}, {"counts": {"a": "x"}}, False),
    ("int-list", {"ids": [int]}, {}, {"ids": [1, 2, 3]}, True),
    ("int-list-empty", {"ids": [int]}, {}, {"ids": []}, True),
    ("int-list-bad-item", {"ids": [int]}, {}, {"ids": [1, "2"]}, False),
    ("int-list-not-a-list", {"ids": [int]}, {}, {"ids": 5}, False),
    ("optional-int-list-bad", {}, {"ids": [int]}, {"ids": ["1"]}, False),
    ("tuple", {"pair": (str, int)}, {}, {"pair": ("a", 1)}, True),
    ("tuple-wrong-length", {"pair": (str, int)}, {}, {"pair": ("a",)}, False),
    ("tuple-wrong-types", {"pair": (str, int)}, {}, {"pair": (1, "a")}, False),
    ("optional-tuple-wrong-length", {}, {"pair": (str, int)}, {"pair": ("a", 1, 2)}, False),
    ("str-set", {"tags": {str}}, {}, {"tags": {"a", "b"}}, True),
    ("str-set-empty", {"tags": {str}}, {}, {"tags": set()}, True),
    ("str-set-bad-member", {"tags": {str}}, {}, {"tags": {"a", 1}}, False),
    ("optional-str-set-bad", {}, {"tags": {str}}, {"tags": {1}}, False),
    ("nested-map", {"order": {"id": str, "qty": int}}, {}, {"order": {"id": "a", "qty": 1}}, True),
    ("nested-map-missing", {"order": {"id": str, "qty": int}}, {}, {"order": {"id": "a"}}, False),
    ("nested-map-bad-type", {"order": {"id": str}}, {}, {"order": {"id": 1}}, False),
    ("decimal", {"price": Decimal}, {}, {"price": Decimal("1.5")}, True),
    ("decimal-given-str", {"price": Decimal}, {}, {"price": "1.5"}, False),
    ("decimal-given-float", {"price": Decimal}, {}, {"price": 1.5}, False),
    ("uuid", {"id": UUID}, {}, {"id": UUID(int=3)}, True),
    ("uuid-given-str", {"id": UUID}, {}, {"id": str(UUID(int=3))}, False),
    ("list-of-maps", {"rows": [{str: int}]}, {}, {"rows": [{"a": 1}, {}]}, True),
    ("list-of-maps-bad", {"rows": [{str: int}]}, {}, {"rows": [{"a": 1.5}]}, False),
]


@pytest.mark.parametrize(
    ("required", "optional", "args", "accepted"),
    [pytest.param(*case[1:], id=case[0]) for case in VALIDATION_CASES],
)
def test_from_module_validation(
    required: dict[Any, Any], optional: dict[Any, Any], args: Any, accepted: bool
) -> None:
    assert zs_accepts(args, required, optional) is accepted


@pytest.mark.parametrize(
    ("required", "optional", "args", "accepted"),
    [pytest.param(*case[1:], id=case[0]) for case in VALIDATION_CASES],
)
def test_from_module_validation_agrees_with_the_predecessor(
    required: dict[Any, Any], optional: dict[Any, Any], args: Any, accepted: bool
) -> None:
    require_sf()
    assert sf_accepts(args, required, optional) is accepted


@pytest.mark.parametrize(
    ("required", "optional", "args", "sf_ok", "zs_ok"),
    [
        # sf uses isinstance: a bool is an int to it. zmqservice coerces nothing.
        pytest.param({"qty": int}, {}, {"qty": True}, True, False, id="bool-as-int"),
        # An int is no float to sf; zmqservice allows that one widening, as mypy does.
        pytest.param({"x": float}, {}, {"x": 1}, False, True, id="int-as-float"),
        # sf only iterates a {str} value; zmqservice wants a set (a set marker on the wire).
        pytest.param({"tags": {str}}, {}, {"tags": ["a"]}, True, False, id="list-as-set"),
        # sf checks a nested map's declared keys only; zmqservice rejects unknown ones too.
        pytest.param(
            {"order": {"id": str}},
            {},
            {"order": {"id": "a", "x": 1}},
            True,
            False,
            id="nested-extra",
        ),
        # A tuple arrives as a list; sf checks an *optional* list-shaped value item by item
        # against the tuple's first type, so it rejects a valid optional tuple.
        pytest.param({}, {"pair": (str, int)}, {"pair": ("a", 1)}, False, True, id="opt-tuple"),
    ],
)
def test_from_module_validation_where_zmqservice_is_stricter_or_wider(
    required: dict[Any, Any], optional: dict[Any, Any], args: Any, sf_ok: bool, zs_ok: bool
) -> None:
    """Differences from the predecessor's validator, pinned both ways."""
    assert zs_accepts(args, required, optional) is zs_ok
    require_sf()
    assert sf_accepts(args, required, optional) is sf_ok


def test_from_module_validates_replies() -> None:
    def check(args, to_send, config):
        return {"total": args["value"], **({"note": "n"} if args["value"] else {})}

    module = predecessor_module(
        {"value": int}, returns={"total": int}, optional_returns={"note": str}, handler=check
    )
    client = App.from_module(module).test_client()
    assert client.request("check", {"value": 2}) == {"total": 2, "note": "n"}
    assert client.request("check", {"value": 0}) == {"total": 0}

    def wrong(args, to_send, config):
        return {"total": "2"}

    bad = App.from_module(predecessor_module({}, returns={"total": int}, handler=wrong))
    with pytest.raises(ValidationError, match="total") as info:
        bad.test_client().request("check", {})
    assert isinstance(info.value, RemoteValidationError)


def test_from_module_config_model() -> None:
    def check(args, to_send, config):
        return {"ok": config["symbol"] == "BTC" and config.get("depth", 10) == 10}

    module = predecessor_module(
        {},
        handler=check,
        config_model={"required": {"symbol": str}, "optional": {"depth": int}},
    )
    app = App.from_module(module)
    assert app.config_model == {"required": {"symbol": str}, "optional": {"depth": int}}
    assert app.test_client(config={"symbol": "BTC"}).request("check", {}) == {"ok": True}
    with pytest.raises(ConfigError, match="symbol"):
        app.test_client(config={})
    with pytest.raises(ConfigError, match="depth"):
        app.test_client(config={"symbol": "BTC", "depth": "deep"})


def test_from_module_keeps_the_predecessor_models() -> None:
    required = {"counts": {str: int}, "ids": [int], "pair": (str, int), "tags": {str}}
    module = predecessor_module(required, {"note": str})
    model = App.from_module(module).connection_models["in"]["check"]
    assert model["connection_type"] == "replyer"
    assert model["required_arguments"] == required
    assert model["optional_arguments"] == {"note": str}
    assert model["required_return_arguments"] == {"ok": bool}
    handler = module.connection_models["in"]["check"]["required_creation_arguments"]
    assert model["required_creation_arguments"] == handler


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ({"in": {"x": {"connection_type": "dealer"}}}, "connection_models.in.x.connection_type"),
        ({"out": {"x": {"connection_type": "replyer"}}}, "connection_models.out.x"),
        ({"in": {"x": {"connection_type": "replyer"}}}, "connection_function"),
    ],
)
def test_from_module_rejects_malformed_models(models: dict[str, Any], message: str) -> None:
    module = types.ModuleType("pred_bad")
    module.connection_models = models
    with pytest.raises(ConfigError, match=re.escape(message)):
        App.from_module(module)


def test_predecessor_files_load_without_the_predecessor(workdir: Path) -> None:
    """The sf_*.py modules import nothing from sf: zmqservice alone can run them."""
    for name in ("sf_echo", "sf_caller", "sf_ticker", "sf_listener"):
        source = (workdir / f"{name}.py").read_text(encoding="utf-8")
        assert "service_framework" not in source
    client = load_target(str(workdir / "sf_echo.py")).test_client()
    assert client.request("echo", REQUESTS[0]) == echoed(REQUESTS[0], "sf_echo")
