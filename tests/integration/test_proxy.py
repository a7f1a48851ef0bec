"""``zmqservice proxy pubsub / reqrep`` as real child processes, services in threads.

Each proxy binds ``tcp://127.0.0.1:0`` twice and its printed line gives the ports; the
services connect to it (publishers ``xpub=True``, replyers ``bind=False``).
"""

from __future__ import annotations

import itertools
import re
import signal
import threading
from typing import Any

import pytest

from zmqservice import App
from zmqservice.errors import ConfigError
from zmqservice.transport.proxy import Proxy

from .conftest import Child, Inbox, Runner, Spawner, wait_for

LOCAL = "tcp://127.0.0.1:0"
SUMMARY = re.compile(r"^(\w+) proxy: frontend (\S+) \(.*\), backend (\S+) \(.*\)$", re.M)


def start_proxy(spawn: Spawner, kind: str) -> tuple[Child, str, str]:
    """Start ``zmqservice proxy KIND`` on two free loopback ports; return it and both ends."""
    child = spawn.start("proxy", kind, "--frontend", LOCAL, "--backend", LOCAL)

    def bound() -> re.Match[str] | None:
        if child.proc.poll() is not None:
            raise AssertionError(f"proxy exited with {child.proc.returncode}: {child.stderr()}")
        return SUMMARY.search(child.stdout())

    match = wait_for(bound)
    assert match, f"the proxy printed no summary line; stderr:\n{child.stderr()}"
    assert match[1] == kind
    return child, match[2], match[3]


def stop(child: Child) -> None:
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()


# -- pubsub -------------------------------------------------------------------------------------


def publisher_app(name: str, frontend: str) -> App:
    app = App(name)
    app.publisher("ticks", args={"src": str, "kind": str, "n": int}, xpub=True, address=frontend)
    return app


def subscriber_app(name: str, backend: str, inbox: Inbox) -> App:
    app = App(name)

    @app.subscriber("ticks", args={"src": str, "kind": str, "n": int}, address=backend)
    def on_tick(args: dict[str, Any]) -> None:
        inbox.add(args)

    return app


def heard_from(inbox: Inbox, src: str) -> bool:
    return any(item["src"] == src for item in inbox.snapshot())


def until_heard(publisher: App, inboxes: list[Inbox]) -> None:
    """Probe until every subscriber has heard `publisher` (the slow joiner: PUB drops
    everything until the subscriptions have travelled through the proxy)."""
    for _ in range(200):
        publisher.send("ticks", {"src": publisher.name, "kind": "probe", "n": 0})
        if wait_for(lambda: all(heard_from(i, publisher.name) for i in inboxes), timeout=0.05):
            return
    raise AssertionError(f"not every subscriber heard {publisher.name!r} through the proxy")


def test_pubsub_proxy_joins_two_publishers_and_two_subscribers(
    runner: Runner, spawn: Spawner
) -> None:
    child, frontend, backend = start_proxy(spawn, "pubsub")
    inboxes = [Inbox(), Inbox()]
    for n, inbox in enumerate(inboxes):
        runner.serve(subscriber_app(f"sub{n}", backend, inbox))
    publishers = [runner.serve(publisher_app(f"pub{n}", frontend)) for n in range(2)]
    for pub in publishers:
        until_heard(pub, inboxes)

    for n in range(1, 6):
        for pub in publishers:
            pub.send("ticks", {"src": pub.name, "kind": "real", "n": n})

    def real(inbox: Inbox) -> list[Any]:
        return [item for item in inbox.snapshot() if item["kind"] == "real"]

    assert wait_for(lambda: all(len(real(i)) == 10 for i in inboxes)), [real(i) for i in inboxes]
    for inbox in inboxes:
        for src in ("pub0", "pub1"):  # each publisher's messages, all of them, in order
            assert [m["n"] for m in real(inbox) if m["src"] == src] == [1, 2, 3, 4, 5]
    runner.close()  # services first: the proxy outlives its peers
    stop(child)


# -- reqrep -------------------------------------------------------------------------------------


def replyer_app(name: str, backend: str, served: list[str], lock: threading.Lock) -> App:
    app = App(name)

    @app.replyer(
        "double",
        args={"n": int},
        returns={"n": int, "double": int, "by": str},
        bind=False,
        address=backend,
    )
    def double(args: dict[str, int]) -> dict[str, Any]:
        with lock:
            served.append(name)
        return {"n": args["n"], "double": 2 * args["n"], "by": name}

    return app


