"""`zmqservice run` as real child processes: signals, exit codes, config sources, logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from .conftest import Child, Spawner, pack, recv_frame, unpack, wait_for

Write = Callable[[str, Any], Path]

ECHO_SERVICE = """
    import time
    from pathlib import Path

    from zmqservice import App, get_logger

    app = App("echosvc", config={"optional": {"marker_dir": str}})
    LOG = get_logger()


    @app.replyer("echo")
    def echo(args, config):
        LOG.info("echo handling %r", args)
        if isinstance(args, dict) and "sleep" in args:
            Path(config["marker_dir"], "started").write_text("1")
            time.sleep(args["sleep"])
        return args


    @app.on_sigterm
    def on_sigterm(signum, config):
        Path(config["marker_dir"], "sigterm").write_text(str(signum))


    @app.on_sigint
    def on_sigint(signum, frame, to_send, config):
        Path(config["marker_dir"], "sigint").write_text(str(signum))
"""

MAIN_SERVICE = """
    import json
    from pathlib import Path

    from zmqservice import App

    app = App(
        "cfgsvc",
        config={
            "required": {"out": str},
            "optional": {"symbol": str, "count": int, "ratio": float, "fail": bool},
        },
    )


    @app.main
    def main(to_send, config):
        Path(config["out"]).write_text(json.dumps(config))
        if config.get("fail"):
            raise RuntimeError("main failed on purpose")
        return 42
"""


@pytest.fixture
def echo(write: Write, tmp_path: Path, ipc: Callable[[str], str]) -> dict[str, Any]:
    """The echo service file, its addresses file and endpoint."""
    endpoint = ipc("echo")
    return {
        "service": str(write("echosvc.py", ECHO_SERVICE)),
        "addresses": str(write("addresses.json", {"in": {"echo": {"replyer": endpoint}}})),
        "endpoint": endpoint,
        "markers": tmp_path,
    }


def start_echo(spawn: Spawner, echo: dict[str, Any], *extra: str) -> Child:
    child = spawn.start(
        "run",
        echo["service"],
        "-a",
        echo["addresses"],
        "--marker-dir",
        str(echo["markers"]),
        *extra,
    )
    reply = child.request(echo["endpoint"], "ready?")  # bounded: fails if the child dies
    assert reply == {"return_args": "ready?", "workflow_id": "probe"}
    return child


def assert_one_line_error(child: Child, *words: str, code: int = 2) -> None:
    assert child.proc.returncode == code, child.stderr()
    err = child.stderr()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    for word in words:
        assert word in lines[0]


# -- graceful shutdown ----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_a_serving_child_cleanly(
    spawn: Spawner, echo: dict[str, Any], signum: int
) -> None:
    child = start_echo(spawn, echo)

    child.signal(signum)

    assert child.wait() == 0, child.stderr()
    assert "Traceback" not in child.stderr()


@pytest.mark.parametrize("target", ["echosvc", "echosvc:app"])
def test_module_targets_import_from_the_current_directory(
    spawn: Spawner, echo: dict[str, Any], target: str
) -> None:
    child = spawn.start(
        "run", target, "-a", echo["addresses"], "--marker-dir", str(echo["markers"])
    )

    assert child.request(echo["endpoint"], [1, 2])["return_args"] == [1, 2]
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()


def test_signal_hooks_run_on_their_signal(spawn: Spawner, echo: dict[str, Any]) -> None:
    markers: Path = echo["markers"]
    term = start_echo(spawn, echo)
    term.signal(signal.SIGTERM)
    assert term.wait() == 0, term.stderr()

    assert (markers / "sigterm").read_text() == str(int(signal.SIGTERM))
    assert not (markers / "sigint").exists()

    interrupted = start_echo(spawn, echo)
    interrupted.signal(signal.SIGINT)
    assert interrupted.wait() == 0, interrupted.stderr()

    assert (markers / "sigint").read_text() == str(int(signal.SIGINT))


def test_sigterm_during_a_slow_handler_still_delivers_the_reply(
    spawn: Spawner, echo: dict[str, Any]
) -> None:
    child = start_echo(spawn, echo)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    req = ctx.socket(zmq.REQ)
    try:
        req.connect(echo["endpoint"])
        req.send(pack({"args": {"sleep": 0.5}, "workflow_id": "slow-1"}))
        assert wait_for(lambda: (echo["markers"] / "started").exists()), child.stderr()

        child.signal(signal.SIGTERM)

        reply = unpack(recv_frame(req))
    finally:
        req.close(linger=0)
        ctx.term()
    assert reply == {"return_args": {"sleep": 0.5}, "workflow_id": "slow-1"}
    assert child.wait() == 0, child.stderr()
    assert (echo["markers"] / "sigterm").exists()


LOOPING_MAIN_SERVICE = """
    import time
    from pathlib import Path

    from zmqservice import App

    app = App("loopsvc", config={"required": {"marker_dir": str}})


    @app.replyer("echo")
    def echo(args):
        return args


    @app.main
    def main(config):
        Path(config["marker_dir"], "main_started").write_text("1")
        while True:
            time.sleep(0.05)


    @app.on_sigterm
    def on_sigterm(config):
        Path(config["marker_dir"], "sigterm").write_text("1")
