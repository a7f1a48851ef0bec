"""What the `zmqservice` commands share: error classes with exit codes, small helpers."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import ConfigError

CONTEXT = {"help_option_names": ["-h", "--help"]}
TIMEOUT = click.FloatRange(min=0, min_open=True)


class CliError(click.ClickException):
    """A one-line error and exit code 2: usage, import or config problems."""

    exit_code = 2


class ToolError(click.ClickException):
    """A one-line error and exit code 1: the peer failed, timed out or was not there."""

    exit_code = 1


def load_target(target: str) -> Any:
    from ..loading import load_app

    try:
        return load_app(target)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def endpoint(endpoint: str) -> str:
    from ..transport.oneshot import endpoint_url

    try:
        return endpoint_url(endpoint)
    except ValueError as exc:
        raise CliError(f"ENDPOINT {exc}") from None


def parse_args(args_json: str) -> Any:
    from ..codec import marker_hook

    text = sys.stdin.read() if args_json == "-" else args_json
    try:
        return json.loads(text, object_hook=marker_hook)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise CliError(f"ARGS_JSON is not valid JSON: {exc}") from None


def echo_json(value: Any) -> None:
    """Print JSON: indented and highlighted on a terminal, one compact line when piped."""
    from ..transport.oneshot import jsonable

    data = jsonable(value)
    if sys.stdout.isatty():
        from rich.console import Console

        Console(soft_wrap=True).print_json(data=data)
    else:
        click.echo(json.dumps(data, separators=(",", ":"), ensure_ascii=False))


def workflow_id(given: str | None) -> str:
    from ..dispatch import new_workflow_id

    return given or new_workflow_id()


def request(url: str, frame: bytes, timeout: float, what: str) -> bytes:
    from ..errors import RequestTimeout
    from ..transport.oneshot import request

    try:
        return request(url, frame, timeout)
    except RequestTimeout as exc:
        raise ToolError(f"{what}: {exc}") from None
