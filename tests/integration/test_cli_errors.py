"""Bad input to the command line: one ``Error:`` line and exit 2, never a traceback.

Each case runs ``python -m zmqservice ...`` as a child process (the ``spawn`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import WAIT_S, Child, Runner, Spawner, wait_for

Write = Callable[[str, Any], Path]

SERVICE = """
    from zmqservice import App

    app = App("errsvc")


    @app.replyer("echo")
    def echo(args):
        return args
"""

CONFIGURED = """
    from zmqservice import App

    app = App("errcfg", config={"optional": {"levels": list, "size": int}})


    @app.replyer("echo")
    def echo(args):
        return args
"""

DEEP = "[" * 5000 + "]" * 5000

PEER_COMMANDS = {
    "call": ["call", "{endpoint}", "add", "{}", "-t", "0.2"],
    "describe": ["describe", "{endpoint}", "-t", "0.2"],
    "publish": ["publish", "{endpoint}", "{}", "-t", "0.2"],
    "listen": ["listen", "{endpoint}", "-t", "0.2"],
}


def peer_command(command: str, endpoint: str, *extra: str) -> list[str]:
    return [endpoint if arg == "{endpoint}" else arg for arg in PEER_COMMANDS[command]] + [*extra]


def usage_error(child: Child, *words: str, code: int = 2) -> str:
    """The one ``Error:`` line of a child that exited `code` (2: usage, import, config; 1: an
    address in use, which a restart may find free); click's usage lines may precede it."""
    err = child.stderr()
    assert child.proc.returncode == code, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, err
    assert not [
        line for line in err.strip().splitlines() if line.startswith(("  File ", "zmq.error"))
    ], err
    for word in words:
        assert word in errors[0], err
    return errors[0]


# -- endpoints of call, describe, publish, listen ---------------------------------------------


@pytest.mark.parametrize("command", list(PEER_COMMANDS))
@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("tcp://*:5", ["ENDPOINT", "'*'"]),
        ("*:5", ["ENDPOINT", "'*'"]),
        ("tcp://127.0.0.1", ["ENDPOINT", "tcp://host:port"]),
        ("foo://x", ["ENDPOINT", "unknown transport 'foo'"]),
    ],
    ids=["star", "star-host-port", "no-port", "unknown-scheme"],
)
def test_a_malformed_endpoint_is_one_line_and_exit_2(
    spawn: Spawner, command: str, endpoint: str, words: list[str]
) -> None:
    child = spawn.run(*peer_command(command, endpoint))

    usage_error(child, *words)
    assert child.stdout() == ""


@pytest.mark.parametrize("command", list(PEER_COMMANDS))
def test_an_endpoint_libzmq_refuses_is_one_line_and_exit_2(spawn: Spawner, command: str) -> None:
    child = spawn.run(*peer_command(command, "pgm://x"))

    assert usage_error(child) == "Error: cannot connect to pgm://x: Protocol not supported"
    assert child.stderr().strip().splitlines() == [usage_error(child)]  # no "listening on"


@pytest.mark.parametrize(
    ("command", "value"),
    [
        ("call", "nan"),
        ("call", "inf"),
        ("call", "-inf"),
        ("call", "1e306"),
        ("describe", "nan"),
        ("publish", "inf"),
        ("listen", "nan"),
    ],
)
def test_a_timeout_that_is_not_a_finite_number_is_a_usage_error(
    spawn: Spawner, command: str, value: str
) -> None:
    child = spawn.run(*peer_command(command, "tcp://192.0.2.1:1"), "--timeout", value)

    usage_error(child, "--timeout")


@pytest.mark.parametrize("command", ["call", "publish"])
@pytest.mark.parametrize(
    ("args_json", "words"),
    [
        ('{"x": 99999999999999999999999}', ["ARGS_JSON cannot go on the wire"]),
        (DEEP, ["ARGS_JSON is nested too deeply"]),
    ],
    ids=["int-beyond-64-bits", "nested-5000-deep"],
)
def test_args_that_cannot_be_sent_are_one_line_and_exit_2(
    spawn: Spawner, command: str, args_json: str, words: list[str]
) -> None:
    argv = peer_command(command, "tcp://192.0.2.1:1")
    argv[argv.index("{}")] = args_json

    child = spawn.run(*argv)

    usage_error(child, *words)


