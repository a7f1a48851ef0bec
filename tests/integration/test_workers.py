"""``zmqservice run --workers N``: worker processes behind a reqrep proxy, as real children."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
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


@pytest.fixture(autouse=True)
def reap(spawn: Spawner) -> Iterator[None]:
    """At teardown, kill the process group of every worker a child started (after the
    children themselves, which the `spawn` fixture kills)."""
    yield
    for child in spawn.children:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(WAIT_S)
        for pid in re.findall(r"worker \d+ started \(pid (\d+)\)", child.stderr()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)


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


def collect_pids(endpoint: str, want: Callable[[set[int]], bool], args: Any = None) -> set[int]:
    """Ask until the set of answering pids satisfies `want` (bounded)."""
    seen: set[int] = set()

    def enough() -> bool:
        reply = ask(endpoint, {"sleep": 0.0} if args is None else args)
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


CRASHY = """
    import os
    import time
    from pathlib import Path

    from zmqservice import App, get_logger

    app = App("crashy")
    LOG = get_logger()

    @app.init
    def init(config):
        time.sleep(0.5)
        LOG.info("init done in pid %s", os.getpid())

    @app.replyer("work", args={"crash": bool}, optional_args={"mark": str})
    def work(args):
        if args["crash"]:
            Path(args["mark"]).touch()
            time.sleep(0.2)  # the requests that arrive meanwhile must not be dealt to it
            os._exit(3)
        time.sleep(0.02)
        return os.getpid()
"""


def ask_all(endpoint: str, args: Any, count: int) -> list[Any]:
    """`count` requests at once, each on its own socket; the replies (None: no reply)."""
    replies: list[Any] = []
    askers = [
        threading.Thread(target=lambda: replies.append(ask(endpoint, args, WAIT_S)))
        for _ in range(count)
    ]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join(2 * WAIT_S)
    return replies


READY = re.compile(r"workers (ready )?behind")  # (before: no "ready", logged at once)


def ready_line(child: Child) -> bool:
    return READY.search(child.stderr()) is not None


def test_a_crashing_worker_loses_only_the_request_it_held(
    spawn: Spawner, write: Callable[[str, Any], Path], tmp_path: Path
) -> None:
    write("svc.py", CRASHY)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    write("addresses.json", {"in": {"work": {"replyer": endpoint}}})
    child = spawn.start("run", "svc.py", "-a", "addresses.json", "--workers", "2")
    collect_pids(endpoint, lambda seen: len(seen) >= 2, {"crash": False})
    for crash in range(3):
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            killer = ctx.socket(zmq.REQ)
            killer.connect(endpoint)
            mark = tmp_path / f"crash{crash}"
            killer.send(pack({"args": {"crash": True, "mark": str(mark)}, "workflow_id": "k"}))
            assert wait_for(mark.exists), child.stderr()
            replies = ask_all(endpoint, {"crash": False}, 6)
            assert len(replies) == 6 and None not in replies, (crash, replies, child.stderr())
        finally:
            ctx.destroy(linger=0)
        assert wait_for(lambda n=crash: child.stderr().count("exited with 3") > n), child.stderr()
    log = " ".join(child.stderr().split())
    assert log.count("losing the 1 request(s) it held") == 3, log
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()


def test_ready_means_every_worker_ran_init_and_worker_lines_carry_its_number(
    spawn: Spawner, write: Callable[[str, Any], Path]
) -> None:
    write("svc.py", CRASHY)
    write("addresses.json", {"in": {"work": {"replyer": f"tcp://127.0.0.1:{free_port()}"}}})
    child = spawn.start("run", "svc.py", "-a", "addresses.json", "--workers", "2")
    assert wait_for(lambda: ready_line(child), timeout=3 * WAIT_S), child.stderr()
    lines = child.stderr().splitlines()
    ready = next(i for i, line in enumerate(lines) if READY.search(line))
    inits = [i for i, line in enumerate(lines) if "init done in pid" in line]
    assert len(inits) == 2 and max(inits) < ready, child.stderr()
    assert sorted(lines[i].split("INFO")[1].split(":")[0].strip() for i in inits) == [
        "worker 0",
        "worker 1",
    ]
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()


def test_a_failing_init_under_workers_is_one_error_and_exit_1(
    spawn: Spawner, write: Callable[[str, Any], Path]
) -> None:
    write(
        "svc.py",
        SERVICE
        + """
    @app.init
    def init():
        raise RuntimeError("database unreachable")
""",
    )
    write("addresses.json", {"in": {"pid": {"replyer": f"tcp://127.0.0.1:{free_port()}"}}})
    child = spawn.run("run", "svc.py", "-a", "addresses.json", "--workers", "2")
    err = child.stderr()
    assert child.proc.returncode == 1, err
    assert err.count("Traceback") == 1, err
    assert len(err.splitlines()) <= 15, err
    assert 'svc.py", line' in err and "zmqservice/transport" not in err, err
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"Error: worker [01] failed to start: RuntimeError: database unreachable", last
    )


def test_a_second_sigterm_stops_the_workers_at_once(
    workers2: tuple[Child, str], tmp_path: Path
) -> None:
    child, endpoint = workers2
    pids = collect_pids(endpoint, lambda seen: len(seen) >= 2)
    mark = tmp_path / "mark"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.connect(endpoint)
        sock.send(pack({"args": {"sleep": 60.0, "mark": str(mark)}, "workflow_id": "slow"}))
        assert wait_for(mark.exists), "the slow request never reached a worker"
        child.signal(signal.SIGTERM)
        assert not wait_for(lambda: child.proc.poll() is not None, timeout=0.5), child.stderr()
        child.signal(signal.SIGTERM)
        assert child.wait(WAIT_S) == 1, child.stderr()  # a forced stop
    finally:
        ctx.destroy(linger=0)
    assert wait_for(lambda: not any(alive(pid) for pid in pids)), pids


def test_a_busy_address_with_workers_exits_1_with_one_line(
    spawn: Spawner, write: Callable[[str, Any], Path]
) -> None:
    write("svc.py", SERVICE)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    holder = ctx.socket(zmq.REP)
    try:
        holder.bind("tcp://127.0.0.1:0")
        taken = holder.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
        write("addresses.json", {"in": {"pid": {"replyer": taken}}})
        child = spawn.run("run", "svc.py", "-a", "addresses.json", "--workers", "2")
    finally:
        holder.close(linger=0)
        ctx.term()
    lines = child.stderr().strip().splitlines()
    assert child.proc.returncode == 1, lines  # may pass on a restart: docs/deploy.md
    assert len(lines) == 1 and lines[0].startswith(
        f"Error: cannot bind in.pid (replyer) to {taken}"
    )
    assert "Address already in use" in lines[0]
