"""Everything that owns a zmq socket; `run_app` is what `App.run` calls.

The core (the package root) never imports this package at module level: `App.run`,
`Service` and the CLI reach it inside functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..config import build_config, check_min_wait
from ..errors import ConfigError
from ..invoke import is_async_app
from .addresses import resolve_addresses
from .running import ExitStatus
from .threaded import ThreadedRuntime

if TYPE_CHECKING:
    from ..app import App

__all__ = ["ExitStatus", "Source", "run_app"]

Source = Mapping[str, Any] | str | Path | None
"""A dict, a JSON file path, or None."""


def run_app(
    app: App,
    addresses: Source = None,
    config: Source = None,
    *,
    main: bool = False,
    min_wait: float = 0.0,
    extra_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    on_ready: Callable[[], Any] | None = None,
    connect_to: Mapping[str, str] | None = None,
    status: ExitStatus | None = None,
) -> Any:
    """Validate config and addresses, open sockets, then serve or run main.

    `App.run(workers=N)` goes to `transport.workers.run_workers` instead. With
    `connect_to` (replyer name -> endpoint), those replyers connect there instead of binding
    their address: a worker's REP behind its supervisor's balancer. With `status` (a run
    that ends its process: the CLI, a worker), `status.forced` tells how the stop went and
    signals after the run are ignored until the process exits.

    Returns:
        What `@app.main` returned in main mode, else None.

    Raises:
        ConfigError: before any socket is opened, for bad config, addresses or targets.
    """
    if main and "main" not in app.hooks:
        raise ConfigError(f"App {app.name!r} has no @app.main to run in main mode")
    min_wait = check_min_wait(min_wait)
    cfg = build_config(app, config, os.environ if environ is None else environ, extra_config)
    endpoints = resolve_addresses(app, addresses, cfg)
    for name, url in (connect_to or {}).items():
        endpoints[name] = attrs.evolve(endpoints[name], url=url, bind=False)
    if is_async_app(app):  # decided once, here: sync-only apps never see asyncio
        from .aio import AsyncRuntime

        return AsyncRuntime(app, cfg, endpoints, on_ready, status).run(main=main, min_wait=min_wait)
    return ThreadedRuntime(app, cfg, endpoints, on_ready, status).run(main=main, min_wait=min_wait)
