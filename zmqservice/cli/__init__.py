"""The `zmqservice` command (also `python -m zmqservice`): click parses, rich prints."""

from __future__ import annotations

import logging

import click

from ._common import CONTEXT
from .inspect import docs, routes
from .peer import call, describe, listen, publish
from .proxy import proxy
from .run import keygen, run

__all__ = ["entry", "main"]


@click.group(
    context_settings=CONTEXT,
    epilog="Documentation: the README's Documentation section lists every page. Shell "
    'completion: eval "$(_ZMQSERVICE_COMPLETE=bash_source zmqservice)" (zsh_source, '
    "fish_source).",
)
@click.version_option(package_name="zmqservice")
def main() -> None:
    """zmqservice: Flask-style ZeroMQ microservices."""


for command in (run, keygen, routes, docs, call, describe, publish, listen, proxy):
    main.add_command(command)


def entry() -> None:
    """Console-script entry point."""
    logging.captureWarnings(True)
    main()
