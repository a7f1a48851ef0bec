"""``zmqservice routes`` and ``docs``: what a service declares, read without running it."""

from __future__ import annotations

import json
import sys

import click

from . import _common as common
from ._common import CONTEXT, CliError

__all__ = ["docs", "routes"]


@click.command(context_settings=CONTEXT)
@click.argument("target", shell_complete=common.complete_target)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
def routes(target: str, as_json: bool) -> None:
    """List the connections of a service.

    TARGET is loaded as `zmqservice run` loads it (module:app, module, path/to/file.py[:app]),
    predecessor modules included.
    """
    from ..describe import route_rows

    app = common.load_target(target)
    rows = route_rows(app)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console

    from .render import routes_table

    table = routes_table(app.name, rows)
    console = Console()
    if not console.is_terminal:  # piped: as wide as the content, however wide; never cut
        wide = console.options.update_width(sys.maxsize)
        console = Console(width=console.measure(table, options=wide).maximum)
    console.print(table)  # a terminal: its own width, long cells folded onto more lines


@click.command(context_settings=CONTEXT)
@click.argument("target", shell_complete=common.complete_target)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@click.option("--app-version", default="0.0.0", show_default=True, help="The info.version.")
def docs(target: str, output: str | None, app_version: str) -> None:
    """Print the AsyncAPI 3.0 document of a service.

    TARGET is loaded as `zmqservice run` loads it; the document is JSON.
    """
    from ..asyncapi import asyncapi_document

    text = (
        json.dumps(asyncapi_document(common.load_target(target), version=app_version), indent=2)
        + "\n"
    )
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise CliError(f"cannot write {output!r}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}", err=True)