"""


def test_sigterm_ends_a_looping_main_cleanly(
    spawn: Spawner, write: Write, tmp_path: Path, ipc: Callable[[str], str]
) -> None:
    service = write("loopsvc.py", LOOPING_MAIN_SERVICE)
    endpoint = ipc("loop")
    addresses = write("loop_addresses.json", {"in": {"echo": {"replyer": endpoint}}})
    child = spawn.start(
        "run", str(service), "-m", "-a", str(addresses), "--marker-dir", str(tmp_path)
    )
    assert child.request(endpoint, "served in main mode")["return_args"] == "served in main mode"
    assert wait_for(lambda: (tmp_path / "main_started").exists()), child.stderr()

    child.signal(signal.SIGTERM)

    assert child.wait() == 0, child.stderr()
    assert (tmp_path / "sigterm").exists()


def test_second_signal_stops_at_once(spawn: Spawner, echo: dict[str, Any]) -> None:
    child = start_echo(spawn, echo)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    req = ctx.socket(zmq.REQ)
    try:
        req.connect(echo["endpoint"])
        req.send(pack({"args": {"sleep": 60}, "workflow_id": "stuck"}))
        assert wait_for(lambda: (echo["markers"] / "started").exists()), child.stderr()

        # Signals that arrive together may be handled as one: repeat until it exits.
        for _ in range(50):
            child.signal(signal.SIGTERM)
            if wait_for(lambda: child.proc.poll() is not None, timeout=0.2):
                break

        # long before the 60 s handler would end; 1: a forced stop gave up the reply
        assert child.wait() == 1, child.stderr()
    finally:
        req.close(linger=0)
        ctx.term()
    assert "second signal" in " ".join(child.stderr().split())


def test_address_in_use_exits_1(spawn: Spawner, echo: dict[str, Any], write: Write) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    holder = ctx.socket(zmq.REP)
    try:
        holder.bind("tcp://127.0.0.1:0")
        taken = holder.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
        addresses = write("taken.json", {"in": {"echo": {"replyer": taken}}})

        child = spawn.run("run", echo["service"], "-a", str(addresses))
    finally:
        holder.close(linger=0)
        ctx.term()

    assert_one_line_error(child, taken, "echo", "Address already in use", code=1)


# -- startup errors: exit 2, one line -------------------------------------------------------


def test_missing_module_exits_2(spawn: Spawner) -> None:
    child = spawn.run("run", "no_such_module_for_zmqservice")

    assert_one_line_error(child, "no_such_module_for_zmqservice")


def test_missing_service_file_exits_2(spawn: Spawner) -> None:
    child = spawn.run("run", "nowhere/svc.py")

    assert_one_line_error(child, "svc.py")


def test_import_error_inside_the_service_exits_2(spawn: Spawner, write: Write) -> None:
    service = write("broken.py", "import a_dependency_that_is_not_there\n")

    child = spawn.run("run", str(service))

    assert child.proc.returncode == 2
    lines = child.stderr().strip().splitlines()
    assert lines[0].startswith("Error: could not import ")
    assert "a_dependency_that_is_not_there" in lines[0]
    assert f'File "{service}", line 1, in <module>' in child.stderr()  # the user's frame


def test_missing_address_exits_2(spawn: Spawner, echo: dict[str, Any]) -> None:
    child = spawn.run("run", echo["service"])

    assert_one_line_error(child, "echo")


def test_bad_config_value_exits_2(spawn: Spawner, write: Write, tmp_path: Path) -> None:
    service = write("cfgsvc.py", MAIN_SERVICE)
    config = write("config.json", {"out": str(tmp_path / "out.json"), "count": "three"})

    child = spawn.run("run", str(service), "-m", "-c", str(config))

    assert_one_line_error(child, "count", "int")
    assert not (tmp_path / "out.json").exists()


def test_missing_required_config_exits_2(spawn: Spawner, write: Write) -> None:
    service = write("cfgsvc.py", MAIN_SERVICE)

    child = spawn.run("run", str(service), "-m")

    assert_one_line_error(child, "out")


@pytest.mark.parametrize(
    "content",
    ['{"in": {"echo": ', '["not", "an", "object"]', None],
    ids=["invalid JSON", "not an object", "no such file"],
)
def test_bad_addresses_file_exits_2(
    spawn: Spawner, echo: dict[str, Any], tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "bad_addresses.json"
    if content is not None:
        path.write_text(content)

    child = spawn.run("run", echo["service"], "-a", str(path))

    assert_one_line_error(child, "bad_addresses.json")


def test_addresses_for_an_unknown_connection_exit_2(
    spawn: Spawner, echo: dict[str, Any], write: Write, ipc: Callable[[str], str]
) -> None:
    addresses = write("typo.json", {"in": {"ecko": {"replyer": ipc("x")}}})

    child = spawn.run("run", echo["service"], "-a", str(addresses))

    assert_one_line_error(child, "ecko")


# -- main mode ------------------------------------------------------------------------------


def test_main_returning_exits_0(spawn: Spawner, write: Write, tmp_path: Path) -> None:
    service = write("cfgsvc.py", MAIN_SERVICE)
    out = tmp_path / "out.json"

    child = spawn.run("run", str(service), "-m", "--out", str(out))

    assert child.proc.returncode == 0, child.stderr()
    assert json.loads(out.read_text()) == {"out": str(out)}


def test_main_raising_exits_1(spawn: Spawner, write: Write, tmp_path: Path) -> None:
    service = write("cfgsvc.py", MAIN_SERVICE)
    out = tmp_path / "out.json"

    child = spawn.run("run", str(service), "--main", "--out", str(out), "--fail", "true")

    assert child.proc.returncode == 1, child.stderr()
    assert "main failed on purpose" in child.stderr()
    assert out.exists()


# -- config sources -------------------------------------------------------------------------


def test_extra_cli_arguments_reach_config(spawn: Spawner, write: Write, tmp_path: Path) -> None:
    service = write("cfgsvc.py", MAIN_SERVICE)
    out = tmp_path / "out.json"

    child = spawn.run(
        "run",
        str(service),
        "-m",
        "--out",
        str(out),
        "--symbol",
        "ETH",
        "--count",
        "3",
        "--ratio=0.5",
    )

    assert child.proc.returncode == 0, child.stderr()
    assert json.loads(out.read_text()) == {
        "out": str(out),
        "symbol": "ETH",
        "count": 3,
        "ratio": 0.5,
    }


def test_environment_variables_reach_config(spawn: Spawner, write: Write, tmp_path: Path) -> None:
    service = write("cfgsvc.py", MAIN_SERVICE)
    out = tmp_path / "out.json"
    env = {"CFGSVC_OUT": str(out), "CFGSVC_SYMBOL": "123", "CFGSVC_COUNT": "7"}

    child = spawn.run("run", str(service), "-m", env=env)

    assert child.proc.returncode == 0, child.stderr()
    # A str key keeps "123" as text; an int key parses "7" as JSON.
    assert json.loads(out.read_text()) == {"out": str(out), "symbol": "123", "count": 7}


def test_config_sources_merge_file_then_env_then_cli(
    spawn: Spawner, write: Write, tmp_path: Path
) -> None:
    service = write("cfgsvc.py", MAIN_SERVICE)
    out = tmp_path / "out.json"
    config = write("config.json", {"out": str(out), "symbol": "file", "count": 1, "ratio": 1.0})
    env = {"CFGSVC_SYMBOL": "env", "CFGSVC_COUNT": "2"}

    child = spawn.run("run", str(service), "-m", "-c", str(config), "--count", "3", env=env)

    assert child.proc.returncode == 0, child.stderr()
    assert json.loads(out.read_text()) == {
        "out": str(out),
        "symbol": "env",
        "count": 3,
        "ratio": 1.0,
    }


# -- logging --------------------------------------------------------------------------------


def test_log_file_lines_carry_the_workflow_id(
    spawn: Spawner, echo: dict[str, Any], tmp_path: Path
) -> None:
    log_path = tmp_path / "logs" / "echo.log"
    child = start_echo(spawn, echo, "-l", str(log_path))

    reply = child.request(echo["endpoint"], {"hello": "log"}, workflow_id="wf-log-42")
    child.signal(signal.SIGTERM)
    assert child.wait() == 0, child.stderr()

    assert reply == {"return_args": {"hello": "log"}, "workflow_id": "wf-log-42"}
    lines = log_path.read_text().splitlines()
    handled = [line for line in lines if "echo handling {'hello': 'log'}" in line]
    assert len(handled) == 1, lines
    assert "[wf-log-42]" in handled[0]
    assert " INFO " in handled[0]


# -- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([str(Path(sys.executable).parent / "zmqservice"), "-h"], ["Usage:", "run"]),
        ([str(Path(sys.executable).parent / "zmqservice"), "--help"], ["Usage:", "run"]),
        (
            [str(Path(sys.executable).parent / "zmqservice"), "run", "-h"],
            ["Usage:", "TARGET", "--addresses", "--config", "--main", "--log-path"],
        ),
        ([sys.executable, "-m", "zmqservice", "-h"], ["Usage:", "run"]),
        ([sys.executable, "-m", "zmqservice", "run", "--help"], ["Usage:", "--addresses"]),
    ],
    ids=["zmqservice -h", "zmqservice --help", "run -h", "python -m -h", "python -m run --help"],
)
def test_help(command: list[str], expected: list[str], tmp_path: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    for word in expected:
        assert word in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("extra", "word"),
    [(["stray"], "stray"), (["--marker-dir"], "--marker-dir")],
    ids=["stray-positional", "option-without-value"],
)
def test_bad_extra_arguments_exit_2(
    spawn: Spawner, echo: dict[str, Any], extra: list[str], word: str
) -> None:
    child = spawn.run("run", echo["service"], "-a", echo["addresses"], *extra)

    assert_one_line_error(child, word)