# -- zmqservice run ----------------------------------------------------------------------------


def test_a_nul_character_in_an_ipc_path_binds_nothing(
    spawn: Spawner, write: Write, tmp_path: Path
) -> None:
    service = write("errsvc.py", SERVICE)
    ipc = tmp_path / "cut"
    addresses = write("a.json", {"in": {"echo": {"replyer": f"ipc://{ipc}\0here.ipc"}}})

    child = spawn.run("run", str(service), "-a", str(addresses))

    usage_error(child, "addresses.in.echo.replyer", "NUL")
    assert not ipc.exists()  # before: libzmq bound the path cut at the NUL


@pytest.fixture
def configured(write: Write, tmp_path: Path) -> list[str]:
    """``run`` argv of a service with config keys ``levels`` and ``size``; its ipc unused."""
    service = write("errcfg.py", CONFIGURED)
    addresses = write("a.json", {"in": {"echo": {"replyer": f"ipc://{tmp_path}/e.ipc"}}})
    return ["run", str(service), "-a", str(addresses)]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"size": "\xff"}', ["config file", "is not UTF-8"]),
        (
            b'{"levels": [{"__decimal__": true, "as_str": "abc"}]}',
            ["key 'levels[0]'", "bad Decimal marker"],
        ),
        (b'{"levels": [{"__uuid__": true, "as_str": "x"}]}', ["levels[0]", "bad UUID marker"]),
        (b'{"levels": [{"__set__": true, "value": 1}]}', ["levels[0]", "bad set marker"]),
        (b'{"size": ' + b"7" * 5000 + b"}", ["key 'size'", "5000 digits"]),
        (b'{"levels": ' + DEEP.encode() + b"}", ["config file", "nested deeper than 100"]),
    ],
    ids=["not-utf8", "decimal", "uuid", "set", "long-int", "deep"],
)
def test_a_config_file_that_cannot_be_config_is_one_line_and_exit_2(
    spawn: Spawner, configured: list[str], tmp_path: Path, content: bytes, words: list[str]
) -> None:
    (tmp_path / "config.json").write_bytes(content)

    child = spawn.run(*configured, "-c", "config.json")

    usage_error(child, *words)


def test_an_addresses_file_that_is_not_utf8_is_one_line_and_exit_2(
    spawn: Spawner, write: Write, tmp_path: Path
) -> None:
    service = write("errsvc.py", SERVICE)
    (tmp_path / "a.json").write_bytes(b'{"in": {"echo": {"replyer": "\xff"}}}')

    child = spawn.run("run", str(service), "-a", "a.json")

    usage_error(child, "addresses file", "is not UTF-8")


def test_a_cli_value_nested_5000_deep_is_one_line_and_exit_2(
    spawn: Spawner, configured: list[str]
) -> None:
    child = spawn.run(*configured, "--levels", DEEP)

    usage_error(child, "config key 'levels'", "nested deeper than 100")


def test_an_environment_value_nested_5000_deep_is_one_line_and_exit_2(
    spawn: Spawner, configured: list[str]
) -> None:
    child = spawn.run(*configured, env={"ERRCFG_LEVELS": DEEP})

    usage_error(child, "config key 'levels'", "nested deeper than 100")


def test_a_key_file_line_without_equals_is_one_line_and_exit_2(
    spawn: Spawner, write: Write, tmp_path: Path
) -> None:
    import zmq.auth

    service = write("errsvc.py", SERVICE)
    (tmp_path / "clients").mkdir()
    zmq.auth.create_certificates(tmp_path / "clients", "client")
    (tmp_path / "clients" / "client.key_secret").unlink()
    (tmp_path / "server.key_secret").write_text("curve\n    public-key\n", encoding="utf-8")
    curve = {"secret_key": "server.key_secret", "allowed_clients": "clients"}
    addresses = write("a.json", {"in": {"echo": {"replyer": "tcp://127.0.0.1:0", "curve": curve}}})

    child = spawn.run("run", str(service), "-a", str(addresses))

    usage_error(child, "addresses.in.echo.curve.secret_key", "without '='")


