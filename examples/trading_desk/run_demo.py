"""Run the trading-desk demo: three services talking over ZeroMQ on loopback.

Run: `python examples/trading_desk/run_demo.py [--ticks N]`

It picks free loopback ports, writes each service's addresses file to a temp dir, starts the
order desk, the strategy and then the price publisher (in main mode) as child processes
(`python -m zmqservice run ...`), and streams their logs prefixed with the service name.
When the prices are done it stops the others with SIGTERM and prints what flowed. Exit 0
when prices, orders and fills all flowed and every service stopped cleanly, else 1.
Every child is stopped on the way out, whatever happens (errors, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 30.0  # seconds a service gets to start up and log that it is ready
STOP_TIMEOUT = 5.0  # seconds a service gets to stop on SIGTERM before it is killed
SETTLE_TIMEOUT = 3.0  # seconds for the last orders' fills to arrive once prices are done
COLORS = {"order_desk": "35", "strategy": "36", "prices": "33"}

# What the summary counts: event -> (the service that logs it, the log line pattern).
EVENTS = {
    "ticks": ("prices", re.compile(r"\btick \d+/\d+:")),
    "orders": ("strategy", re.compile(r"\bplacing (buy|sell)\b")),
    "replies": ("strategy", re.compile(r"\border O\d+ confirmed\b")),
    "rejected": ("strategy", re.compile(r"\border rejected\b")),
    "fills": ("strategy", re.compile(r"\bfill O\d+: ")),
}
READY = re.compile(r"\bready:")


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


def free_loopback_ports(count: int) -> list[int]:
    """Ports the OS hands out right now; all held open at once so they are distinct."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_addresses(folder: Path) -> dict[str, Path]:
    """Write each service's addresses file; return service name -> file."""
    place_order, fills, prices = (f"tcp://127.0.0.1:{p}" for p in free_loopback_ports(3))
    addresses = {
        "order_desk": {
            "in": {"place_order": {"replyer": place_order}},
            "out": {"fills": {"publisher": fills}},
        },
        "strategy": {
            "in": {"prices": {"subscriber": prices}, "fills": {"subscriber": fills}},
            "out": {"place_order": {"requester": place_order}},
        },
        "prices": {"out": {"prices": {"publisher": prices}}},
    }
    files = {}
    for name, entries in addresses.items():
        files[name] = folder / f"{name}.json"
        files[name].write_text(json.dumps(entries, indent=2), encoding="utf-8")
    return files


class Demo:
    """The child processes, the threads streaming their output, and what was seen."""

    def __init__(self, addresses: dict[str, Path]) -> None:
        self.addresses = addresses
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.readers: list[threading.Thread] = []
        self.ready: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.changed = threading.Condition()
        self.color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
            "COLUMNS": "140",  # rich wraps at 80 columns when it is not writing to a terminal
        }

    def start(self, name: str, *extra: str) -> None:
        """Start service `name` with `zmqservice run` and stream its output."""
        command = [
            sys.executable,
            "-m",
            "zmqservice",
            "run",
            str(HERE / f"{name}.py"),
            "-a",
            str(self.addresses[name]),
            *extra,
        ]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.procs[name] = proc
        reader = threading.Thread(target=self._stream, args=(name, proc), daemon=True)
        reader.start()
        self.readers.append(reader)

    def _stream(self, name: str, proc: subprocess.Popen[str]) -> None:
        prefix = f"{name:>10} |"
        if self.color:
            prefix = f"\033[{COLORS.get(name, '0')}m{prefix}\033[0m"
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            with self.changed:
                print(f"{prefix} {line}", flush=True)
                if READY.search(line):
                    self.ready.add(name)
                for event, (service, pattern) in EVENTS.items():
                    if service == name and pattern.search(line):
                        self.counts[event] += 1
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()  # the child has exited: wake anyone waiting on it

    def wait_ready(self, name: str) -> None:
        """Wait until `name` logs that it is ready (its sockets are up)."""
        proc = self.procs[name]
        with self.changed:
            ok = self.changed.wait_for(
                lambda: name in self.ready or proc.poll() is not None, READY_TIMEOUT
            )
        if proc.poll() is not None:
            raise DemoError(f"{name} exited with {proc.returncode} while starting")
        if not ok:
            raise DemoError(f"{name} did not get ready within {READY_TIMEOUT:.0f}s")

    def wait_done(self, name: str, timeout: float) -> None:
        """Wait for `name` to exit by itself, failing fast if another service dies."""
        deadline = time.monotonic() + timeout
        while self.procs[name].poll() is None:
            for other, proc in self.procs.items():
                if other != name and proc.poll() is not None:
                    raise DemoError(f"{other} exited early with {proc.returncode}")
            if time.monotonic() > deadline:
                raise DemoError(f"{name} did not finish within {timeout:.0f}s")
            time.sleep(0.1)
        # Let the last orders' replies and fills come through before stopping the rest.
        with self.changed:
            self.changed.wait_for(self._settled, SETTLE_TIMEOUT)

    def _settled(self) -> bool:
        answered = self.counts["replies"] + self.counts["rejected"]
        return answered >= self.counts["orders"] and self.counts["fills"] >= self.counts["replies"]

    def stop_all(self, grace: float = 0.0) -> None:
        """Stop every child still running: SIGTERM, a bounded wait, then SIGKILL.

        Args:
            grace: seconds to let the children stop on their own first (after a Ctrl-C in
                a terminal they got the SIGINT too).
        """
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut this short
            signal.signal(sig, signal.SIG_IGN)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.05)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop within {STOP_TIMEOUT:.0f}s: killing it", flush=True)
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        for reader in self.readers:
            reader.join(timeout=STOP_TIMEOUT)
        for proc in self.procs.values():
            if proc.stdout is not None:
                proc.stdout.close()


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally`, which stops the children


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=15, help="price ticks to publish")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)

    with tempfile.TemporaryDirectory(prefix="trading-desk-") as folder:
        demo = Demo(write_addresses(Path(folder)))
        error = None
        try:
            demo.start("order_desk")
            demo.wait_ready("order_desk")
            demo.start("strategy")
            demo.wait_ready("strategy")
            demo.start("prices", "-m", "--ticks", str(args.ticks))
            demo.wait_done("prices", timeout=READY_TIMEOUT + args.ticks * 0.2 + 10)
        except DemoError as exc:
            error = str(exc)
        except KeyboardInterrupt:
            demo.stop_all(grace=2.0)
            print("interrupted: every service stopped", flush=True)
            return 130
        finally:
            demo.stop_all()

    counts = demo.counts
    print(
        f"\nsummary: {counts['ticks']} price ticks published, {counts['orders']} orders "
        f"placed, {counts['replies']} confirmed, {counts['rejected']} rejected, "
        f"{counts['fills']} fills received"
    )
    codes = {name: proc.returncode for name, proc in demo.procs.items()}
    print("exit codes: " + ", ".join(f"{name} {code}" for name, code in codes.items()))
    if error is None and any(codes.values()):
        error = "a service did not exit cleanly"
    if error is None and not (counts["ticks"] and counts["orders"] and counts["fills"]):
        error = "nothing flowed: expected prices, orders and fills"
    if error is not None:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    print("demo ok: prices -> orders -> fills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
