"""A serving child with no traffic sleeps in poll: a sanity bound on idle CPU, not a benchmark."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from .conftest import WAIT_S, Spawner, pack, unpack, wait_for

SERVICE = """
    from pathlib import Path

    from zmqservice import App

    app = App("idlesvc", config={"required": {"ready_file": str}})
    {connections}


    @app.init
    def init(config):
        Path(config["ready_file"]).write_text("ready")
"""

CONNECTIONS = {
    "one replyer": """
    @app.replyer("echo")
    def echo(args):
        return args
    """,
    "replyer and subscriber": """
    @app.replyer("echo")
    def echo(args):
        return args

    @app.subscriber("events")
    def on_event(args):
        pass
    """,
    "publisher only": """
    app.publisher("events")
    """,
}


def cpu_fraction(pid: int, seconds: float) -> float:
    """The share of one core `pid` used over the next `seconds`."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def round_trip(zsock: Callable[[int], zmq.Socket[bytes]], endpoint: str) -> bool:
    """One request to the child's replyer, answered within `WAIT_S`."""
    sock = zsock(zmq.REQ)
    sock.connect(endpoint)
    sock.send(pack({"args": 1, "workflow_id": "w"}))
    return bool(sock.poll(int(WAIT_S * 1000))) and unpack(sock.recv())["return_args"] == 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` from /proc (fields 14 and 15 of stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("kind", list(CONNECTIONS))
def test_idle_service_uses_little_cpu(
    spawn: Spawner,
    write: Callable[[str, Any], Path],
    tmp_path: Path,
    ipc: Callable[[str], str],
    zsock: Callable[[int], zmq.Socket[bytes]],
    kind: str,
) -> None:
    connections = CONNECTIONS[kind]
    service = write("idlesvc.py", SERVICE.replace("{connections}", connections.strip()))
    addresses: dict[str, dict[str, Any]] = {"in": {}, "out": {}}
    if "echo" in connections:
        addresses["in"]["echo"] = {"replyer": ipc("echo")}
    if "subscriber" in connections:
        addresses["in"]["events"] = {"subscriber": ipc("nobody_publishes")}
    if "publisher" in connections:
        addresses["out"]["events"] = {"publisher": ipc("events")}
    ready = tmp_path / "ready"
    child = spawn.start(
        "run",
        str(service),
        "-a",
        str(write("addresses.json", addresses)),
        "--ready-file",
        str(ready),
    )
    assert wait_for(lambda: ready.exists() or child.proc.poll() is not None), child.stderr()
    assert child.proc.poll() is None, child.stderr()
    if "echo" in connections:  # the serving loop is up once it has answered a request
        assert round_trip(zsock, addresses["in"]["echo"]["replyer"]), child.stderr()

    # The least CPU of several windows: a window that catches leftover start-up work (or a
    # neighbour's load on this machine) cannot fail the test; a busy loop shows in all.
    windows = [cpu_fraction(child.pid, 0.4) for _ in range(4)]
    assert min(windows) < 0.1, f"{kind}: CPU fraction per 0.4 s window {windows}"
    child.proc.terminate()
    assert child.wait() == 0, child.stderr()
