"""CurveZMQ over real sockets: only holders of an allowed key reach a secured service."""

from __future__ import annotations

import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from zmqservice import App, ConfigError, RequestTimeout
from zmqservice.transport.curve import create_keys

from .conftest import WAIT_S, Child, Inbox, Runner, Spawner, pack, unpack, wait_for

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")

LOOPBACK = "tcp://127.0.0.1:0"
SHORT_S = 0.3
"""How long a refused peer is given to get through: a handshake on loopback takes ~2 ms."""
Write = Callable[[str, Any], Path]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """tmp_path/keys: server, client and intruder pairs; clients/ holds client.key only."""
    folder = tmp_path / "keys"
    (folder / "clients").mkdir(parents=True)
    for name in ("server", "client", "intruder"):
        create_keys(folder, name)
    (folder / "clients" / "client.key").write_bytes((folder / "client.key").read_bytes())
    return folder


def server_curve(keys: Path) -> dict[str, str]:
    return {
        "secret_key": str(keys / "server.key_secret"),
        "allowed_clients": str(keys / "clients"),
    }


def client_curve(keys: Path, who: str = "client") -> dict[str, str]:
    return {"secret_key": str(keys / f"{who}.key_secret"), "server_key": str(keys / "server.key")}


def echo_app(calls: Inbox) -> App:
    app = App("vault")

    @app.replyer("echo")
    def echo(args: Any) -> Any:
        calls.add(args)
        return args

    return app


def serve_secured_echo(runner: Runner, keys: Path, calls: Inbox) -> str:
    server = runner.serve(
        echo_app(calls), {"in": {"echo": {"replyer": LOOPBACK, "curve": server_curve(keys)}}}
    )
    return server.endpoints["echo"]


def caller(runner: Runner, endpoint: str, curve: dict[str, str] | None, timeout: float) -> App:
    app = App("caller")
    app.requester("echo", timeout=timeout)
    entry: dict[str, Any] = {"requester": endpoint}
    if curve is not None:
        entry["curve"] = curve
    return runner.serve(app, {"out": {"echo": entry}})


# -- request/reply --------------------------------------------------------------------------


def test_an_allowed_client_gets_replies(runner: Runner, keys: Path) -> None:
    calls = Inbox()
    endpoint = serve_secured_echo(runner, keys, calls)
    client = caller(runner, endpoint, client_curve(keys), timeout=WAIT_S)

    assert client.send("echo", {"n": 1}) == {"n": 1}
    assert [client.send("echo", n) for n in range(3)] == [0, 1, 2]
    assert calls.snapshot() == [{"n": 1}, 0, 1, 2]


def test_a_client_with_an_unknown_key_gets_nothing(runner: Runner, keys: Path) -> None:
    calls = Inbox()
    endpoint = serve_secured_echo(runner, keys, calls)
    intruder = caller(runner, endpoint, client_curve(keys, "intruder"), timeout=SHORT_S)

    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        intruder.send("echo", {"n": 1})
    assert time.monotonic() - started < SHORT_S + 2
    assert calls.snapshot() == []


def test_an_unknown_key_does_not_lock_out_an_allowed_one(runner: Runner, keys: Path) -> None:
    calls = Inbox()
    endpoint = serve_secured_echo(runner, keys, calls)
    intruder = caller(runner, endpoint, client_curve(keys, "intruder"), timeout=SHORT_S)
    with pytest.raises(RequestTimeout):
        intruder.send("echo", "intruder")

    client = caller(runner, endpoint, client_curve(keys), timeout=WAIT_S)
    assert client.send("echo", "client") == "client"
    assert calls.snapshot() == ["client"]