@pytest.mark.parametrize("main", [[], ["-m"]], ids=["serving", "main-mode"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "61"])
def test_a_bad_min_wait_is_a_usage_error_before_anything_binds(
    spawn: Spawner, write: Write, tmp_path: Path, value: str, main: list[str]
) -> None:
    service = write(
        "errmain.py",
        SERVICE
        + """

    @app.main
    def main():
        pass
""",
    )
    ipc = tmp_path / "wt.ipc"
    addresses = write("a.json", {"in": {"echo": {"replyer": f"ipc://{ipc}"}}})

    child = spawn.run("run", str(service), "-a", str(addresses), *main, "-wt", value)

    usage_error(child, "--min-wait")
    assert not ipc.exists()


@pytest.mark.parametrize(
    ("log_path", "words"),
    [(".", ["Is a directory"]), ("blocker/x.log", ["'blocker' is not a directory"])],
    ids=["a-directory", "a-file-in-the-way"],
)
def test_a_log_path_that_cannot_be_opened_is_one_line_and_exit_2(
    spawn: Spawner, write: Write, tmp_path: Path, log_path: str, words: list[str]
) -> None:
    service = write("errsvc.py", SERVICE)
    (tmp_path / "blocker").write_text("a file", encoding="utf-8")

    child = spawn.run("run", str(service), "-l", log_path)

    usage_error(child, f"log_path {log_path!r}", *words)


def test_a_negative_backup_count_is_a_usage_error(spawn: Spawner, write: Write) -> None:
    child = spawn.run("run", str(write("errsvc.py", SERVICE)), "-bc", "-1")

    usage_error(child, "--backup-count")


# -- a second service on a busy ipc path ------------------------------------------------------


def test_a_second_service_on_a_live_ipc_path_exits_1_and_the_first_keeps_it(
    spawn: Spawner, write: Write, ipc: Callable[[str], str]
) -> None:
    service = write("errsvc.py", SERVICE)
    endpoint = ipc("busy")
    addresses = write("a.json", {"in": {"echo": {"replyer": endpoint}}})
    first = spawn.start("run", str(service), "-a", str(addresses))
    assert first.request(endpoint, "one")["return_args"] == "one"

    second = spawn.run("run", str(service), "-a", str(addresses))

    # exit 1, as a busy tcp port: an address in use may be free at the next restart
    usage_error(
        second, f"cannot bind in.echo (replyer) to {endpoint}: Address already in use", code=1
    )
    assert first.proc.poll() is None
    assert first.request(endpoint, "two")["return_args"] == "two"  # before: unreachable


def test_a_proxy_on_a_live_ipc_path_exits_1(
    spawn: Spawner, write: Write, ipc: Callable[[str], str]
) -> None:
    service = write("errsvc.py", SERVICE)
    endpoint = ipc("busy")
    addresses = write("a.json", {"in": {"echo": {"replyer": endpoint}}})
    first = spawn.start("run", str(service), "-a", str(addresses))
    assert first.request(endpoint, "one")["return_args"] == "one"

    proxy = spawn.run("proxy", "reqrep", "--frontend", endpoint, "--backend", "tcp://127.0.0.1:0")

    usage_error(proxy, "--frontend", "Address already in use", code=1)
    assert first.request(endpoint, "two")["return_args"] == "two"


def test_a_stale_ipc_file_is_taken_over(
    spawn: Spawner, write: Write, ipc: Callable[[str], str]
) -> None:
    service = write("errsvc.py", SERVICE)
    endpoint = ipc("stale")
    addresses = write("a.json", {"in": {"echo": {"replyer": endpoint}}})
    killed = spawn.start("run", str(service), "-a", str(addresses))
    assert killed.request(endpoint, "one")["return_args"] == "one"
    killed.signal(9)  # SIGKILL: the socket file stays behind
    killed.wait()
    assert wait_for(lambda: Path(endpoint.removeprefix("ipc://")).is_socket())

    second = spawn.start("run", str(service), "-a", str(addresses))

    assert second.request(endpoint, "two")["return_args"] == "two"


