"""The asyncio runtime over real sockets: apps in threads and one `zmqservice run` child."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from zmqservice import App

from .conftest import WAIT_S, Inbox, Runner, Spawner, pack, recv_frame, unpack, wait_for

LOCAL = "tcp://127.0.0.1:0"


def request(sock: zmq.Socket[bytes], args: Any, workflow_id: str = "w") -> Any:
    sock.send(pack({"args": args, "workflow_id": workflow_id}))
    return unpack(recv_frame(sock))


def slow_app() -> App:
    app = App("aioslow")

    @app.replyer("double", args={"n": int}, returns={"n": int})
    async def double(args):
        await asyncio.sleep(0.01)
        return {"n": args["n"] * 2}

    @app.replyer("fail", args=None, returns=None)
    async def fail(args):
        raise RuntimeError("broken on purpose")

    return app


def test_async_replyer_serves_requests(
    runner: Runner, zsock: Callable[[int], zmq.Socket[bytes]]
) -> None:
    app = runner.serve(
        slow_app(), {"in": {"double": {"replyer": LOCAL}, "fail": {"replyer": LOCAL}}}
    )
    req = zsock(zmq.REQ)
    req.connect(app.endpoints["double"])

    replies = [request(req, {"n": n}, f"w{n}") for n in range(5)]

    assert [r["return_args"] for r in replies] == [{"n": 2 * n} for n in range(5)]
    assert [r["workflow_id"] for r in replies] == [f"w{n}" for n in range(5)]


def test_async_handler_exception_is_a_handler_error_reply(
    runner: Runner, zsock: Callable[[int], zmq.Socket[bytes]]
) -> None:
    app = runner.serve(
        slow_app(), {"in": {"double": {"replyer": LOCAL}, "fail": {"replyer": LOCAL}}}
    )
    req = zsock(zmq.REQ)
    req.connect(app.endpoints["fail"])

    reply = request(req, 1)

    assert reply["error"]["type"] == "HandlerError"
    assert "broken on purpose" in reply["error"]["message"]
    req2 = zsock(zmq.REQ)
    req2.connect(app.endpoints["double"])
    assert request(req2, {"n": 4})["return_args"] == {"n": 8}  # still serving


def backend(runner: Runner) -> App:
    back = App("aioback")

    @back.replyer("price", args={"symbol": str}, returns={"price": float})
    def price(args):
        return {"price": 2.5 if args["symbol"] == "BTC" else 1.0}

    return runner.serve(back, {"in": {"price": {"replyer": LOCAL}}})


def test_async_handler_awaits_to_send_to_another_service(
    runner: Runner, zsock: Callable[[int], zmq.Socket[bytes]]
) -> None:
    back = backend(runner)
    front = App("aiofront")
    front.requester("price", args={"symbol": str}, returns={"price": float}, timeout=WAIT_S)

    @front.replyer("quote", args={"symbol": str}, returns={"symbol": str, "price": float})
    async def quote(args, to_send):
        reply = await to_send("price", {"symbol": args["symbol"]})
        return {"symbol": args["symbol"], "price": reply["price"]}

    addresses = {
        "in": {"quote": {"replyer": LOCAL}},
        "out": {"price": {"requester": back.endpoints["price"]}},
    }
    runner.serve(front, addresses)
    req = zsock(zmq.REQ)
    req.connect(front.endpoints["quote"])

    assert request(req, {"symbol": "BTC"})["return_args"] == {"symbol": "BTC", "price": 2.5}
    assert request(req, {"symbol": "ETH"})["return_args"] == {"symbol": "ETH", "price": 1.0}


def test_mixed_app_sync_subscriber_and_async_replyer(
    runner: Runner, zsock: Callable[[int], zmq.Socket[bytes]]
) -> None:
    app = App("aiomixed")
    inbox = Inbox()
    threads: list[threading.Thread] = []
    loop_threads: list[threading.Thread] = []

    @app.subscriber("ticks", args={"n": int}, topic="t", bind=True)
    def ticks(args):
        threads.append(threading.current_thread())
        inbox.add(args["n"])

    @app.replyer("count", args=None, returns=None)
    async def count(args):
        loop_threads.append(threading.current_thread())  # the event loop's own thread
        return len(inbox.snapshot())

    runner.serve(app, {"in": {"ticks": {"subscriber": LOCAL}, "count": {"replyer": LOCAL}}})
    pub = zsock(zmq.PUB)
    pub.connect(app.endpoints["ticks"])
    frame = pack("t") + pack({"args": {"n": 1}, "workflow_id": "p"})

    assert wait_for(lambda: pub.send(frame) or inbox.snapshot(), step=0.05)
    req = zsock(zmq.REQ)
    req.connect(app.endpoints["count"])
    assert request(req, None)["return_args"] >= 1
    assert threads and loop_threads
    assert not set(threads) & set(loop_threads)  # sync handlers run off the loop's thread


def test_async_main_in_main_mode(runner: Runner) -> None:
    back = backend(runner)
    app = App("aiomainmode")
    app.requester("price", args={"symbol": str}, returns={"price": float}, timeout=WAIT_S)

    @app.main
    async def main(to_send, config):
        first = await to_send("price", {"symbol": "BTC"})
        await asyncio.sleep(0.01)
        return first["price"] * config["factor"]

    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(
            app.run(
                {"out": {"price": {"requester": back.endpoints["price"]}}},
                {"factor": 2},
                main=True,
            )
        ),
        daemon=True,
    )
    thread.start()
    thread.join(WAIT_S)

    assert not thread.is_alive()
    assert results == [5.0]


def test_async_requester_times_out(zsock: Callable[[int], zmq.Socket[bytes]]) -> None:
    silent = zsock(zmq.ROUTER)
    port = silent.bind_to_random_port("tcp://127.0.0.1")
    app = App("aiotimeout")
    app.requester("slow", args=None, returns=None, timeout=0.2, retries=1)

    @app.main
    async def main(to_send):
        try:
            await to_send("slow", 1)
        except TimeoutError as exc:
            return str(exc)
        return "no timeout"

    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(
            app.run({"out": {"slow": {"requester": f"tcp://127.0.0.1:{port}"}}}, main=True)
        ),
        daemon=True,
    )
    thread.start()
    thread.join(WAIT_S)

    assert not thread.is_alive()
    assert "after 2 tries" in results[0]


def test_async_replyer_child_exits_cleanly_on_sigterm(
    spawn: Spawner, write: Callable[[str, Any], Path], tmp_path: Path
) -> None:
    write(
        "aiosvc.py",
        """
        import asyncio
        from pathlib import Path

        from zmqservice import App

        app = App("aiochild")

        @app.replyer("echo", args=None, returns=None)
        async def echo(args):
            await asyncio.sleep(0.01)
            return args

        @app.on_sigterm
        async def bye(signum, config):
            Path(config["marker"]).write_text(str(signum))
        """,
    )
    sock_path = tmp_path / "echo.ipc"
    endpoint = f"ipc://{sock_path}"
    addresses = write("addresses.json", {"in": {"echo": {"replyer": endpoint}}})
    marker = tmp_path / "bye"
    child = spawn.start("run", "aiosvc.py", "-a", str(addresses), "--marker", str(marker))

    assert child.request(endpoint, [1, 2])["return_args"] == [1, 2]
    child.signal(signal.SIGTERM)

    assert child.wait() == 0, child.stderr()
    assert marker.read_text() == str(int(signal.SIGTERM))
    assert "Traceback" not in child.stderr()


def test_a_sync_app_runs_without_importing_asyncio() -> None:
    code = """
import sys
from zmqservice import App

app = App("plain")
app.requester("ask", address="tcp://192.0.2.1:9", timeout=0.01)

@app.replyer("echo", address="tcp://127.0.0.1:0")
def echo(args):
    return args

@app.main
def main(to_send):
    return "asyncio" in sys.modules

sys.exit(3 if app.run(main=True) else 0)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=WAIT_S)
    assert done.returncode == 0, done.stderr.decode()