def test_allowed_clients_in_a_folder_named_like_a_glob_admits_exactly_its_keys(
    runner: Runner, keys: Path
) -> None:
    """`keys/cl[ab]` is a folder name, not a pattern: its client is admitted, and a key in
    `keys/cla/` (which the pattern would match) is not (pyzmq's loader globbed the path)."""
    globbed, lookalike = keys / "cl[ab]", keys / "cla"
    globbed.mkdir()
    lookalike.mkdir()
    (globbed / "teller.key").write_bytes((keys / "client.key").read_bytes())
    (lookalike / "stranger.key").write_bytes((keys / "intruder.key").read_bytes())
    calls = Inbox()
    curve = {**server_curve(keys), "allowed_clients": str(globbed)}
    server = runner.serve(echo_app(calls), {"in": {"echo": {"replyer": LOOPBACK, "curve": curve}}})
    endpoint = server.endpoints["echo"]

    stranger = caller(runner, endpoint, client_curve(keys, "intruder"), timeout=SHORT_S)
    with pytest.raises(RequestTimeout):
        stranger.send("echo", "stranger")
    teller = caller(runner, endpoint, client_curve(keys), timeout=WAIT_S)
    assert teller.send("echo", "teller") == "teller"
    assert calls.snapshot() == ["teller"]


def test_a_zmqservice_client_without_curve_gets_nothing(runner: Runner, keys: Path) -> None:
    calls = Inbox()
    endpoint = serve_secured_echo(runner, keys, calls)
    plain = caller(runner, endpoint, None, timeout=SHORT_S)

    with pytest.raises(RequestTimeout):
        plain.send("echo", {"n": 1})
    assert calls.snapshot() == []


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_a_refused_handshake_never_blocks_a_requester_past_its_timeout(
    runner: Runner,
    keys: Path,
    tmp_path: Path,
    transport: str,
    zsock: Callable[[int], zmq.Socket[bytes]],
) -> None:
    """A refused handshake is a protocol error: libzmq drops the connection, and a request
    sent after that finds no peer to queue for. The try must still end at its deadline (it
    blocked in send for ever: docs/security.md's example hung under load)."""
    from zmq.utils.monitor import recv_monitor_message

    from zmqservice.transport.requesters import Requester

    address = f"ipc://{tmp_path}/vault.ipc" if transport == "ipc" else LOOPBACK
    server = runner.serve(
        echo_app(Inbox()), {"in": {"echo": {"replyer": address, "curve": server_curve(keys)}}}
    )
    sock = zsock(zmq.DEALER)  # what a plain requester opens
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    sock.connect(server.endpoints["echo"])
    assert monitor.poll(int(WAIT_S * 1000)), "the handshake should be refused"
    assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    sock.disable_monitor()
    monitor.close(linger=0)

    result: list[bytes | None] = []
    requester = Requester(sock, "out.echo (requester)")
    thread = threading.Thread(
        target=lambda: result.append(requester.ask(pack({"args": 1}), "W", 50)), daemon=True
    )
    thread.start()
    thread.join(WAIT_S)
    assert not thread.is_alive(), "the send blocked past the try's deadline"
    assert result == [None]


def test_a_raw_client_without_curve_gets_nothing(
    runner: Runner, keys: Path, zsock: Callable[[int], zmq.Socket[bytes]]
) -> None:
    calls = Inbox()
    endpoint = serve_secured_echo(runner, keys, calls)
    sock = zsock(zmq.REQ)
    sock.connect(endpoint)

    sock.send(pack({"args": {"n": 1}, "workflow_id": "w"}))

    assert sock.poll(int(SHORT_S * 1000), zmq.POLLIN) == 0
    assert calls.snapshot() == []


def test_a_client_trusting_the_wrong_server_key_gets_nothing(runner: Runner, keys: Path) -> None:
    calls = Inbox()
    endpoint = serve_secured_echo(runner, keys, calls)
    wrong = {**client_curve(keys), "server_key": str(keys / "intruder.key")}
    client = caller(runner, endpoint, wrong, timeout=SHORT_S)

    with pytest.raises(RequestTimeout):
        client.send("echo", {"n": 1})
    assert calls.snapshot() == []