def test_workers_on_a_busy_port_name_the_replyer(spawn: Spawner, write: Write) -> None:
    import zmq

    service = write("errsvc.py", SERVICE)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    holder = ctx.socket(zmq.REP)
    try:
        holder.bind("tcp://127.0.0.1:0")
        taken = holder.getsockopt(zmq.LAST_ENDPOINT).decode()  # type: ignore[union-attr]
        addresses = write("a.json", {"in": {"echo": {"replyer": taken}}})

        child = spawn.run("run", str(service), "-a", str(addresses), "--workers", "2")
    finally:
        holder.close(linger=0)
        ctx.term()

    line = usage_error(child, "in.echo (replyer)", taken, "Address already in use", code=1)
    assert "--frontend" not in line  # an option the user never passed


# -- an exception while importing the target: the user's frames --------------------------------

BROKEN = """
    from zmqservice import App

    from helpers import lookup

    app = App("broken")
    lookup()
"""

HELPERS = """
    def lookup():
        return an_undefined_name
"""


@pytest.mark.parametrize(
    "argv", [["run", "broken.py"], ["run", "broken"], ["routes", "broken.py"], ["docs", "broken"]]
)
def test_an_exception_while_importing_shows_the_users_frames(
    spawn: Spawner, write: Write, argv: list[str]
) -> None:
    service = write("broken.py", BROKEN)
    helpers = write("helpers.py", HELPERS)

    child = spawn.run(*argv)

    err = child.stderr()
    assert child.proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("Error: could not import "), err
    assert lines[0].endswith("NameError: name 'an_undefined_name' is not defined"), err
    assert lines[1] == "Traceback (most recent call last):", err
    assert lines[2] == f'  File "{service}", line 7, in <module>', err
    assert lines[3] == "    lookup()", err
    assert lines[4] == f'  File "{helpers}", line 3, in lookup', err
    assert lines[-1] == "NameError: name 'an_undefined_name' is not defined", err
    assert "zmqservice" not in "".join(lines[1:]) and "importlib" not in err, err


def test_a_syntax_error_in_the_target_shows_where(spawn: Spawner, write: Write) -> None:
    service = write("broken.py", "from zmqservice import App\n\napp = App(\n")

    child = spawn.run("run", str(service))

    err = child.stderr()
    assert child.proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("Error: could not import "), err
    assert f'  File "{service}", line 3' in lines, err
    assert lines[-1] == "SyntaxError: '(' was never closed", err
    assert "Traceback" not in err  # no frame of the user's ran


def test_a_missing_target_module_stays_one_line(spawn: Spawner) -> None:
    child = spawn.run("run", "no_such_module_for_zmqservice")

    assert (
        usage_error(child)
        == "Error: could not import 'no_such_module_for_zmqservice': no such module"
    )
    assert len(child.stderr().strip().splitlines()) == 1


# -- extra options: config keys, or an error naming the close match -------------------------

FREE_MAIN = """
    from pathlib import Path

    from zmqservice import App

    app = App("freemain")


    @app.main
    def main(config):
        Path("ran.txt").write_text(repr(config))
"""


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--worker", "2"], ["no such option: --worker", "did you mean --workers?"]),
        (["--log-level", "DEBUG"], ["no such option: --log-level", "--console-log-level"]),
        (["--reload"], ["no such option: --reload"]),
        (["--reload", "--worker", "2"], ["no such option: --reload"]),
    ],
    ids=["worker", "log-level", "reload", "reload-then-worker"],
)
def test_a_mistyped_run_option_is_not_config(
    spawn: Spawner, write: Write, tmp_path: Path, extra: list[str], words: list[str]
) -> None:
    service = write("freemain.py", FREE_MAIN)

    child = spawn.run("run", str(service), "-m", *extra)

    usage_error(child, *words)
    assert not (tmp_path / "ran.txt").exists()  # before: main ran with it as config


def test_other_extra_options_still_reach_a_model_less_config(
    spawn: Spawner, write: Write, tmp_path: Path
) -> None:
    service = write("freemain.py", FREE_MAIN)

    child = spawn.run("run", str(service), "-m", "--symbol", "BTC", "--depth=3")

    assert child.proc.returncode == 0, child.stderr()
    assert (tmp_path / "ran.txt").read_text() == "{'symbol': 'BTC', 'depth': 3}"


