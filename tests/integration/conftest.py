"""Fixtures for integration tests: apps in threads, raw pyzmq clients, child processes.

Every thread, socket and process a test starts is stopped here, whatever the test did.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from zmqservice import App

WAIT_S = 10.0
"""Generous bound for anything that should take milliseconds."""


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT_S, step: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def free_port() -> int:
    """A TCP port nobody listens on right now, for peers that cannot bind port 0 and say
    which port they got (the predecessor; a ``--workers`` parent's proxy). It is free only
    until someone binds it: prefer ``tcp://127.0.0.1:0`` and ``ipc://`` where they work."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def recv_frame(sock: zmq.Socket[bytes], timeout: float = WAIT_S) -> bytes:
    """Receive one frame, failing the test after `timeout` seconds."""
    if not sock.poll(int(timeout * 1000), zmq.POLLIN):
        raise AssertionError(f"no message within {timeout}s")
    return sock.recv()


def pack(value: Any) -> bytes:
    """Pack the way the predecessor (and any raw peer) does."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(frame: bytes) -> Any:
    """Unpack without zmqservice's marker hooks: what a raw peer sees."""
    return msgpack.unpackb(frame, raw=False)


# -- apps in threads ------------------------------------------------------------------------


class Runner:
    """Starts apps in threads and stops them all at teardown."""

    def __init__(self) -> None:
        self.started: list[tuple[App, threading.Thread, list[BaseException]]] = []

    def serve(
        self,
        app: App,
        addresses: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> App:
        """Run `app` in a thread; return once its sockets are open."""
        errors: list[BaseException] = []

        def target() -> None:
            try:
                app.run(addresses, config)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target, name=f"app-{app.name}", daemon=True)
        thread.start()
        self.started.append((app, thread, errors))
        deadline = time.monotonic() + WAIT_S
        while not app.wait_ready(0.02):
            if not thread.is_alive():
                raise AssertionError(f"app {app.name!r} stopped before it was ready: {errors}")
            if time.monotonic() > deadline:
                raise AssertionError(f"app {app.name!r} not ready within {WAIT_S}s")
        return app

    def close(self) -> None:
        """Stop apps newest first, so a peer is never left waiting for one already gone."""
        problems = []
        for app, thread, errors in reversed(self.started):
            app.stop()
            thread.join(WAIT_S)
            if thread.is_alive():
                problems.append(f"app {app.name!r} did not stop within {WAIT_S}s")
            if errors:
                problems.append(f"app {app.name!r} raised: {errors!r}")
        assert not problems, problems


@pytest.fixture
def runner() -> Iterator[Runner]:
    """Run apps in threads (``runner.serve(app)``); all are stopped and joined at teardown."""
    r = Runner()
    try:
        yield r
    finally:
        r.close()


# -- raw pyzmq --------------------------------------------------------------------------------


@pytest.fixture
def zsock() -> Iterator[Callable[[int], zmq.Socket[bytes]]]:
    """Make raw pyzmq sockets; all are closed with linger=0 and the context terminated.

    The sockets are held here: a socket garbage-collected unclosed warns (an error here).
    """
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sockets: list[zmq.Socket[bytes]] = []

    def make(kind: int) -> zmq.Socket[bytes]:
        sock = ctx.socket(kind)
        sockets.append(sock)
        return sock

    try:
        yield make
    finally:
        for sock in sockets:
            sock.close(linger=0)
        ctx.term()


@pytest.fixture
def ipc(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Make ``ipc://`` endpoints under tmp_path (or a short temp dir if that path is too long)."""
    base = tmp_path
    short: str | None = None
    if len(str(tmp_path)) > 80:  # sun_path holds ~107 bytes
        short = tempfile.mkdtemp(prefix="zsi")
        base = Path(short)

    def make(name: str) -> str:
        return f"ipc://{base / name}.ipc"

    try:
        yield make
    finally:
        if short is not None:
            for path in Path(short).iterdir():
                path.unlink()
            Path(short).rmdir()


# -- child processes ------------------------------------------------------------------------


class Child:
    """A `python -m zmqservice` child with its output in files."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.proc = proc
        self.out_path = out
        self.err_path = err

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = WAIT_S) -> int:
        """Wait for the exit code; fail (the fixture kills it) after `timeout` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"child did not exit within {timeout}s; stderr:\n{self.stderr()}"
            ) from None

    def request(self, endpoint: str, args: Any, workflow_id: str = "probe") -> Any:
        """Send one request over a raw REQ socket, waiting (bounded) while the child starts."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            sock = ctx.socket(zmq.REQ)
            sock.connect(endpoint)
            sock.send(pack({"args": args, "workflow_id": workflow_id}))
            deadline = time.monotonic() + WAIT_S
            while not sock.poll(50, zmq.POLLIN):
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"child exited with {self.proc.returncode}; stderr:\n{self.stderr()}"
                    )
                if time.monotonic() > deadline:
                    raise AssertionError(f"no reply from the child within {WAIT_S}s")
            return unpack(sock.recv())
        finally:
            ctx.destroy(linger=0)


class Spawner:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ECHOSVC_", "CFGSVC_"))}
        env["PYTHONUNBUFFERED"] = "1"
        env["COLUMNS"] = "200"  # fewer wrapped rich log lines in stderr
        env.update(extra or {})
        return env

    def start(self, *args: str, env: dict[str, str] | None = None) -> Child:
        """Start ``python -m zmqservice ARGS`` in the test's tmp dir."""
        n = len(self.children)
        out, err = self.workdir / f"child{n}.out", self.workdir / f"child{n}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "zmqservice", *args],
                stdout=out_file,
                stderr=err_file,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=self.env(env),
            )
        child = Child(proc, out, err)
        self.children.append(child)
        return child

    def run(self, *args: str, env: dict[str, str] | None = None) -> Child:
        """Start a child and wait for it to exit."""
        child = self.start(*args, env=env)
        child.wait(30)
        return child

    def close(self) -> None:
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGKILL)
            child.proc.wait(WAIT_S)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    """Start zmqservice child processes; any still running at teardown is killed."""
    spawner = Spawner(tmp_path)
    try:
        yield spawner
    finally:
        spawner.close()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, Any], Path]:
    """Write a file under tmp_path: dedented source for ``.py``, JSON for dicts."""

    def make(name: str, content: Any) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
        return path

    return make


class Inbox:
    """What a subscriber handler received, safe to read from the test thread."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._lock = threading.Lock()

    def add(self, item: Any) -> None:
        with self._lock:
            self.items.append(item)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.items)

    def real(self) -> list[Any]:
        """Everything but the probes sent to get past ZMQ's slow-joiner window."""
        return [item for item in self.snapshot() if item.get("kind") != "probe"]