def test_reqrep_proxy_balances_requests_over_two_replyers(runner: Runner, spawn: Spawner) -> None:
    child, frontend, backend = start_proxy(spawn, "reqrep")
    served: list[str] = []
    lock = threading.Lock()
    for name in ("rep0", "rep1"):
        runner.serve(replyer_app(name, backend, served, lock))
    client = App("client")
    client.requester(
        "double",
        args={"n": int},
        returns={"n": int, "double": int, "by": str},
        address=frontend,
        timeout=5.0,
    )
    runner.serve(client)

    replies = []
    # The DEALER deals to the replyers it is connected to: until the second one has
    # connected, the first gets every request. Bounded: at most 200 requests.
    for n in range(200):
        replies.append(client.send("double", {"n": n}))
        if {r["by"] for r in replies} == {"rep0", "rep1"}:
            break
    assert {r["by"] for r in replies} == {"rep0", "rep1"}, "one replyer never answered"
    # Both connected: round robin, so the next ten alternate.
    start = len(replies)
    replies += [client.send("double", {"n": n}) for n in range(start, start + 10)]

    assert [(r["n"], r["double"]) for r in replies] == [(n, 2 * n) for n in range(len(replies))]
    last = [r["by"] for r in replies[start:]]
    assert all(a != b for a, b in itertools.pairwise(last)), last
    with lock:
        assert sorted(served) == sorted(r["by"] for r in replies)
    runner.close()
    stop(child)


# -- stopping and errors ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pubsub", "reqrep"])
def test_proxy_stops_on_sigterm_and_sigint(spawn: Spawner, kind: str) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        child, _, _ = start_proxy(spawn, kind)
        child.signal(signum)
        assert child.wait() == 0, child.stderr()
        assert "Traceback" not in child.stderr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["pubsub", "--frontend", "nowhere", "--backend", LOCAL],
            "Error: --frontend: 'nowhere' is not 'host:port' or a ZMQ endpoint like tcp://...",
        ),
        (
            ["reqrep", "--frontend", LOCAL, "--backend", "udpx://1.2.3.4:5"],
            "Error: --backend: unknown transport 'udpx' in 'udpx://1.2.3.4:5'",
        ),
        (
            ["reqrep", "--frontend", LOCAL, "--backend", "tcp://192.0.2.1:99999"],
            "Error: --backend: 'tcp://192.0.2.1:99999' is not tcp://host:port",
        ),
    ],
)
def test_proxy_with_a_bad_address_exits_2_with_one_line(
    spawn: Spawner, args: list[str], message: str
) -> None:
    child = spawn.run("proxy", *args)
    assert child.proc.returncode == 2
    assert child.stderr().strip() == message
    assert child.stdout() == ""


def test_proxy_on_a_busy_port_exits_1_with_one_line(spawn: Spawner) -> None:
    first, frontend, _ = start_proxy(spawn, "reqrep")
    child = spawn.run("proxy", "reqrep", "--frontend", LOCAL, "--backend", frontend)
    assert child.proc.returncode == 1  # may pass on a restart, unlike exit 2: docs/deploy.md
    lines = child.stderr().strip().splitlines()
    assert len(lines) == 1, lines  # pyzmq may add "(addr=...)"
    assert lines[0].startswith(f"Error: --backend: cannot bind {frontend}: Address already in use")
    stop(first)


# -- in process ---------------------------------------------------------------------------------


def test_proxy_object_binds_at_once_and_stops_in_bounded_time() -> None:
    proxy = Proxy("pubsub", LOCAL, LOCAL)
    try:
        assert not proxy.frontend.endswith(":0")
        assert proxy.summary.startswith(f"pubsub proxy: frontend {proxy.frontend} (XSUB")
        proxy.start()
        assert proxy.running
    finally:
        stopped = proxy.stop(timeout=5.0)
    assert stopped
    assert not proxy.running
    assert proxy.error is None


def test_proxy_object_rejects_an_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="unknown proxy kind 'fanout'"):
        Proxy("fanout", LOCAL, LOCAL)
