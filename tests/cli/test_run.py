"""`zmqservice run`'s extra ``--key value`` options: config keys, or an error naming a match."""

from __future__ import annotations

from typing import Any

import click
import pytest

from zmqservice import App
from zmqservice.cli._common import CliError
from zmqservice.cli.run import _extra_config, _options, run

OPTIONS = _options(click.Context(run, help_option_names=["-h", "--help"]))


def extra(app: App, *args: str) -> dict[str, Any]:
    return _extra_config(list(args), app, OPTIONS)


@pytest.fixture
def free() -> App:
    """No config model: any key is config."""
    return App("free")


@pytest.fixture
def modelled() -> App:
    return App("modelled", config={"optional": {"symbol": str, "max_qty": int}})


def test_run_knows_its_own_options() -> None:
    assert {"--workers", "-wt", "--min-wait", "--console-log-level", "--help"} <= set(OPTIONS)


def test_an_app_without_a_model_takes_any_other_key(free: App) -> None:
    assert extra(free, "--symbol", "BTC", "--offset", "-5", "--path=x", "--reload", "true") == {
        "symbol": "BTC",
        "offset": -5,
        "path": "x",
        "reload": True,
    }


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--worker", "2"], "--workers"),
        (["--log-level", "DEBUG"], "--console-log-level"),
        (["--loglevel", "DEBUG"], "--file-log-level"),
        (["--wt", "1"], "-wt"),
        (["--min_wait=1"], "--min-wait"),
        (["--console_loglevel", "DEBUG"], "--console-log-level"),  # the predecessor's spelling
        (["--config_path", "c.json"], "--config"),
        (["--main_mode", "1"], "--main"),
        (["--service_path", "x.py"], "TARGET"),
    ],
)
def test_a_mistyped_run_option_is_an_error_naming_it(free: App, args: list[str], hint: str) -> None:
    with pytest.raises(CliError) as info:
        extra(free, *args)
    message = info.value.message
    assert message.startswith(f"no such option: {args[0].partition('=')[0]} (did you mean ")
    assert hint in message
    assert "put it in a -c file" in message


@pytest.mark.parametrize("args", [["--reload"], ["--reload", "--symbol", "BTC"]])
def test_an_option_without_a_value_is_no_config(free: App, args: list[str]) -> None:
    with pytest.raises(CliError, match=r"^no such option: --reload \(an extra --key is a config"):
        extra(free, *args)


def test_a_model_takes_only_its_keys(modelled: App) -> None:
    assert extra(modelled, "--symbol", "5", "--max-qty", "3") == {"symbol": "5", "max_qty": 3}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--symbl", "BTC"],
            "no such option: --symbl (did you mean --symbol?); App 'modelled' has no config "
            "key 'symbl' (its keys: symbol, max_qty)",
        ),
        (["--worker", "2"], "no such option: --worker (did you mean --workers?); App"),
        (["--zzz", "1"], "no such option: --zzz; App 'modelled' has no config key 'zzz'"),
        (["--reload"], "no such option: --reload; App 'modelled' has no config key 'reload'"),
        (["--symbol"], "config option --symbol needs a value"),
        (["--symbol", "--max-qty", "3"], "config option --symbol needs a value"),
    ],
)
def test_a_model_refuses_other_keys_naming_the_close_ones(
    modelled: App, args: list[str], message: str
) -> None:
    with pytest.raises(CliError) as info:
        extra(modelled, *args)
    assert info.value.message.startswith(message)
