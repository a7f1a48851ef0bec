"""What the `zmqservice` commands share: error classes with exit codes, small helpers."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import math
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import click

from ..errors import ConfigError

CONTEXT = {"help_option_names": ["-h", "--help"]}


class Seconds(click.FloatRange):
    """A finite number of seconds in a range: click's `FloatRange` lets ``nan`` and ``inf`` by."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


TIMEOUT = Seconds(min=0, min_open=True, max=1e9)
"""`--timeout`: more than 0 seconds, at most 1e9 (some 31 years; libzmq counts in ms)."""


class CliError(click.ClickException):
    """A one-line error and exit code 2: usage, import or config problems."""

    exit_code = 2


class ToolError(click.ClickException):
    """A one-line error and exit code 1: the peer failed, timed out or was not there."""

    exit_code = 1


def complete_target(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
    """Shell completion of TARGET: file paths (a ``module:app`` name is left to the user)."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def usage_error(exc: ConfigError) -> CliError:
    """Exit 2 with `exc`'s line; an import that failed inside the user's code adds its frames.

    As ``flask run`` does: the traceback of the exception the target raised while it was
    imported (`ConfigError.__cause__`), without zmqservice's and importlib's frames.
    """
    message = str(exc)
    cause = exc.__cause__
    if cause is not None:
        message += "\n" + user_traceback(cause).rstrip("\n")
    return CliError(message)


def user_traceback(exc: BaseException) -> str:
    """`exc`'s traceback text with only the frames outside zmqservice and importlib."""
    import importlib
    import os
    import traceback
    from pathlib import Path

    from .. import __file__ as package_init

    folders = (Path(package_init).parent, Path(importlib.__file__).parent)
    hidden = (*(str(folder) + os.sep for folder in folders), "<frozen ")
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(hidden)
    ]
    head = (
        ["Traceback (most recent call last):\n", *traceback.format_list(frames)] if frames else []
    )
    return "".join(head + traceback.format_exception_only(type(exc), exc))


def load_target(target: str) -> Any:
    from ..loading import load_app

    try:
        return load_app(target)
    except ConfigError as exc:
        raise usage_error(exc) from None


def endpoint(endpoint: str) -> str:
    """``host:port`` -> ``tcp://host:port``; a full ZMQ endpoint passes; else exit 2."""
    from ..transport.addresses import parse_endpoint

    try:
        return parse_endpoint(endpoint, "ENDPOINT", bind=False)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def parse_args(args_json: str) -> Any:
    from ..codec import marker_hook

    text = sys.stdin.read() if args_json == "-" else args_json
    try:
        return json.loads(text, object_hook=marker_hook)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise CliError(f"ARGS_JSON is not valid JSON: {exc}") from None
    except RecursionError:
        raise CliError("ARGS_JSON is nested too deeply to read") from None


def envelope(args: Any, workflow_id: str) -> bytes:
    """The request (or publication) envelope of `args`; exit 2 if msgpack cannot carry them."""
    from ..codec import encode_request

    try:
        return encode_request(args, workflow_id)
    except (TypeError, ValueError, OverflowError) as exc:  # an int beyond 64 bits, too deep
        raise CliError(f"ARGS_JSON cannot go on the wire: {exc}") from None


def echo_json(value: Any) -> None:
    """Print JSON: indented and highlighted on a terminal, one compact line when piped."""
    data = jsonable(value)
    if sys.stdout.isatty():
        from rich.console import Console

        Console(soft_wrap=True).print_json(data=data)
    else:
        click.echo(json.dumps(data, separators=(",", ":"), ensure_ascii=False))


def workflow_id(given: str | None) -> str:
    from ..sending import new_workflow_id

    return given or new_workflow_id()


class Interrupted(click.ClickException):
    """Ctrl-C: ``Error: interrupted`` and exit code 130 (128 + SIGINT), as shells report it."""

    exit_code = 130


@contextlib.contextmanager
def talking() -> Iterator[None]:
    """Around call, describe, publish, listen: `ConfigError` -> exit 2, Ctrl-C -> exit 130.

    Also a decorator. Without it click reports Ctrl-C as ``Aborted!`` and exit 1, the code
    of a failed or timed-out request.
    """
    try:
        yield
    except ConfigError as exc:  # an endpoint libzmq refuses to connect to
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        raise Interrupted("interrupted") from None


def request(url: str, frame: bytes, timeout: float, what: str) -> bytes:
    from ..errors import RequestTimeout
    from ..transport.oneshot import request_once

    try:
        return request_once(url, frame, timeout)
    except RequestTimeout as exc:
        raise ToolError(f"{what}: {exc}") from None


def jsonable(value: Any) -> Any:
    """Make a decoded wire value JSON-ready.

    ``Decimal`` and ``UUID`` become strings, sets sorted lists, bytes base64 text, tuples
    lists, datetimes ISO 8601 strings.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:  # mixed types: a stable order all the same
            return sorted(items, key=lambda v: (type(v).__name__, repr(v)))
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value