def test_the_authenticator_stops_with_the_app(runner: Runner, keys: Path) -> None:
    from zmq.auth.thread import AuthenticationThread

    def zap_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if isinstance(t, AuthenticationThread)]

    before = len(zap_threads())
    serve_secured_echo(runner, keys, Inbox())
    assert len(zap_threads()) == before + 1

    runner.close()  # stops and joins every app (teardown's second close is a no-op)
    assert wait_for(lambda: len(zap_threads()) == before, timeout=WAIT_S)


# -- pub/sub --------------------------------------------------------------------------------


def subscriber_app(name: str, inbox: Inbox, *, bind: bool = False) -> App:
    app = App(name)

    @app.subscriber("ticks", bind=bind)
    def on_tick(args: Any) -> None:
        inbox.add(args)

    return app


def publish_until_heard(publishers: list[App], inbox: Inbox) -> None:
    """Publish from every publisher until `inbox` hears one, then a burst of real ones."""
    deadline = time.monotonic() + WAIT_S
    while not inbox.snapshot():
        if time.monotonic() > deadline:
            raise AssertionError("the allowed peer never heard a message")
        for pub in publishers:
            pub.send("ticks", {"from": pub.name, "n": -1})
        time.sleep(0.02)
    for n in range(20):
        for pub in publishers:
            pub.send("ticks", {"from": pub.name, "n": n})


def test_a_secured_publisher_reaches_only_allowed_subscribers(runner: Runner, keys: Path) -> None:
    publisher = App("ticker")
    publisher.publisher("ticks")
    secured = {"publisher": LOOPBACK, "curve": server_curve(keys)}
    runner.serve(publisher, {"out": {"ticks": secured}})
    endpoint = publisher.endpoints["ticks"]
    allowed, intruder = Inbox(), Inbox()
    for name, inbox, who in (("allowed", allowed, "client"), ("intruder", intruder, "intruder")):
        entry = {"subscriber": endpoint, "curve": client_curve(keys, who)}
        runner.serve(subscriber_app(name, inbox), {"in": {"ticks": entry}})

    publish_until_heard([publisher], allowed)

    assert wait_for(lambda: any(m["n"] == 19 for m in allowed.snapshot()))
    time.sleep(SHORT_S)
    assert intruder.snapshot() == []


def test_a_secured_subscriber_hears_only_allowed_publishers(runner: Runner, keys: Path) -> None:
    inbox = Inbox()
    sub = subscriber_app("listener", inbox, bind=True)
    runner.serve(sub, {"in": {"ticks": {"subscriber": LOOPBACK, "curve": server_curve(keys)}}})
    endpoint = sub.endpoints["ticks"]
    publishers = []
    for name, who in (("good", "client"), ("evil", "intruder")):
        pub = App(name)
        pub.publisher("ticks", xpub=True)  # connects to the binding subscriber
        entry = {"publisher": endpoint, "curve": client_curve(keys, who)}
        publishers.append(runner.serve(pub, {"out": {"ticks": entry}}))

    publish_until_heard(publishers, inbox)

    assert wait_for(lambda: any(m["n"] == 19 for m in inbox.snapshot()))
    time.sleep(SHORT_S)
    assert {m["from"] for m in inbox.snapshot()} == {"good"}


# -- startup errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("allowed_clients", "keys/nowhere", "no such directory"),
        ("allowed_clients", "keys/empty", "no client public keys"),
        ("secret_key", "keys/server.key", "holds no secret-key"),
        ("secret_key", "keys/nothing.key_secret", "no such file"),
    ],
)
def test_bad_keys_fail_at_startup_before_any_socket_opens(
    keys: Path, tmp_path: Path, ipc: Callable[[str], str], field: str, value: str, message: str
) -> None:
    (keys / "empty").mkdir()
    endpoint = ipc("vault")
    curve = {**server_curve(keys), field: str(tmp_path / value)}
    app = echo_app(Inbox())

    with pytest.raises(ConfigError, match=rf"^addresses\.in\.echo\.curve\.{field}: .*{message}"):
        app.run({"in": {"echo": {"replyer": endpoint, "curve": curve}}})
    assert not Path(endpoint.removeprefix("ipc://")).exists()
    assert not app.wait_ready(0)


