"""``zmqservice run --workers N``: worker processes behind a reqrep proxy, as real children."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from .conftest import WAIT_S, Child, Spawner, free_port, pack, unpack, wait_for

SERVICE = """
    import os
    import time
    from pathlib import Path

    from zmqservice import App

    app = App("pidsvc")

    @app.replyer("pid", args={"sleep": float}, optional_args={"mark": str})
    def pid(args):
        if "mark" in args:
            Path(args["mark"]).write_text("started")
        time.sleep(args["sleep"])
        return os.getpid()
"""


def ask(endpoint: str, args: Any, timeout: float = 1.0) -> Any:
    """One request on a fresh REQ socket; None if no reply within `timeout` seconds."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.connect(endpoint)
        sock.send(pack({"args": args, "workflow_id": "w"}))
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        return unpack(sock.recv())["return_args"]
    finally:
        ctx.destroy(linger=0)


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return parent_of(pid) is not None and "Z" not in Path(f"/proc/{pid}/stat").read_text()[-200:]


def collect_pids(endpoint: str, want: Callable[[set[int]], bool]) -> set[int]:
    """Ask until the set of answering pids satisfies `want` (bounded)."""
    seen: set[int] = set()

    def enough() -> bool:
        reply = ask(endpoint, {"sleep": 0.0})
        if reply is not None:
            seen.add(reply)
        return want(seen)

    assert wait_for(enough, timeout=3 * WAIT_S), f"only pids {seen} answered"
    return seen


@pytest.fixture
def workers2(spawn: Spawner, write: Callable[[str, Any], Path]) -> tuple[Child, str]:
    write("svc.py", SERVICE)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    write("addresses.json", {"in": {"pid": {"replyer": endpoint}}})
    child = spawn.start("run", "svc.py", "-a", "addresses.json", "--workers", "2")
    return child, endpoint


def test_requests_are_served_by_two_worker_processes(workers2: tuple[Child, str]) -> None:
    child, endpoint = workers2
    pids = collect_pids(endpoint, lambda seen: len(seen) >= 2)
    assert len(pids) == 2 and child.pid not in pids
    assert {parent_of(pid) for pid in pids} == {child.pid}
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()


def test_a_killed_worker_is_restarted(workers2: tuple[Child, str]) -> None:
    child, endpoint = workers2
    first = collect_pids(endpoint, lambda seen: len(seen) >= 2)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    later = collect_pids(endpoint, lambda seen: bool(seen - first))
    new = later - first
    assert victim not in later and {parent_of(pid) for pid in new} == {child.pid}
    assert "exited with -9" in child.stderr()
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()


def test_sigterm_drains_the_request_in_hand(workers2: tuple[Child, str], tmp_path: Path) -> None:
    child, endpoint = workers2
    pids = collect_pids(endpoint, lambda seen: len(seen) >= 2)
    mark = tmp_path / "mark"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.connect(endpoint)
        sock.send(pack({"args": {"sleep": 1.0, "mark": str(mark)}, "workflow_id": "slow"}))
        assert wait_for(mark.exists), "the slow request never reached a worker"
        child.signal(signal.SIGTERM)
        assert sock.poll(int(WAIT_S * 1000), zmq.POLLIN), child.stderr()
        assert unpack(sock.recv())["return_args"] in pids
    finally:
        ctx.destroy(linger=0)
    assert child.wait() == 0, child.stderr()
    assert not any(alive(pid) for pid in pids)


@pytest.mark.parametrize(
    ("extra", "kind", "message"),
    [
        ("app.publisher('ticks')", "publisher", "workers: out.ticks (publisher) binds"),
        ("app.subscriber('ticks')(lambda args: None)", "subscriber", "only replyers"),
    ],
)
def test_what_workers_cannot_do_exits_2_before_any_worker(
    spawn: Spawner, write: Callable[[str, Any], Path], extra: str, kind: str, message: str
) -> None:
    write("svc.py", SERVICE + f"    {extra}\n")
    side = "out" if kind == "publisher" else "in"
    addresses: dict[str, Any] = {"in": {"pid": {"replyer": f"tcp://127.0.0.1:{free_port()}"}}}
    addresses.setdefault(side, {})["ticks"] = {kind: f"tcp://127.0.0.1:{free_port()}"}
    write("addresses.json", addresses)
    child = spawn.run("run", "svc.py", "-a", "addresses.json", "--workers", "2")
    assert child.proc.returncode == 2, child.stderr()
    assert message in child.stderr()
    assert "worker 0 started" not in child.stderr()


def test_a_bad_config_with_workers_exits_2_before_any_worker(
    spawn: Spawner, write: Callable[[str, Any], Path]
) -> None:
    write("svc.py", SERVICE)
    child = spawn.run("run", "svc.py", "--workers", "2")
    assert child.proc.returncode == 2, child.stderr()
    assert "no address for in.pid (replyer)" in child.stderr()
    assert "worker 0 started" not in child.stderr()
