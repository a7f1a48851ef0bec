"""How a `zmqservice run` child stops, and the exit status a supervisor sees (docs/deploy.md).

0 after a clean stop; 1 after a forced one (a second signal, or replies given up after the
grace period); never killed by a signal that arrives while it stops. Waits are bounded:
the only timing asserted is that a stop does not hang for the length of a handler.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from .conftest import WAIT_S, Child, Spawner, pack, wait_for

Write = Callable[[str, Any], Path]
Sock = Callable[[int], zmq.Socket[bytes]]

HANDLER_S = 60
"""How long the stuck handlers below run: far longer than any bound asserted here."""

SLOW = f"""
import time
from pathlib import Path
from zmqservice import App

app = App("slow")


@app.replyer("slow", concurrency=CONCURRENCY)
def slow(args):
    if args != "quick":
        Path(args).touch()
        time.sleep({HANDLER_S})
    return "done"
"""


def start_slow(
    spawn: Spawner, write: Write, ipc: Callable[[str], str], concurrency: int
) -> tuple[Child, str]:
    write("svc.py", SLOW.replace("CONCURRENCY", str(concurrency)))
    endpoint = ipc("slow")
    write("addresses.json", {"in": {"slow": {"replyer": endpoint}}})
    return spawn.start("run", "svc.py", "-a", "addresses.json"), endpoint


def busy(child: Child, zsock: Sock, endpoint: str, mark: Path) -> None:
    """Send one request the child's handler will sit on; return once it runs."""
    req = zsock(zmq.REQ)
    req.connect(endpoint)
    req.send(pack({"args": str(mark), "workflow_id": "in-hand"}))
    assert wait_for(mark.exists), child.stderr()


def exits_within(child: Child, seconds: float) -> int:
    """The child's exit code, failing if it has not exited `seconds` from now."""
    code = child.wait(seconds)
    assert code >= 0, f"killed by signal {-code}:\n{child.stderr()}"
    return code


def test_sigterm_stops_a_concurrent_replyer_after_the_grace_period_not_the_handler(
    spawn: Spawner, write: Write, ipc: Callable[[str], str], zsock: Sock, tmp_path: Path
) -> None:
    child, endpoint = start_slow(spawn, write, ipc, concurrency=4)
    busy(child, zsock, endpoint, tmp_path / "running")

    child.signal(signal.SIGTERM)

    # The grace period is 5 s; the handler runs 60 s: the daemon handler thread is left.
    assert exits_within(child, 5 + WAIT_S) == 1, child.stderr()
    log = " ".join(child.stderr().split())
    assert "their replies are lost" in log
    assert "forced stop (1 request(s) in flight dropped): exit status 1" in log


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_second_sigterm_stops_a_busy_replyer_at_once(
    spawn: Spawner,
    write: Write,
    ipc: Callable[[str], str],
    zsock: Sock,
    tmp_path: Path,
    concurrency: int,
) -> None:
    child, endpoint = start_slow(spawn, write, ipc, concurrency)
    busy(child, zsock, endpoint, tmp_path / "running")
    child.signal(signal.SIGTERM)
    assert not wait_for(lambda: child.proc.poll() is not None, timeout=0.5), child.stderr()

    child.signal(signal.SIGTERM)

    assert exits_within(child, WAIT_S) == 1, child.stderr()
    assert "second signal SIGTERM: stopping now" in child.stderr()


def test_signals_until_the_process_exits_never_kill_it(spawn: Spawner, write: Write) -> None:
    """A signal after the run restored its handlers used to kill the process (exit -15)."""
    write("svc.py", SLOW.replace("CONCURRENCY", "1"))
    for attempt in range(3):
        write("addresses.json", {"in": {"slow": {"replyer": "tcp://127.0.0.1:0"}}})
        child = spawn.start("run", "svc.py", "-a", "addresses.json")
        assert wait_for(lambda c=child: "replyer slow on" in c.stderr()), child.stderr()
        deadline = time.monotonic() + WAIT_S
        while child.proc.poll() is None and time.monotonic() < deadline:
            child.signal(signal.SIGTERM)
            time.sleep(0.002)
        code = exits_within(child, WAIT_S)
        assert code in (0, 1), (attempt, code, child.stderr())
        assert "Traceback" not in child.stderr()


def test_a_clean_stop_exits_0(
    spawn: Spawner, write: Write, ipc: Callable[[str], str], zsock: Sock
) -> None:
    child, endpoint = start_slow(spawn, write, ipc, concurrency=4)
    assert child.request(endpoint, "quick")["return_args"] == "done"
    child.signal(signal.SIGTERM)
    assert exits_within(child, WAIT_S) == 0, child.stderr()
    assert "forced stop" not in child.stderr()