# -- command line ---------------------------------------------------------------------------

ECHO_SERVICE = """
    from zmqservice import App

    app = App("vault")


    @app.replyer("echo")
    def echo(args):
        return args
"""


def assert_one_line_error(child: Child, *words: str) -> None:
    assert child.proc.returncode == 2, child.stderr()
    err = child.stderr()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_keygen_writes_a_key_pair_with_a_0600_secret(spawn: Spawner, tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()

    child = spawn.run("keygen", "keys", "--name", "orders")

    assert child.proc.returncode == 0, child.stderr()
    public, secret = tmp_path / "keys" / "orders.key", tmp_path / "keys" / "orders.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    pub, sec = zmq.auth.load_certificate(secret)
    assert sec is not None
    assert zmq.auth.load_certificate(public) == (pub, None)
    assert str(Path("keys", "orders.key")) in child.stdout()


def test_keygen_default_name(spawn: Spawner, tmp_path: Path) -> None:
    child = spawn.run("keygen", ".")
    assert child.proc.returncode == 0, child.stderr()
    assert (tmp_path / "zmqservice.key").is_file()


@pytest.mark.parametrize(
    "args, words",
    [
        (["missing"], ["'missing' does not exist"]),
        (["child0.out"], ["is not a directory"]),
        ([".", "--name", "../up"], ["key name '../up'"]),
    ],
)
def test_keygen_bad_arguments_exit_2(spawn: Spawner, args: list[str], words: list[str]) -> None:
    (spawn.workdir / "child0.out").touch()
    assert_one_line_error(spawn.run("keygen", *args), *words)


def test_keygen_refuses_to_overwrite_a_key(spawn: Spawner, tmp_path: Path) -> None:
    create_keys(tmp_path, "orders")
    before = (tmp_path / "orders.key_secret").read_bytes()

    assert_one_line_error(spawn.run("keygen", ".", "--name", "orders"), "already exists")
    assert (tmp_path / "orders.key_secret").read_bytes() == before


def test_run_with_a_bad_key_path_exits_2(spawn: Spawner, write: Write, keys: Path) -> None:
    service = write("vault.py", ECHO_SERVICE)
    curve = {**server_curve(keys), "secret_key": "keys/typo.key_secret"}
    addresses = write("addresses.json", {"in": {"echo": {"replyer": LOOPBACK, "curve": curve}}})

    child = spawn.run("run", str(service), "-a", str(addresses))

    assert_one_line_error(child, "addresses.in.echo.curve.secret_key", "typo.key_secret")


def test_secured_child_serves_a_raw_pyzmq_curve_client(
    spawn: Spawner, write: Write, keys: Path, ipc: Callable[[str], str]
) -> None:
    endpoint = ipc("vault")
    service = write("vault.py", ECHO_SERVICE)
    # Relative key paths start at the addresses file's folder.
    curve = {"secret_key": "keys/server.key_secret", "allowed_clients": "keys/clients"}
    addresses = write("addresses.json", {"in": {"echo": {"replyer": endpoint, "curve": curve}}})
    child = spawn.start("run", str(service), "-a", str(addresses))

    client_public, client_secret = zmq.auth.load_certificate(keys / "client.key_secret")
    server_public, _ = zmq.auth.load_certificate(keys / "server.key")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = ctx.socket(zmq.REQ)
        sock.curve_secretkey = client_secret
        sock.curve_publickey = client_public
        sock.curve_serverkey = server_public
        sock.connect(endpoint)
        sock.send(pack({"args": {"n": 1}, "workflow_id": "w1"}))
        deadline = time.monotonic() + WAIT_S
        while not sock.poll(50, zmq.POLLIN):
            assert child.proc.poll() is None, child.stderr()
            assert time.monotonic() < deadline, "no reply from the secured child"
        assert unpack(sock.recv()) == {"return_args": {"n": 1}, "workflow_id": "w1"}
    finally:
        ctx.destroy(linger=0)

    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()
    assert "Traceback" not in child.stderr()
