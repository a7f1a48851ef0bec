"""The command-line tools as real child processes against real services on loopback.

``zmqservice routes / docs / call / describe / publish / listen``, the start-up summary of
``zmqservice run`` and its per-message DEBUG line. Services run in threads
(``runner.serve``) on ``tcp://127.0.0.1:0`` and are reached through ``app.endpoints``;
each command runs as ``python -m zmqservice ...`` (the ``spawn`` fixture), bounded.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import attrs
import jsonschema
import pytest
import zmq

from zmqservice import App
from zmqservice.dispatch import Dispatcher
from zmqservice.log import WORKFLOW_ID
from zmqservice.sending import call_target
from zmqservice.transport.proxy import Proxy

from .conftest import WAIT_S, Child, Runner, Spawner, free_port, wait_for

Write = Callable[[str, Any], Path]
LOCAL = "tcp://127.0.0.1:0"
PREDECESSOR = Path(__file__).with_name("predecessor_services")
ASYNCAPI_SCHEMA = Path(__file__).parent.parent / "asyncapi-3.0.0-schema.json"


@attrs.define
class Quote:
    symbol: str
    price: Decimal
    ident: UUID
    tags: set[str]


def replyer_app(describe: bool = True) -> App:
    """``add`` (a + b), ``quote`` (markers both ways), ``whoami`` (the workflow id)."""
    app = App("toolsvc", describe=describe)

    @app.replyer("add", args={"a": int, "b": int}, returns={"sum": int}, address=LOCAL)
    def add(args: dict[str, int]) -> dict[str, int]:
        if args["a"] < 0:
            raise RuntimeError("negative a")
        return {"sum": args["a"] + args["b"]}

    return app


def quote_app() -> App:
    app = App("quotesvc")

    @app.replyer("quote", args=Quote, returns=Quote, address=LOCAL)
    def quote(args: Quote) -> Quote:
        return attrs.evolve(args, price=args.price * 2, tags=args.tags | {"seen"})

    @app.replyer("whoami", address="tcp://127.0.0.1:0")
    def whoami(args: Any) -> str:
        return WORKFLOW_ID.get()

    return app


def subscriber_app(topic: str = "BTC", bind: bool = True) -> tuple[App, list[Any]]:
    """A subscriber recording (args, workflow_id) of every message."""
    app = App("subsvc")
    got: list[Any] = []

    @app.subscriber("prices", args={"symbol": str, "price": Decimal}, topic=topic, bind=bind)
    def on_price(args: dict[str, Any]) -> None:
        got.append((args, WORKFLOW_ID.get()))

    return app, got


def run_tool(spawn: Spawner, *args: str) -> Child:
    """Run one ``zmqservice`` command to completion (bounded by the spawner)."""
    return spawn.run(*args)


def one_line_error(child: Child) -> str:
    lines = child.stderr().strip().splitlines()
    assert len(lines) == 1, child.stderr()
    assert lines[0].startswith("Error: "), lines
    assert "Traceback" not in child.stderr()
    return lines[0]


def host_port(endpoint: str) -> str:
    return endpoint.removeprefix("tcp://")


# -- routes -------------------------------------------------------------------------------------

SERVICE = """
    from decimal import Decimal

    import attrs

    from zmqservice import App

    app = App("routesvc")


    @attrs.define
    class Cancel:
        order_id: str
        reason: str = "user"


    @app.replyer("cancel", args=Cancel, returns={"ok": bool}, address="tcp://192.0.2.1:5001")
    def cancel(args):
        return {"ok": True}


    @app.subscriber("prices", args={"symbol": str, "price": Decimal}, topic="BTC")
    def on_price(args):
        pass


    app.publisher("fills", args={"order_id": str, "qty": [int]}, topic="fills")
    app.requester("exchange", args=None, returns=None, timeout=1.0)
