"""Section 4 of bench/run.py: a replyer that sleeps 10 ms, ``concurrency=1`` vs ``16``.

Both apps run in this process: the replyer in a thread (``app.run()``), the client in main
mode, where 16 threads call the requester at once, each over its own socket (the requester
makes one per thread). The handler sleeps, so the GIL is not what limits the rate: the
number of requests the replyer serves at once is.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from zmqservice import App

SLEEP_S = 0.010
CLIENTS = 16
LEVELS = (1, 16)
WAIT_S = 10.0


def _replyer(concurrency: int) -> App:
    app = App(f"napper{concurrency}")

    @app.replyer(
        "nap",
        args={"n": int},
        returns={"n": int},
        address="tcp://127.0.0.1:0",
        concurrency=concurrency,
    )
    def nap(args: dict[str, int]) -> dict[str, int]:
        time.sleep(SLEEP_S)
        return args

    return app


def _drive(endpoint: str, seconds: float) -> tuple[int, float]:
    """Run `CLIENTS` threads calling the replyer for `seconds`; (calls, elapsed)."""
    client = App("napclient")
    client.requester("nap", args={"n": int}, returns={"n": int}, address=endpoint, timeout=WAIT_S)
    counts = [0] * CLIENTS
    window: list[float] = []
    # The window opens when every thread has warmed up: the barrier's action stamps it.
    barrier = threading.Barrier(
        CLIENTS + 1, action=lambda: window.append(time.monotonic()), timeout=WAIT_S * 2
    )

    @client.main
    def main(to_send: Any) -> tuple[int, float]:
        def loop(i: int) -> None:
            to_send("nap", {"n": i})  # warm-up: the socket connects
            barrier.wait()
            deadline = window[0] + seconds
            while time.monotonic() < deadline:
                to_send("nap", {"n": i})
                counts[i] += 1

        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        barrier.wait()
        for thread in threads:
            thread.join(seconds + WAIT_S)
        return sum(counts), time.monotonic() - window[0]

    result: tuple[int, float] = client.run(main=True)
    return result


def bench(seconds: float) -> dict[int, float]:
    """Requests per second for each concurrency level in `LEVELS`."""
    rates: dict[int, float] = {}
    for level in LEVELS:
        app = _replyer(level)
        server = threading.Thread(target=app.run, name=f"bench-{app.name}", daemon=True)
        server.start()
        try:
            if not app.wait_ready(WAIT_S):
                raise RuntimeError(f"{app.name} not ready within {WAIT_S}s")
            calls, elapsed = _drive(app.endpoints["nap"], seconds)
            rates[level] = calls / elapsed
        finally:
            app.stop()
            server.join(WAIT_S)
    return rates


def report(rates: dict[int, float]) -> None:
    print()
    print(
        f"4. concurrent replyer: handler sleeps {SLEEP_S * 1000:.0f} ms, "
        f"{CLIENTS} client threads, tcp://127.0.0.1, one process"
    )
    print(f"   {'':58}{'req/s':>12}")
    for level, rate in rates.items():
        print(f"   {f'@app.replyer(..., concurrency={level})':58}{rate:>12,.0f}")
    first, last = rates[LEVELS[0]], rates[LEVELS[-1]]
    label = f"speedup concurrency={LEVELS[-1]} / concurrency={LEVELS[0]}"
    print(f"   {label:58}{last / first:>12.1f}x")
