"""Services on two "hosts": Linux network namespaces joined by a veth pair.

Host A (10.77.0.1) runs a replyer, a pub/sub proxy and a subscriber; host B (10.77.0.2)
runs a caller in main mode that requests the replyer and publishes through the proxy.
Every service is ``ip netns exec NS python -m zmqservice ...``. Each namespace has a
network stack of its own, so fixed ports cannot clash with anything else on the machine.

Needs root and ``ip netns``; skipped, with the reason, where either is missing.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import WAIT_S, Child, wait_for

HOST_A, HOST_B = "10.77.0.1", "10.77.0.2"
_names = itertools.count()


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


@pytest.fixture(scope="module")
def netns_usable() -> None:
    """Skip unless this process may create a network namespace (probed, then deleted)."""
    if sys.platform != "linux":
        pytest.skip("network namespaces are Linux only")
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    probe = f"zsprobe{os.getpid()}"
    made = ip("netns", "add", probe)
    if made.returncode != 0:
        pytest.skip(f"`ip netns add` is not permitted here: {made.stderr.strip()}")
    ip("netns", "del", probe)


class Hosts:
    """Two namespaces joined by a veth pair, and the children started in them."""

    def __init__(self, workdir: Path) -> None:
        self.tag = f"zs{os.getpid()}n{next(_names)}"  # + "a"/"b": a veth name, <= 15 chars
        self.workdir = workdir
        self.a, self.b = f"{self.tag}-A", f"{self.tag}-B"
        self.made: list[str] = []
        self.children: list[Child] = []

    def create(self) -> None:
        """Make both namespaces, a veth pair between them, addresses, and every link up."""
        veth_a, veth_b = f"{self.tag}a", f"{self.tag}b"
        for ns in (self.a, self.b):
            self.check("netns", "add", ns)
            self.made.append(ns)
        self.check(
            "link", "add", veth_a, "netns", self.a, "type", "veth",
            "peer", "name", veth_b, "netns", self.b,
        )  # fmt: skip
        for ns, veth, host in ((self.a, veth_a, HOST_A), (self.b, veth_b, HOST_B)):
            self.check("-n", ns, "addr", "add", f"{host}/24", "dev", veth)
            self.check("-n", ns, "link", "set", veth, "up")
            self.check("-n", ns, "link", "set", "lo", "up")

    def check(self, *args: str) -> None:
        done = ip(*args)
        if done.returncode != 0:
            raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def start(self, ns: str, *args: str, env: dict[str, str] | None = None) -> Child:
        """Start ``python -m zmqservice ARGS`` inside namespace `ns`."""
        n = len(self.children)
        out, err = self.workdir / f"ns{n}.out", self.workdir / f"ns{n}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "zmqservice", *args],
                stdout=out_file,
                stderr=err_file,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})},
            )
        child = Child(proc, out, err)
        self.children.append(child)
        return child

    def close(self) -> None:
        """Kill what still runs, then delete the namespaces (the veth pair goes with them)."""
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGKILL)
            child.proc.wait(WAIT_S)
        problems = [ip("netns", "del", ns).stderr.strip() for ns in self.made]
        assert not any(problems), problems


@pytest.fixture
def hosts(netns_usable: None, tmp_path: Path) -> Iterator[Hosts]:
    """Two fresh namespaces A and B; children killed and namespaces deleted afterwards."""
    made = Hosts(tmp_path)
    try:
        made.create()
        yield made
    finally:
        made.close()


REPLYER = """
    import os

    from zmqservice import App

    app = App("echo")


    @app.replyer("double", args={"n": int}, returns={"n": int, "double": int, "pid": int})
    def double(args):
        return {"n": args["n"], "double": 2 * args["n"], "pid": os.getpid()}
"""

LISTENER = """
    import json

    from zmqservice import App

    app = App("listener", config={"required": {"out": str}, "optional": {}})


    @app.subscriber("ticks", args={"n": int}, topic="ticks")
    def on_tick(args, config):
        with open(config["out"], "a", encoding="utf-8") as file:
            file.write(json.dumps(args) + "\\n")