"""


def test_routes_prints_a_table(spawn: Spawner, write: Write) -> None:
    write("routesvc.py", SERVICE)
    child = run_tool(spawn, "routes", "routesvc.py")
    assert child.proc.returncode == 0, child.stderr()
    out = child.stdout()
    assert out.splitlines()[0] == "routesvc: 4 connections"
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert "┃ name" in out
    assert list(rows) == ["cancel", "prices", "fills", "exchange"]
    cells = [cell.strip() for cell in rows["cancel"].split("│")[1:-1]]
    assert cells == [
        "cancel",
        "replyer",
        "tcp://192.0.2.1:5001",
        "-",
        "Cancel",
        "{ok: bool}",
        "routesvc:cancel",
    ]
    cells = [cell.strip() for cell in rows["fills"].split("│")[1:-1]]
    assert cells == [
        "fills",
        "publisher",
        "-",
        "fills",
        "{order_id: str, qty: list[int]}",
        "-",
        "-",
    ]


def test_routes_json(spawn: Spawner, write: Write) -> None:
    write("routesvc.py", SERVICE)
    child = run_tool(spawn, "routes", "routesvc.py", "--json")
    assert child.proc.returncode == 0, child.stderr()
    rows = json.loads(child.stdout())
    assert [row["name"] for row in rows] == ["cancel", "prices", "fills", "exchange"]
    assert rows[1] == {
        "name": "prices",
        "kind": "subscriber",
        "address": "-",
        "topic": "BTC",
        "args": "{symbol: str, price: Decimal}",
        "returns": "-",
        "handler": "routesvc:on_price",
    }
    assert rows[3]["args"] == rows[3]["returns"] == "any"


def test_routes_of_a_predecessor_module(spawn: Spawner) -> None:
    shutil.copy(PREDECESSOR / "sf_echo.py", spawn.workdir)
    child = run_tool(spawn, "routes", "sf_echo.py", "--json")
    assert child.proc.returncode == 0, child.stderr()
    (row,) = json.loads(child.stdout())
    assert row["name"] == "echo" and row["kind"] == "replyer"
    assert row["handler"] == "sf_echo:echo"
    assert row["args"] == (
        "{amount: Decimal, ident: UUID, tags: set[str], note?: str, explode?: bool}"
    )


def test_routes_of_a_missing_target(spawn: Spawner) -> None:
    child = run_tool(spawn, "routes", "nosuch.py")
    assert child.proc.returncode == 2
    assert "could not import 'nosuch.py'" in one_line_error(child)


# -- docs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> jsonschema.protocols.Validator:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def test_docs_prints_a_valid_asyncapi_document(
    spawn: Spawner, write: Write, asyncapi: jsonschema.protocols.Validator
) -> None:
    write("routesvc.py", SERVICE)
    child = run_tool(spawn, "docs", "routesvc.py", "--app-version", "2.0.0")
    assert child.proc.returncode == 0, child.stderr()
    document = json.loads(child.stdout())
    assert [e.message for e in asyncapi.iter_errors(document)] == []
    assert document["info"]["version"] == "2.0.0"
    assert document["channels"]["cancel"]["address"] == "tcp://192.0.2.1:5001"
    assert document["channels"]["prices"]["address"] == "prices"
    assert document["operations"]["cancel"]["reply"]["messages"]


def test_docs_writes_a_file(
    spawn: Spawner, tmp_path: Path, asyncapi: jsonschema.protocols.Validator
) -> None:
    shutil.copy(PREDECESSOR / "sf_echo.py", spawn.workdir)
    child = run_tool(spawn, "docs", "sf_echo.py", "-o", "echo.asyncapi.json")
    assert child.proc.returncode == 0, child.stderr()
    assert child.stdout() == ""
    document = json.loads((tmp_path / "echo.asyncapi.json").read_text(encoding="utf-8"))
    assert [e.message for e in asyncapi.iter_errors(document)] == []
    assert list(document["operations"]) == ["echo"]


# -- call ---------------------------------------------------------------------------------------


def test_call_prints_the_return_args(runner: Runner, spawn: Spawner) -> None:
    app = runner.serve(replyer_app())
    child = run_tool(spawn, "call", app.endpoints["add"], "add", '{"a": 2, "b": 40}')
    assert child.proc.returncode == 0, child.stderr()
    assert child.stdout() == '{"sum":42}\n'  # piped: one compact line
    assert child.stderr() == ""


def test_call_takes_host_port(runner: Runner, spawn: Spawner) -> None:
    app = runner.serve(replyer_app())
    child = run_tool(spawn, "call", host_port(app.endpoints["add"]), "add", '{"a": 1, "b": 1}')
    assert child.proc.returncode == 0, child.stderr()
    assert json.loads(child.stdout()) == {"sum": 2}


def test_call_markers_in_and_strings_out(runner: Runner, spawn: Spawner) -> None:
    app = runner.serve(quote_app())
    args = {
        "symbol": "BTC",
        "price": {"__decimal__": True, "as_str": "1.25"},
        "ident": {"__uuid__": True, "as_str": str(UUID(int=5))},
        "tags": {"__set__": True, "value": ["b", "a"]},
    }
    child = run_tool(spawn, "call", app.endpoints["quote"], "quote", json.dumps(args))
    assert child.proc.returncode == 0, child.stderr()
    assert json.loads(child.stdout()) == {
        "symbol": "BTC",
        "price": "2.50",
        "ident": str(UUID(int=5)),
        "tags": ["a", "b", "seen"],
    }


def test_call_sends_the_workflow_id(runner: Runner, spawn: Spawner) -> None:
    app = runner.serve(quote_app())
    endpoint = app.endpoints["whoami"]
    child = run_tool(spawn, "call", endpoint, "whoami", "null", "--workflow-id", "wf-7")
    assert json.loads(child.stdout()) == "wf-7", child.stderr()
    child = run_tool(spawn, "call", endpoint, "whoami", "null")
    assert re.fullmatch(r'"[0-9a-f-]{36}"\n', child.stdout()), child.stdout()


def test_call_reads_stdin(runner: Runner, tmp_path: Path) -> None:
    app = runner.serve(replyer_app())
    done = subprocess.run(
        [sys.executable, "-m", "zmqservice", "call", app.endpoints["add"], "add", "-"],
        input='{"a": 3, "b": 4}',
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"sum":7}\n'


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ('{"a": "2", "b": 1}', "Error: add: ValidationError: in.add (replyer) args: "),
        ('{"a": -1, "b": 1}', "Error: add: HandlerError: RuntimeError: negative a"),
    ],
)
def test_call_error_reply_exits_1(runner: Runner, spawn: Spawner, args: str, expected: str) -> None:
    app = runner.serve(replyer_app())
    child = run_tool(spawn, "call", app.endpoints["add"], "add", args)
    assert child.proc.returncode == 1
    assert one_line_error(child).startswith(expected)
    assert child.stdout() == ""


def test_call_timeout_exits_1(spawn: Spawner, zsock: Callable[[int], zmq.Socket[bytes]]) -> None:
    silent = zsock(zmq.REP)  # takes the request, never answers
    silent.bind(LOCAL)
    endpoint = silent.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
    started = time.monotonic()
    child = run_tool(spawn, "call", endpoint, "add", "{}", "--timeout", "0.3")
    assert child.proc.returncode == 1
    assert one_line_error(child) == f"Error: add: no reply from {endpoint} within 0.3s"
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["192.0.2.1:1", "add", '{"a": '], "Error: ARGS_JSON is not valid JSON: "),
        (["192.0.2.1:1", "add", '{"x": {"__uuid__": true, "as_str": "no"}}'], "Error: ARGS_JSON"),
        (["nonsense", "add", "{}"], "Error: ENDPOINT: 'nonsense' is not 'host:port'"),
    ],
)
def test_call_usage_errors_exit_2(spawn: Spawner, argv: list[str], message: str) -> None:
    child = run_tool(spawn, "call", *argv)
    assert child.proc.returncode == 2
    assert one_line_error(child).startswith(message)


@pytest.fixture
def sf_echo(tmp_path: Path) -> Iterator[str]:
    """The predecessor's own runtime serving ``sf_echo.py``; yields its host:port."""
    pytest.importorskip("numpy")
    pytest.importorskip("service_framework")
    shutil.copy(PREDECESSOR / "sf_echo.py", tmp_path)
    port = free_port()
    (tmp_path / "sf.json").write_text(
        json.dumps({"in": {"echo": {"replyer": f"127.0.0.1:{port}"}}})
    )
    log = (tmp_path / "sf.log").open("wb")
    # -wt: the predecessor's serving loop otherwise spins at 100% CPU
    argv = ["-m", "service_framework", "-s", "./sf_echo.py", "-a", "sf.json", "-wt", "0.001"]
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def listening() -> bool:
            assert proc.poll() is None, (tmp_path / "sf.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

        assert wait_for(listening), "the predecessor service did not start"
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()  # the predecessor has no graceful SIGTERM path
        proc.wait(WAIT_S)
        log.close()


def test_call_a_predecessor_replyer(sf_echo: str, spawn: Spawner) -> None:
    args = {
        "amount": {"__decimal__": True, "as_str": "1.25"},
        "ident": {"__uuid__": True, "as_str": str(UUID(int=9))},
        "tags": {"__set__": True, "value": ["x"]},
        "note": "hi",
    }
    child = run_tool(spawn, "call", sf_echo, "echo", json.dumps(args))
    assert child.proc.returncode == 0, child.stderr()
    assert json.loads(child.stdout()) == {
        "amount": "2.50",
        "ident": str(UUID(int=9)),
        "tags": ["echoed", "x"],
        "note": "hi",
        "served_by": "sf_echo",
    }


# -- describe -----------------------------------------------------------------------------------


def test_describe_a_running_app(runner: Runner, spawn: Spawner) -> None:
    app = runner.serve(quote_app())
    for argv in ([], ["--json"]):
        child = run_tool(spawn, "describe", app.endpoints["whoami"], *argv)
        assert child.proc.returncode == 0, child.stderr()
        description = json.loads(child.stdout())
        assert description["app"] == "quotesvc"
        assert [c["name"] for c in description["connections"]] == ["quote", "whoami"]
        quote = description["connections"][0]
        assert quote["kind"] == "replyer" and quote["bind"] is True
        assert quote["args"]["properties"]["price"]["title"] == "Decimal"
        assert quote["returns"]["title"] == "Quote"


def test_describe_refused(runner: Runner, spawn: Spawner) -> None:
    app = runner.serve(replyer_app(describe=False))
    child = run_tool(spawn, "describe", app.endpoints["add"])
    assert child.proc.returncode == 1
    assert "does not answer describe requests (describe=False)" in one_line_error(child)


def test_describe_timeout(spawn: Spawner, zsock: Callable[[int], zmq.Socket[bytes]]) -> None:
    silent = zsock(zmq.REP)
    silent.bind(LOCAL)
    endpoint = silent.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
    child = run_tool(spawn, "describe", endpoint, "-t", "0.2")
    assert child.proc.returncode == 1
    assert one_line_error(child) == f"Error: describe: no reply from {endpoint} within 0.2s"


# -- publish ------------------------------------------------------------------------------------


def test_publish_to_a_binding_subscriber(runner: Runner, spawn: Spawner) -> None:
    app, got = subscriber_app()
    runner.serve(app, {"in": {"prices": {"subscriber": LOCAL}}})
    args = '{"symbol": "BTC", "price": {"__decimal__": true, "as_str": "101.5"}}'
    endpoint = app.endpoints["prices"]
    child = run_tool(spawn, "publish", endpoint, "--topic", "BTC", args, "-w", "wf-p")
    assert child.proc.returncode == 0, child.stderr()
    assert child.stdout() == f"published to {endpoint}: topic 'BTC', workflow_id wf-p\n"
    assert wait_for(lambda: got)
    assert got == [({"symbol": "BTC", "price": Decimal("101.5")}, "wf-p")]


def test_publish_without_a_topic(runner: Runner, spawn: Spawner) -> None:
    app, got = subscriber_app(topic="")
    runner.serve(app, {"in": {"prices": {"subscriber": LOCAL}}})
    args = '{"symbol": "ETH", "price": {"__decimal__": true, "as_str": "2"}}'
    child = run_tool(spawn, "publish", host_port(app.endpoints["prices"]), args)
    assert child.proc.returncode == 0, child.stderr()
    assert wait_for(lambda: got)
    assert got[0][0] == {"symbol": "ETH", "price": Decimal("2")}


def test_publish_with_no_matching_subscriber_exits_1(runner: Runner, spawn: Spawner) -> None:
    app, got = subscriber_app(topic="BTC")
    runner.serve(app, {"in": {"prices": {"subscriber": LOCAL}}})
    endpoint = app.endpoints["prices"]
    child = run_tool(spawn, "publish", endpoint, "--topic", "ETH", "{}", "--timeout", "0.5")
    assert child.proc.returncode == 1
    assert one_line_error(child) == (
        f"Error: no subscriber for this topic at {endpoint} within 0.5s "
        "(subscriptions seen: 'BTC'); nothing was published"
    )
    assert got == []


def test_publish_with_nobody_there_exits_1(spawn: Spawner, ipc: Callable[[str], str]) -> None:
    endpoint = ipc("nobody")
    child = run_tool(spawn, "publish", endpoint, "{}", "--timeout", "0.3")
    assert child.proc.returncode == 1
    assert one_line_error(child) == (
        f"Error: no subscriber at {endpoint} within 0.3s (is a subscriber with bind=True "
        "or a proxy frontend there?); nothing was published"
    )


def test_publish_through_a_proxy(runner: Runner, spawn: Spawner) -> None:
    proxy = Proxy("pubsub", LOCAL, LOCAL)  # the product's own forwarder
    proxy.start()
    try:
        app, got = subscriber_app(topic="BTC", bind=False)
        runner.serve(app, {"in": {"prices": {"subscriber": proxy.backend}}})
        args = '{"symbol": "BTC", "price": {"__decimal__": true, "as_str": "7"}}'
        child = run_tool(spawn, "publish", proxy.frontend, "--topic", "BTC", args)
        assert child.proc.returncode == 0, child.stderr()
        assert wait_for(lambda: got)
        assert got[0][0] == {"symbol": "BTC", "price": Decimal("7")}
    finally:
        assert proxy.stop()  # the subscriber reconnects quietly until the runner stops it


# -- listen -------------------------------------------------------------------------------------


def publisher_app(topic: str = "orders") -> App:
    app = App("pubsvc")
    app.publisher(
        "events",
        args={"order_id": str, "price": Decimal, "tags": {str}},
        topic=topic,
        address=LOCAL,
    )
    return app


class Ticker:
    """Publishes on `app` every 20 ms from a thread until stopped (PUB drops until joined)."""

    def __init__(self, app: App, name: str = "events") -> None:
        self.sent = 0
        self.stopping = threading.Event()

        def tick() -> None:
            while not self.stopping.wait(0.02):
                self.sent += 1
                app.send(
                    name,
                    {"order_id": f"O{self.sent}", "price": Decimal("1.5"), "tags": {"b", "a"}},
                )

        self.thread = threading.Thread(target=tick, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(WAIT_S)


@pytest.fixture
def ticker() -> Iterator[Callable[[App], Ticker]]:
    tickers: list[Ticker] = []

    def start(app: App) -> Ticker:
        tickers.append(Ticker(app))
        return tickers[-1]

    try:
        yield start
    finally:
        for t in tickers:
            t.stop()


def test_listen_prints_json_lines(
    runner: Runner, spawn: Spawner, ticker: Callable[[App], Ticker]
) -> None:
    app = runner.serve(publisher_app())
    child = spawn.start(
        "listen", app.endpoints["events"], "--topic", "orders", "-n", "2", "-t", "20"
    )
    ticker(app)
    assert child.wait(30) == 0, child.stderr()
    lines = [json.loads(line) for line in child.stdout().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert line["topic"] == "orders"
        assert re.fullmatch(r"[0-9a-f-]{36}_\d+", line["workflow_id"])
        assert line["args"]["price"] == "1.5"
        assert line["args"]["tags"] == ["a", "b"]
        assert re.fullmatch(r"O\d+", line["args"]["order_id"])


def test_listen_without_a_topic_hears_every_topic(
    runner: Runner, spawn: Spawner, ticker: Callable[[App], Ticker]
) -> None:
    app = runner.serve(publisher_app(topic="fills"))
    child = spawn.start("listen", host_port(app.endpoints["events"]), "--count", "1", "-t", "20")
    ticker(app)
    assert child.wait(30) == 0, child.stderr()
    assert json.loads(child.stdout())["topic"] == "fills"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_listen_stops_on_a_signal(runner: Runner, spawn: Spawner, signum: int) -> None:
    app = runner.serve(publisher_app())
    child = spawn.start("listen", app.endpoints["events"])
    assert wait_for(lambda: "listening on" in child.stderr()), child.stderr()
    child.signal(signum)
    assert child.wait() == 0, child.stderr()
    assert "Traceback" not in child.stderr()


def test_listen_timeout(runner: Runner, spawn: Spawner) -> None:
    app = runner.serve(publisher_app())
    endpoint = app.endpoints["events"]
    quiet = run_tool(spawn, "listen", endpoint, "--timeout", "0.3")
    assert quiet.proc.returncode == 0, quiet.stderr()
    assert quiet.stdout() == ""
    short = run_tool(spawn, "listen", endpoint, "--count", "1", "--timeout", "0.3")
    assert short.proc.returncode == 1
    assert short.stderr().splitlines()[-1] == "Error: got 0 of 1 messages within 0.3s"


# -- run: the start-up summary and the DEBUG line ---------------------------------------------

RUN_SERVICE = """
    from zmqservice import App

    app = App("runsvc")


    @app.replyer("add", args={"a": int, "b": int}, returns={"sum": int})
    def add(args):
        return {"sum": args["a"] + args["b"]}


    @app.subscriber("ticks", args=None, topic="t", bind=True)
    def on_tick(args):
        pass


    app.publisher("fills", args=None, topic="fills")
    app.requester("exchange", args=None, returns=None)
"""

RUN_ADDRESSES = {
    "in": {"add": {"replyer": LOCAL}, "ticks": {"subscriber": LOCAL}},
    "out": {"fills": {"publisher": LOCAL}, "exchange": {"requester": "tcp://192.0.2.1:9"}},
}
STARTUP = re.compile(r"INFO +runsvc: (\w+) (\w+) on (\S+) \(([^)]*)\)")


def start_run(spawn: Spawner, write: Write, *extra: str) -> tuple[Child, dict[str, str]]:
    """``zmqservice run`` the service; return it and the endpoints its summary shows."""
    write("runsvc.py", RUN_SERVICE)
    write("addresses.json", RUN_ADDRESSES)
    child = spawn.start("run", "runsvc.py", "-a", "addresses.json", *extra)

    def summary() -> dict[str, str]:
        found = {m[2]: m[3] for m in STARTUP.finditer(child.stderr())}
        return found if len(found) == 4 else {}

    endpoints = wait_for(summary)
    assert endpoints, child.stderr()
    return child, endpoints


def test_run_logs_one_line_per_connection(spawn: Spawner, write: Write) -> None:
    child, endpoints = start_run(spawn, write)
    lines = {m[2]: m.group(0) for m in STARTUP.finditer(child.stderr())}
    assert re.search(r"replyer add on tcp://127\.0\.0\.1:\d+ \(bound\)$", lines["add"])
    assert re.search(
        r"subscriber ticks on tcp://127\.0\.0\.1:\d+ \(bound, topic 't'\)$", lines["ticks"]
    )
    assert re.search(
        r"publisher fills on tcp://127\.0\.0\.1:\d+ \(bound, topic 'fills'\)", lines["fills"]
    )
    assert lines["exchange"].endswith("requester exchange on tcp://192.0.2.1:9 (connects)")
    assert not any(url.endswith(":0") for url in endpoints.values())  # the actual ports
    # The summary's endpoint is the one to call.
    call = run_tool(spawn, "call", endpoints["add"], "add", '{"a": 1, "b": 2}')
    assert call.stdout() == '{"sum":3}\n', call.stderr()
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()


def test_run_quiet_level_has_no_summary(
    spawn: Spawner, write: Write, ipc: Callable[[str], str]
) -> None:
    write("runsvc.py", RUN_SERVICE)
    endpoint = ipc("quiet")
    inbound = {"add": {"replyer": endpoint}, "ticks": {"subscriber": LOCAL}}
    write("addresses.json", {**RUN_ADDRESSES, "in": inbound})
    child = spawn.start("run", "runsvc.py", "-a", "addresses.json", "-cl", "WARNING")
    # Once it answers, it is serving: the summary, if any, was written before that.
    assert child.request(endpoint, {"a": 1, "b": 2})["return_args"] == {"sum": 3}
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()
    assert "runsvc:" not in child.stderr()


def read_pty(master: int, until: Callable[[str], bool], timeout: float = WAIT_S) -> str:
    """Read a pseudo-terminal until `until(text)` or `timeout` seconds."""
    text = ""
    deadline = time.monotonic() + timeout
    while not until(text) and time.monotonic() < deadline:
        if select.select([master], [], [], 0.05)[0]:
            try:
                text += os.read(master, 65536).decode(errors="replace")
            except OSError:  # the child closed its end
                break
    return text


def test_run_shows_a_panel_on_a_terminal(spawn: Spawner, write: Write, tmp_path: Path) -> None:
    write("runsvc.py", RUN_SERVICE)
    write("addresses.json", RUN_ADDRESSES)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zmqservice", "run", "runsvc.py", "-a", "addresses.json"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**spawn.env(), "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(slave)
    try:
        text = read_pty(master, lambda t: "╰" in t)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
        assert "╭─ runsvc zmqservice" in plain, text
        assert re.search(r"│ replyer +add +tcp://127\.0\.0\.1:\d+ \(bound\) +│", plain), plain
        assert re.search(r"│ requester +exchange +tcp://192\.0\.2\.1:9 \(connects\) +│", plain)
        assert "INFO" not in plain  # the panel replaces the log lines
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(WAIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(WAIT_S)
            os.close(master)


DEBUG_LINE = r"DEBUG +in\.{conn} \({kind}\): workflow_id {wid} handled in \d+\.\d µs"


def test_run_debug_logs_each_message(spawn: Spawner, write: Write) -> None:
    child, endpoints = start_run(spawn, write, "-cl", "DEBUG")
    call = run_tool(spawn, "call", endpoints["add"], "add", '{"a": 1, "b": 2}', "-w", "wf-9")
    assert call.proc.returncode == 0, call.stderr()
    publish = run_tool(spawn, "publish", endpoints["ticks"], "--topic", "t", "1", "-w", "wf-10")
    assert publish.proc.returncode == 0, publish.stderr()
    replyer = re.compile(DEBUG_LINE.format(conn="add", kind="replyer", wid="wf-9"))
    subscriber = re.compile(DEBUG_LINE.format(conn="ticks", kind="subscriber", wid="wf-10"))
    assert wait_for(lambda: subscriber.search(child.stderr())), child.stderr()
    assert len(replyer.findall(child.stderr())) == 1
    child.signal(signal.SIGTERM)
    assert child.wait() == 0


def test_run_info_has_no_per_message_line(spawn: Spawner, write: Write) -> None:
    child, endpoints = start_run(spawn, write)
    call = run_tool(spawn, "call", endpoints["add"], "add", '{"a": 1, "b": 2}')
    assert call.proc.returncode == 0, call.stderr()
    child.signal(signal.SIGTERM)
    assert child.wait() == 0
    assert "handled in" not in child.stderr()


class Canned:
    def request(self, conn: Any, frame: bytes) -> bytes:
        raise AssertionError("no requests here")

    def publish(self, conn: Any, frame: bytes) -> None:
        raise AssertionError("no publishing here")

    def call(self, conn: Any, target: Any, args: Any) -> Any:
        return call_target(target, args)


@pytest.fixture
def debug_level() -> Iterator[Callable[[int], None]]:
    logger = logging.getLogger("zmqservice")
    before = logger.level

    def set_level(level: int) -> None:
        logger.setLevel(level)

    try:
        yield set_level
    finally:
        logger.setLevel(before)


def test_debug_off_leaves_the_hot_path_unwrapped(debug_level: Callable[[int], None]) -> None:
    app, _ = subscriber_app()
    replyer = replyer_app()
    debug_level(logging.INFO)
    plain_reply = Dispatcher(replyer, {}, Canned()).replier(replyer.connections["add"])
    plain_receive = Dispatcher(app, {}, Canned()).receiver(app.connections["prices"])
    assert (plain_reply.__name__, plain_receive.__name__) == ("reply", "receive")
    debug_level(logging.DEBUG)
    timed = Dispatcher(replyer, {}, Canned()).replier(replyer.connections["add"])
    assert timed.__name__ == "timed"


# -- shell completion (docs/cli.md) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("zmqservice pro", ["plain,proxy"]),
        ("zmqservice run sv", ["file,sv"]),  # TARGET completes as a file path
        ("zmqservice routes sv", ["file,sv"]),
        ("zmqservice docs sv", ["file,sv"]),
        ("zmqservice run svc.py -a ad", ["file,ad"]),
    ],
)
def test_the_zmqservice_command_completes_in_bash(
    tmp_path: Path, words: str, expected: list[str]
) -> None:
    command = Path(sys.executable).with_name("zmqservice")
    env = {
        **os.environ,
        "_ZMQSERVICE_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    done = subprocess.run(
        [str(command)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=WAIT_S
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected
