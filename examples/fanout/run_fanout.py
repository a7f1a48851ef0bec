"""Run the fan-out example in one process: three services, a thread each, real TCP sockets.

Run: `python examples/fanout/run_fanout.py [--rounds N]`

The market binds its two publishers on ports the OS picks (`tcp://127.0.0.1:0`); the
dashboard and the audit connect to what `market.app.endpoints` reports. Every trade fans out
to both subscribers; quotes reach only the dashboard, the one service that subscribes to them.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import audit  # the script's own directory is first on sys.path
import dashboard
import market

from zmqservice import App
from zmqservice.log import setup_logging

START_TIMEOUT = 10.0  # seconds a service gets to open its sockets
STOP_TIMEOUT = 5.0  # seconds a service gets to stop, once asked
ANY_PORT = "tcp://127.0.0.1:0"


def start(app: App, **run_kwargs: Any) -> threading.Thread:
    """Run `app` in a thread and wait until its sockets are up."""
    thread = threading.Thread(target=app.run, kwargs=run_kwargs, name=app.name, daemon=True)
    thread.start()
    if not app.wait_ready(START_TIMEOUT):
        app.stop()
        raise RuntimeError(f"{app.name} did not start within {START_TIMEOUT:.0f} s")
    return thread


def stop(running: dict[App, threading.Thread], timeout: float = STOP_TIMEOUT) -> None:
    """Stop every app (all at once: each takes a moment to close), then wait for each."""
    for app in running:
        app.stop()  # a serving app stops after the message in hand; a main is not cut short
    for app, thread in running.items():
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"{app.name} did not stop within {timeout:.0f} s")


def run(rounds: int = 5, interval: float = 0.05, warmup: float = 0.5) -> dict[str, Any]:
    """Publish `rounds` rounds of quotes and trades; return what each subscriber received."""
    running: dict[App, threading.Thread] = {}
    config = {"rounds": rounds, "interval": interval, "warmup": warmup}
    publishers = {"quotes": {"publisher": ANY_PORT}, "trades": {"publisher": ANY_PORT}}
    try:
        # Main mode: the market binds, its main sleeps `warmup`, publishes, then it stops.
        market_thread = start(market.app, addresses={"out": publishers}, config=config, main=True)
        running[market.app] = market_thread
        quotes, trades = market.app.endpoints["quotes"], market.app.endpoints["trades"]
        both = {"quotes": {"subscriber": quotes}, "trades": {"subscriber": trades}}
        running[dashboard.app] = start(dashboard.app, addresses={"in": both})
        running[audit.app] = start(audit.app, addresses={"in": {"trades": both["trades"]}})

        market_thread.join(warmup + rounds * interval + STOP_TIMEOUT)  # main has published
        deadline = time.monotonic() + STOP_TIMEOUT
        while len(dashboard.seen) < 2 * rounds and time.monotonic() < deadline:
            time.sleep(0.01)  # the last messages may still be on their way
    finally:
        stop(running)
    return {"dashboard": list(dashboard.seen), "audit": dict(audit.volume)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of quotes and trades")
    args = parser.parse_args(argv)
    setup_logging("INFO")
    received = run(args.rounds)
    topics = [topic for topic, _ in received["dashboard"]]
    print(
        f"dashboard: {topics.count('quotes')} quotes, {topics.count('trades')} trades; "
        f"audit: volume {received['audit']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
