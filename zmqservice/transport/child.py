"""The entry of a process that runs one app: a `Service` child and each ``--workers`` worker.

`run_child` loads the app from its target afresh (a spawned child imports it again) and runs
it with `run_app`, so a child goes through the same config, address and runtime choices
as ``app.run()``. `Service` also runs it in its own process (``run_service_blocking``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..loading import load_target
from ..log import setup_logging
from . import run_app

__all__ = ["PARENT_CHECK_S", "run_child"]

PARENT_CHECK_S = 0.5
"""How often a worker checks that its parent is still there."""


def _watch_parent(parent: int) -> None:
    """A worker whose parent died (SIGKILL) stops itself as on SIGTERM."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


def run_child(
    target: Any,
    addresses: Any = None,
    config: Any = None,
    *,
    logging_args: Mapping[str, Any] | None = None,
    main: bool = False,
    min_wait: float = 0.0,
    extra_config: Mapping[str, Any] | None = None,
    ready: Any = None,
    connect_to: Mapping[str, str] | None = None,
    parent: int | None = None,
) -> Any:
    """Load `target` and run it until it stops; return what main returned (main mode).

    Args:
        target: an `App`, a module or a target string (`loading.load_target`).
        addresses: as for `App.run`.
        config: as for `App.run`.
        logging_args: `setup_logging` keyword arguments (None: leave logging alone).
        main: run `@app.main`.
        min_wait: seconds to sleep between poll rounds.
        extra_config: extra config keys, as the CLI's ``--key value``.
        ready: a multiprocessing ``Event`` to set once the app is ready.
        connect_to: replyer name -> an endpoint its REP socket connects to instead of
            binding its address (a worker's proxy backend).
        parent: the supervisor's pid: this process is a worker. It leaves the terminal's
            process group (a Ctrl-C reaches the supervisor only, which drains the workers)
            and stops itself if the supervisor dies.
    """
    if parent is not None:
        os.setpgid(0, 0)
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if logging_args is not None:
        setup_logging(**logging_args)
    app = load_target(target)
    return run_app(
        app,
        addresses,
        config,
        main=main,
        min_wait=min_wait,
        extra_config=extra_config,
        on_ready=None if ready is None else ready.set,
        connect_to=connect_to,
    )