def test_an_undeclared_key_names_the_declared_close_one(
    spawn: Spawner, configured: list[str]
) -> None:
    child = spawn.run(*configured, "--levls", "[1]")

    usage_error(child, "no such option: --levls", "did you mean --levels?", "has no config key")


# -- Ctrl-C during call, describe, publish ----------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["call", "{endpoint}", "add", "{}", "-t", "30"],
        ["call", "{endpoint}", "add", "{}", "-t", "30", "--check-name"],
        ["describe", "{endpoint}", "-t", "30"],
        ["publish", "{endpoint}", "{}", "-t", "30"],
    ],
    ids=["call", "call-check-name", "describe", "publish"],
)
def test_ctrl_c_is_interrupted_and_exit_130(spawn: Spawner, argv: list[str]) -> None:
    import signal
    import socket

    # A plain TCP listener that never answers: once the command's socket has connected,
    # it waits in its bounded poll loop, where a Ctrl-C lands.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(WAIT_S)
        endpoint = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        child = spawn.start(*[endpoint if a == "{endpoint}" else a for a in argv])
        peer, _ = listener.accept()
        with peer:
            child.signal(signal.SIGINT)
            code = child.wait()

    assert code == 130, child.stderr()  # before: "Aborted!", exit 1
    assert child.stderr().strip() == "Error: interrupted"


# -- call --check-name -----------------------------------------------------------------------


def orders_app(describe: bool = True) -> Any:
    from zmqservice import App

    app = App("orders", describe=describe)
    app.calls = []  # type: ignore[attr-defined]

    @app.replyer("cancel_order", address="tcp://127.0.0.1:0")
    def cancel_order(args: Any) -> Any:
        app.calls.append(args)  # type: ignore[attr-defined]
        return {"ok": True}

    @app.replyer("place_order", address="tcp://127.0.0.1:0")
    def place_order(args: Any) -> Any:
        return {"ok": True}

    return app


def test_call_check_name_sends_nothing_for_a_name_the_app_lacks(
    runner: Runner, spawn: Spawner
) -> None:
    app = runner.serve(orders_app())
    endpoint = app.endpoints["cancel_order"]

    child = spawn.run("call", endpoint, "cancel_ordr", "{}", "--check-name")

    assert child.proc.returncode == 1, child.stderr()
    assert child.stderr().strip() == (
        f"Error: cancel_ordr: App 'orders' at {endpoint} has no replyer 'cancel_ordr' "
        "(its replyers: cancel_order, place_order); nothing was sent"
    )
    assert app.calls == []  # type: ignore[attr-defined]


def test_call_check_name_calls_a_name_the_app_has(runner: Runner, spawn: Spawner) -> None:
    app = runner.serve(orders_app())

    child = spawn.run("call", app.endpoints["cancel_order"], "cancel_order", "{}", "--check-name")

    assert child.proc.returncode == 0, child.stderr()
    assert child.stdout().strip() == '{"ok":true}'
    assert app.calls == [{}]  # type: ignore[attr-defined]


def test_call_check_name_refuses_an_app_that_does_not_describe(
    runner: Runner, spawn: Spawner
) -> None:
    app = runner.serve(orders_app(describe=False))

    child = spawn.run("call", app.endpoints["cancel_order"], "cancel_order", "{}", "--check-name")

    assert child.proc.returncode == 1
    assert child.stderr().startswith("Error: cancel_order: cannot check the name, nothing was sent")
    assert app.calls == []  # type: ignore[attr-defined]


def test_call_without_check_name_sends_the_request_alone(runner: Runner, spawn: Spawner) -> None:
    """The default stays one request: a describe request would stop a predecessor replyer."""
    app = runner.serve(orders_app(describe=False))  # would refuse a describe with an error

    child = spawn.run("call", app.endpoints["cancel_order"], "anything", "{}")

    assert child.proc.returncode == 0, child.stderr()
    assert app.calls == [{}]  # type: ignore[attr-defined]