"""

CALLER = """
    import time
    from pathlib import Path

    from zmqservice import App, get_logger

    app = App("caller", config={"required": {"stop_file": str}, "optional": {}})
    LOG = get_logger()
    app.requester(
        "double",
        args={"n": int},
        returns={"n": int, "double": int, "pid": int},
        timeout=2.0,
        retries=2,
    )
    app.publisher("ticks", args={"n": int}, topic="ticks", xpub=True)


    @app.main
    def main(to_send, config):
        pids = set()
        for n in range(1, 6):
            reply = to_send("double", {"n": n})
            assert reply["n"] == n and reply["double"] == 2 * n, reply
            pids.add(reply["pid"])
        LOG.info("caller: 5 replies from pids %s", sorted(pids))
        # PUB drops until the subscription has come through the proxy: tick until the
        # test has seen the subscriber write some (bounded).
        stop, deadline, n = Path(config["stop_file"]), time.monotonic() + 20, 0
        while not stop.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("no stop file within 20s")
            n += 1
            to_send("ticks", {"n": n})
            time.sleep(0.05)
        LOG.info("caller: published %d ticks", n)
"""


def ready(child: Child, text: str, where: Callable[[Child], str] = Child.stderr) -> None:
    """Wait (bounded) until `text` shows in the child's output."""

    def seen() -> bool:
        if child.proc.poll() is not None:
            raise AssertionError(f"exited with {child.proc.returncode}: {child.stderr()}")
        return text in where(child)

    assert wait_for(seen), f"{text!r} never showed; stderr:\n{child.stderr()}"


def test_services_on_two_hosts_request_and_publish_through_a_proxy(
    hosts: Hosts, write: Callable[[str, Any], Path], tmp_path: Path
) -> None:
    write("replyer.py", REPLYER)
    write("listener.py", LISTENER)
    write("caller.py", CALLER)
    # Host A: the replyer binds tcp://*:5701, the proxy binds 5601 (publishers) and 5602
    # (subscribers), the subscriber connects to the proxy.
    write("a.json", {"in": {"double": {"replyer": f"{HOST_A}:5701"}}})
    write("listener.json", {"in": {"ticks": {"subscriber": f"{HOST_A}:5602"}}})
    # Host B: the caller reaches both across the veth pair.
    write(
        "b.json",
        {
            "out": {
                "double": {"requester": f"{HOST_A}:5701"},
                "ticks": {"publisher": f"{HOST_A}:5601"},
            }
        },
    )
    out, stop_file = tmp_path / "ticks.jsonl", tmp_path / "stop"

    replyer = hosts.start(hosts.a, "run", "replyer.py", "-a", "a.json")
    proxy = hosts.start(
        hosts.a, "proxy", "pubsub", "--frontend", f"{HOST_A}:5601", "--backend", f"{HOST_A}:5602"
    )
    listener = hosts.start(hosts.a, "run", "listener.py", "-a", "listener.json", "--out", str(out))
    ready(replyer, "echo: replyer double on tcp://0.0.0.0:5701")
    ready(proxy, "pubsub proxy: frontend tcp://0.0.0.0:5601", Child.stdout)
    ready(listener, "listener: subscriber ticks on tcp://10.77.0.1:5602")

    caller = hosts.start(
        hosts.b, "run", "caller.py", "-m", "-a", "b.json", "--stop-file", str(stop_file)
    )

    def ticks() -> list[int]:
        lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
        return [json.loads(line)["n"] for line in lines]

    def some_ticks() -> bool:
        if caller.proc.poll() is not None:
            raise AssertionError(f"caller exited with {caller.proc.returncode}: {caller.stderr()}")
        return len(ticks()) >= 5

    assert wait_for(some_ticks, timeout=20)
    stop_file.touch()
    assert caller.wait(WAIT_S) == 0, caller.stderr()

    assert f"caller: 5 replies from pids [{replyer.pid}]" in caller.stderr()
    got = ticks()  # after the slow-joiner start, every tick, in order
    assert got == list(range(got[0], got[0] + len(got)))
    for child in (listener, proxy, replyer):
        child.signal(signal.SIGTERM)
        assert child.wait() == 0, child.stderr()
    # B has only its veth address and lo: A's address is not local there.
    shown = ip("-n", hosts.b, "-brief", "addr").stdout
    assert HOST_B in shown and HOST_A not in shown
