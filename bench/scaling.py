"""``zmqservice run --workers N``: requests per second of a CPU-bound replyer, N = 1 and 2.

The replyer burns `BURN_S` of CPU per request (a busy loop on `time.perf_counter`, which
holds the GIL, so one process serves one request at a time). `CLIENTS` threads, each with
its own REQ socket, keep several requests in flight, so two workers can be busy at once.
Both services run as ``python -m zmqservice run bench/scaling.py:app --workers N`` children
for the whole section; their timed windows alternate (ABBA) and the median is shown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from zmqservice import App

BURN_S = 0.002
CLIENTS = 4
COUNTS = (1, 2)
STARTUP_TIMEOUT = 30.0
SERVE = [sys.executable, "-m", "zmqservice", "run", "-cl", "WARNING"]

app = App("burner")


@app.replyer("burn", args={"n": int})
def burn(args: dict[str, Any]) -> int:
    """Spin for `BURN_S` of wall time on one core; return this worker's pid."""
    end = time.perf_counter() + BURN_S
    while time.perf_counter() < end:
        pass
    return os.getpid()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, timeout_ms: int) -> Any:
    sock = ctx.socket(zmq.REQ)
    try:
        sock.connect(endpoint)
        sock.send(msgpack.packb({"args": {"n": 0}, "workflow_id": "probe"}))
        if not sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return msgpack.unpackb(sock.recv())["return_args"]
    finally:
        sock.close(linger=0)


def _wait_workers(endpoint: str, count: int, proc: subprocess.Popen[bytes]) -> None:
    """Return once `count` distinct worker pids have answered (bounded)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    seen: set[int] = set()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while len(seen) < count:
            if proc.poll() is not None:
                raise RuntimeError(f"--workers {count} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"--workers {count}: only pids {seen} answered")
            pid = _request(ctx, endpoint, 500)
            if pid is not None:
                seen.add(pid)
    finally:
        ctx.term()


def _window(endpoint: str, seconds: float) -> float:
    """Requests per second of `CLIENTS` threads, each sending one request at a time."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    counts = [0] * CLIENTS
    frame = msgpack.packb({"args": {"n": 0}, "workflow_id": "bench"})
    start = threading.Barrier(CLIENTS + 1)
    end = [0.0]

    def client(i: int) -> None:
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.RCVTIMEO, 5000)
        sock.connect(endpoint)
        try:
            start.wait()
            n = 0
            while time.monotonic() < end[0]:
                sock.send(frame)
                sock.recv()
                n += 1
            counts[i] = n
        finally:
            sock.close(linger=0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    end[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join(seconds + 10)
    elapsed = time.monotonic() - began
    ctx.term()
    return sum(counts) / elapsed


def bench_workers(rounds: int, seconds: float) -> dict[str, Any]:
    """Start ``--workers 1`` and ``--workers 2``, then alternate timed windows."""
    here = Path(__file__).resolve()
    procs: dict[int, subprocess.Popen[bytes]] = {}
    endpoints: dict[int, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for count in COUNTS:
                endpoints[count] = f"tcp://127.0.0.1:{_free_port()}"
                addresses = Path(tmp) / f"addresses{count}.json"
                addresses.write_text(json.dumps({"in": {"burn": {"replyer": endpoints[count]}}}))
                procs[count] = subprocess.Popen(
                    [*SERVE, f"{here}:app", "-a", str(addresses), "--workers", str(count)],
                    stdin=subprocess.DEVNULL,
                )
            for count in COUNTS:
                _wait_workers(endpoints[count], count, procs[count])
            for count in COUNTS:  # warm up
                _window(endpoints[count], min(0.3, seconds))
            rates: dict[int, list[float]] = {count: [] for count in COUNTS}
            for round_no in range(rounds):
                order = COUNTS if round_no % 2 == 0 else COUNTS[::-1]
                for count in order:
                    rates[count].append(_window(endpoints[count], seconds))
            return {"rates": rates}
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def report_workers(res: dict[str, Any]) -> None:
    one, two = (statistics.median(res["rates"][count]) for count in COUNTS)
    print()
    print(
        f"5. zmqservice run --workers N: {BURN_S * 1000:g} ms CPU per request, "
        f"{CLIENTS} client threads, tcp://127.0.0.1 through the parent's balancer"
    )
    print(f"   {'':44}{'median req/s':>13}{'min .. max req/s':>22}")
    for count, rate in zip(COUNTS, (one, two), strict=True):
        values = res["rates"][count]
        label = f"--workers {count}"
        print(f"   {label:44}{rate:>13,.0f}{min(values):>13,.0f} .. {max(values):,.0f}")
    print(
        f"   {'speedup workers 2 / workers 1':44}{two / one:>13.2f}   "
        f"(ideal 2.00 with 2 free cores; usable here: {len(os.sched_getaffinity(0))})"
    )
