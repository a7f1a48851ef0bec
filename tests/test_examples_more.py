"""The small examples: hello (child processes), fanout (threads, real TCP), inline.

examples/testing/test_risk.py is collected by pytest itself (`testpaths`).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from zmqservice import RemoteValidationError
from zmqservice.transport.addresses import resolve_addresses

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MODULES = ("hello", "client", "market", "dashboard", "audit", "run_fanout")
MODULES += ("pricing", "receipts", "shop", "run_inline")
WAIT = 20.0  # seconds any one child process may take


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], ModuleType]]:
    """Import a fresh copy of module `name` from examples/`folder` (module state starts empty)."""

    def load(folder: str, name: str) -> ModuleType:
        monkeypatch.syspath_prepend(str(EXAMPLES / folder))
        return importlib.import_module(name)

    for name in MODULES:
        sys.modules.pop(name, None)
    yield load
    for name in MODULES:
        sys.modules.pop(name, None)


def child_env() -> dict[str, str]:
    """The environment without any `<APP>_*` variable that could change an example's config."""
    prefixes = tuple(f"{name.upper()}_" for name in ("hello", "client", "market", "shop"))
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def run(*args: str, cwd: Path, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Run `python args...` to completion, with a bounded wait."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- hello: `zmqservice run` in a child process, called by `zmqservice call` and client.py --


@pytest.fixture
def hello_dir(tmp_path: Path) -> Iterator[Path]:
    """A copy of examples/hello with its service running there; stopped (SIGTERM) after."""
    for path in (EXAMPLES / "hello").iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path)
    command = [sys.executable, "-m", "zmqservice", "run", "hello.py", "-a", "addresses.json"]
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as server:
        try:
            yield tmp_path
            server.send_signal(signal.SIGTERM)
            output, _ = server.communicate(timeout=WAIT)
            assert server.returncode == 0, output  # a clean stop
            assert "greeting world" in output
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.communicate(timeout=WAIT)


def test_hello_answers_zmqservice_call(hello_dir: Path) -> None:
    # A REQ socket waits for the replyer's ipc socket to appear: no sleep needed.
    call = ("-m", "zmqservice", "call", "ipc://hello.ipc", "greet", '{"name": "world"}', "-t", "15")
    done = run(*call, cwd=hello_dir)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"text": "hello world"}

    bad = run(*call[:5], '{"name": 5}', "-t", "15", cwd=hello_dir)
    assert bad.returncode == 1
    assert "expected str, got int @ $.name" in bad.stderr

    client = ("-m", "zmqservice", "run", "client.py", "-a", "client.json", "-m", "--name", "ada")
    done = run(*client, cwd=hello_dir)
    assert done.returncode == 0, done.stderr
    assert "the hello service says: hello ada" in done.stderr


def test_hello_in_process(example: Callable[[str, str], ModuleType]) -> None:
    client = example("hello", "hello").app.test_client()

    assert client.request("greet", {"name": "world"}) == {"text": "hello world"}
    with pytest.raises(RemoteValidationError, match="name"):
        client.request("greet", {})


# -- fanout: three apps in threads, real TCP sockets on OS-chosen ports -------------------


def test_fanout_delivers_each_topic_to_its_subscribers(
    example: Callable[[str, str], ModuleType],
) -> None:
    run_fanout = example("fanout", "run_fanout")

    received = run_fanout.run(rounds=4, interval=0.02)

    quotes = [msg for topic, msg in received["dashboard"] if topic == "quotes"]
    trades = [msg for topic, msg in received["dashboard"] if topic == "trades"]
    assert [q["bid"] for q in quotes] == [Decimal(100), Decimal(101), Decimal(102), Decimal(103)]
    assert [t["qty"] for t in trades] == [1, 2, 3, 4]
    assert received["audit"] == {"BTC": 10}  # trades only: the audit has no quotes subscriber


def test_fanout_addresses_files_fit_the_services(
    example: Callable[[str, str], ModuleType],
) -> None:
    folder = EXAMPLES / "fanout"
    for name in ("market", "dashboard", "audit"):
        app = example("fanout", name).app
        endpoints = resolve_addresses(app, folder / f"{name}.json", None)
        assert set(endpoints) == set(app.connections), name


def test_fanout_script(tmp_path: Path) -> None:
    done = run(str(EXAMPLES / "fanout" / "run_fanout.py"), "--rounds", "3", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "dashboard: 3 quotes, 3 trades; audit: volume {'BTC': 6}" in done.stdout


# -- inline: three services in one thread, no sockets -------------------------------------


def test_inline_prices_places_and_skips_unknown_items(
    example: Callable[[str, str], ModuleType],
) -> None:
    run_inline = example("inline", "run_inline")
    receipts = sys.modules["receipts"]

    inline = run_inline.wire()

    assert inline.start() == Decimal("4.80")
    assert receipts.lines == ["  6 x apple    2.40", "  2 x fig      2.40"]
    assert inline.relations == {
        ("shop", "price"): [("pricing", "price")],
        ("shop", "order_placed"): [("receipts", "order_placed")],
    }


def test_inline_script(tmp_path: Path) -> None:
    done = run(str(EXAMPLES / "inline" / "run_inline.py"), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "total 4.80"
    assert "skipping durian" in done.stderr
