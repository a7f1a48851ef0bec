"""``zmqservice run`` and ``keygen``: run a service, make CURVE keys."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ..config import parse_value
from ..errors import ConfigError
from ._common import CONTEXT, CliError, ToolError

__all__ = ["keygen", "run"]

LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)


def _extra_config(args: list[str], app: Any) -> dict[str, Any]:
    """Turn ``--key value`` / ``--key=value`` pairs into config entries."""
    extra: dict[str, Any] = {}
    items = iter(args)
    for item in items:
        if not item.startswith("--") or len(item) < 3:
            raise CliError(f"unexpected argument {item!r}: extra config goes as --key value")
        key, eq, raw = item[2:].partition("=")
        if not eq:
            raw = next(items, None)  # type: ignore[assignment]
            if raw is None:
                raise CliError(f"config option --{key} needs a value")
        key = key.replace("-", "_")
        extra[key] = parse_value(raw, app.config.field_type(key))
    return extra


@click.command(
    context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("target")
@click.option("-a", "--addresses", type=click.Path(), help="Addresses JSON file.")
@click.option("-c", "--config", type=click.Path(), help="Config JSON file.")
@click.option("-m", "--main", "main_mode", is_flag=True, help="Run @app.main (main mode).")
@click.option(
    "-wt",
    "--min-wait",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to sleep between poll rounds.",
)
@click.option("-cl", "--console-log-level", type=LEVELS, default="INFO", show_default=True)
@click.option("-f", "--file-log-level", type=LEVELS, default="INFO", show_default=True)
@click.option("-l", "--log-path", type=click.Path(), help="Log file (rotated hourly).")
@click.option(
    "-bc",
    "--backup-count",
    type=int,
    default=24,
    show_default=True,
    help="Rotated log files to keep.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Serve the replyers from N worker processes behind a proxy (docs/scaling.md).",
)
@click.pass_context
def run(
    ctx: click.Context,
    target: str,
    addresses: str | None,
    config: str | None,
    main_mode: bool,
    min_wait: float,
    console_log_level: str,
    file_log_level: str,
    log_path: str | None,
    backup_count: int,
    workers: int | None,
) -> None:
    """Run the service TARGET (module:app, module, path/to/file.py[:app]).

    Extra --key value pairs go into the config (values that parse as JSON are parsed).
    """
    from ..loading import load_app
    from ..log import get_logger, setup_logging
    from ..transport import ExitStatus, run_app
    from ..transport.sockets import AddressUnavailable

    setup_logging(console_log_level, log_path, file_log_level, backup_count)
    try:
        app = load_app(target)
        extra = _extra_config(list(ctx.args), app)
        if workers is not None:
            from ..transport.workers import WorkersFailed, run_workers

            # Worker logs go to the console only: N processes cannot rotate one file.
            log_args = {"console_loglevel": console_log_level}
            status = ExitStatus()
            try:
                run_workers(
                    app,
                    addresses,
                    config,
                    workers=workers,
                    target=target,
                    main=main_mode,
                    min_wait=min_wait,
                    extra_config=extra,
                    logging_args=log_args,
                    status=status,
                )
            except WorkersFailed as exc:  # its cause is logged already
                raise ToolError(str(exc)) from None
            _exit(status)
            return
        status = ExitStatus()
        run_app(
            app,
            addresses,
            config,
            main=main_mode,
            min_wait=min_wait,
            extra_config=extra,
            on_ready=lambda: _announce(app, console_log_level),
            status=status,
        )
        _exit(status)
    except AddressUnavailable as exc:  # may pass: exit 1, which a supervisor restarts
        raise ToolError(str(exc)) from None
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except click.ClickException:
        raise
    except Exception:
        get_logger().exception("%s stopped on an error", target)
        sys.exit(1)


def _exit(status: Any) -> None:
    """A forced stop (work in hand given up) exits 1, so a supervisor sees it: docs/deploy.md."""
    if status.forced is not None:
        from ..log import get_logger

        get_logger("cli").warning("forced stop (%s): exit status %d", status.forced, status.code)
        sys.exit(status.code)


@click.command(context_settings=CONTEXT)
@click.argument("directory", type=click.Path())
@click.option(
    "--name", default="zmqservice", show_default=True, help="File name stem of the key pair."
)
def keygen(directory: str, name: str) -> None:
    """Write a CURVE key pair into DIRECTORY: NAME.key (public), NAME.key_secret (secret).

    The secret file is created with mode 0600; existing files are never overwritten.
    """
    from ..transport.curve import create_keys

    try:
        public, secret = create_keys(directory, name)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    click.echo(f"public key (share it): {public}")
    click.echo(f"secret key (keep it, mode 0600): {secret}")


# -- run's start-up summary ------------------------------------------------------------


def _announce(app: Any, console_log_level: str) -> None:
    """Show what `run` opened: a rich panel on a terminal, one log line per connection else."""
    if logging.getLevelName(console_log_level.upper()) > logging.INFO:
        return
    from .render import startup_lines, startup_panel

    rows = startup_lines(app)
    if sys.stderr.isatty():
        from rich.console import Console

        from .._version import __version__

        Console(stderr=True).print(startup_panel(app.name, __version__, rows))
        return
    from ..log import get_logger

    log = get_logger("cli")
    for kind, name, where in rows:
        log.info("%s: %s %s on %s", app.name, kind, name, where)
