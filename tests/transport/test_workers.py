"""`transport.workers`: what is refused before any worker starts, and how apps are found."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from zmqservice import App, ConfigError
from zmqservice.transport.workers import run_workers, target_of

ADDR = "tcp://192.0.2.1:1"


def replyer_app() -> App:
    app = App("demo")
    app.replyer("echo", address=ADDR)(lambda args: args)
    return app


@pytest.fixture
def module_app() -> Iterator[App]:
    module = types.ModuleType("zs_workers_fixture")
    module.service = replyer_app()  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        yield module.service  # type: ignore[attr-defined]
    finally:
        del sys.modules[module.__name__]


def test_target_of_names_the_module_attribute(module_app: App) -> None:
    assert target_of(module_app) == "zs_workers_fixture:service"


def test_target_of_a_string_is_that_string() -> None:
    assert target_of("svc.py:app") == "svc.py:app"


def test_an_app_no_module_holds_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot import it"):
        target_of(replyer_app())


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (None, {"workers": 0}, "expected a number >= 1"),
        (None, {"workers": 2, "main": True}, "main mode"),
        ("subscriber", {"workers": 2}, "only replyers"),
        ("publisher", {"workers": 2}, "cannot bind one address"),
        ("connecting replyer", {"workers": 2}, "must bind"),
    ],
)
def test_what_workers_cannot_serve_is_refused(
    module_app: App, change: str | None, kwargs: dict[str, Any], message: str
) -> None:
    if change == "subscriber":
        module_app.subscriber("ticks", address=ADDR)(lambda args: None)
    elif change == "publisher":
        module_app.publisher("ticks", address=ADDR)
    elif change == "connecting replyer":
        module_app.replyer("other", address=ADDR, bind=False)(lambda args: args)
    with pytest.raises(ConfigError, match=message):
        run_workers(module_app, **kwargs)


def test_app_run_with_workers_checks_before_starting(module_app: App) -> None:
    with pytest.raises(ConfigError, match=">= 1"):
        module_app.run(workers=0)
