"""``zmqservice run`` and ``keygen``: run a service, make CURVE keys."""

from __future__ import annotations

import difflib
import logging
import sys
from typing import Any

import click

from ..config import MAX_MIN_WAIT, parse_value
from ..errors import ConfigError
from ._common import CONTEXT, CliError, Seconds, ToolError, complete_target, usage_error

__all__ = ["keygen", "run"]

LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False)


def _extra_config(args: list[str], app: Any, options: list[str]) -> dict[str, Any]:
    """Turn ``--key value`` / ``--key=value`` pairs into config entries.

    A key must be one the app's config model declares; an app without a model takes any
    key, except one that looks like a mistyped option of ``run`` (`options`). Either way
    an unknown option is an error naming the close matches.
    """
    model = app.config
    declared = None if model.is_any else [*model.required, *model.optional]
    extra: dict[str, Any] = {}
    items = iter(args)
    for item in items:
        if not item.startswith("--") or len(item) < 3:
            raise CliError(f"unexpected argument {item!r}: extra config goes as --key value")
        key, eq, given = item[2:].partition("=")
        value: str | None = given if eq else next(items, None)
        if not eq and value is not None and value.startswith("--"):
            value = None  # the next option, not a value: this one has none
        name = key.replace("-", "_")
        value = _checked_extra(f"--{key}", name, app, declared, options, value)
        extra[name] = parse_value(value, model.field_type(name), name)
    return extra


def _checked_extra(
    flag: str,
    name: str,
    app: Any,
    declared: list[str] | None,
    options: list[str],
    value: str | None,
) -> str:
    """`value`, unless `flag` is no config key or has none: `CliError` naming close matches."""
    if declared is not None and name in declared:
        if value is None:
            raise CliError(f"config option {flag} needs a value")
        return value
    hints = _close(name, declared or [], options)
    if declared is None and not hints:
        if value is not None:
            return value  # an app without a config model takes any other key
        raise CliError(f"no such option: {flag} (an extra --key is a config key and takes a value)")
    hint = f" (did you mean {' or '.join(hints)}?)" if hints else ""
    if declared is None:
        reason = f"to set config key {name!r}, put it in a -c file"
    else:
        keys = ", ".join(declared[:10]) + (" ..." if len(declared) > 10 else "")
        reason = f"App {app.name!r} has no config key {name!r} (its keys: {keys or 'none'})"
    raise CliError(f"no such option: {flag}{hint}; {reason}")


PREDECESSOR_FLAGS = {
    "service-path": "TARGET (the first argument)",
    "addresses-path": "--addresses",
    "config-path": "--config",
    "main-mode": "--main",
    "service-loop-min-wait-time-s": "--min-wait",
}
"""The predecessor's long options that no typo rule would map to ours."""


def _close(name: str, keys: list[str], options: list[str]) -> list[str]:
    """`run`'s options and the config keys that ``--name`` may be a typo of (difflib)."""
    word = name.replace("_", "-").lower()
    longs = {option[2:]: option for option in options if option.startswith("--")}
    shorts = {option[1:]: option for option in options if not option.startswith("--")}
    found = [PREDECESSOR_FLAGS[word]] if word in PREDECESSOR_FLAGS else []
    found += [shorts[word]] if word in shorts else []  # --wt for -wt
    found += [longs[m] for m in difflib.get_close_matches(word, list(longs), 3, 0.75)]
    # --log-level, --loglevel: the end of an option's name (not a one-word key like --path)
    bare = word.replace("-", "")
    if len(bare) >= 6:
        found += [
            o for n, o in longs.items() if n.replace("-", "").endswith(bare) and o not in found
        ]
    by_key = {key.replace("_", "-"): key for key in keys}
    close = difflib.get_close_matches(word, list(by_key), 3, 0.6)
    return [f"--{by_key[m].replace('_', '-')}" for m in close] + found


def _options(ctx: click.Context) -> list[str]:
    return [
        opt
        for param in ctx.command.get_params(ctx)
        if isinstance(param, click.Option)
        for opt in [*param.opts, *param.secondary_opts]
    ]


@click.command(
    context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("target", shell_complete=complete_target)
@click.option("-a", "--addresses", type=click.Path(), help="Addresses JSON file.")
@click.option("-c", "--config", type=click.Path(), help="Config JSON file.")
@click.option("-m", "--main", "main_mode", is_flag=True, help="Run @app.main (main mode).")
@click.option(
    "-wt",
    "--min-wait",
    type=Seconds(min=0, max=MAX_MIN_WAIT),
    default=0.0,
    show_default=True,
    help=f"Seconds to sleep between poll rounds (0 to {MAX_MIN_WAIT:g}).",
)
@click.option("-cl", "--console-log-level", type=LEVELS, default="INFO", show_default=True)
@click.option("-f", "--file-log-level", type=LEVELS, default="INFO", show_default=True)
@click.option("-l", "--log-path", type=click.Path(), help="Log file (rotated hourly).")
@click.option(
    "-bc",
    "--backup-count",
    type=click.IntRange(min=0),
    default=24,
    show_default=True,
    help="Rotated log files to keep.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Serve the replyers from N worker processes behind a proxy (the README's "
    "Documentation: Scaling out).",
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

    Extra --key value pairs go into the config (values that parse as JSON are parsed):
    only keys the config model declares, and none that looks like a mistyped option.
    """
    from ..loading import load_app
    from ..log import get_logger, setup_logging
    from ..transport import ExitStatus, run_app
    from ..transport.sockets import AddressUnavailable

    try:
        setup_logging(console_log_level, log_path, file_log_level, backup_count)
        app = load_app(target)
        extra = _extra_config(list(ctx.args), app, _options(ctx))
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
        raise usage_error(exc) from None
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
