"""The entry of a process that runs one app: a `Service` child and each ``--workers`` worker.

`run_child` loads the app from its target afresh (a spawned child imports it again) and runs
it with `run_app`, so a child goes through the same config, address and runtime choices
as ``app.run()``. `Service` also runs it in its own process (``run_service_blocking``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..loading import load_target
from ..log import setup_logging, tag_lines
from . import ExitStatus, run_app

__all__ = ["ERROR_LINES", "PARENT_CHECK_S", "run_child", "startup_error"]

PARENT_CHECK_S = 0.5
"""How often a worker checks that its parent is still there."""
ERROR_LINES = 40
"""At most this many lines of a worker's start-up error reach its supervisor."""
_PACKAGE = str(Path(__file__).resolve().parents[1])


def startup_error(exc: BaseException) -> str:
    """The user's frames of `exc`'s traceback and its last line (framework frames left out)."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(_PACKAGE) and "multiprocessing" not in frame.filename
    ]
    text = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    if frames:
        text = (
            "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + text
        )
    lines = text.splitlines()
    if len(lines) > ERROR_LINES:
        lines = [*lines[: ERROR_LINES - 1], f"... ({len(lines) - ERROR_LINES + 1} more lines)"]
    return "\n".join(lines)


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
    worker: int | None = None,
    error_path: str | None = None,
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
            binding its address (a worker's backend in its supervisor's balancer).
        parent: the supervisor's pid: this process is a worker. It leaves the terminal's
            process group (a Ctrl-C reaches the supervisor only, which drains the workers)
            and stops itself if the supervisor dies. It exits 1 after a forced stop, and
            signals after its run are ignored.
        worker: the worker's number: its log lines start with ``worker N:``.
        error_path: where a worker that fails before it is ready writes its error (the
            supervisor shows it once); it then exits 1 without printing it.
    """
    if parent is not None:
        os.setpgid(0, 0)
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if logging_args is not None:
        setup_logging(**logging_args)
        if worker is not None:
            tag_lines(f"worker {worker}")
    status = None if parent is None else ExitStatus()
    is_ready = threading.Event()

    def on_ready() -> None:
        is_ready.set()
        if ready is not None:
            ready.set()

    try:
        result = run_app(
            load_target(target),
            addresses,
            config,
            main=main,
            min_wait=min_wait,
            extra_config=extra_config,
            on_ready=on_ready,
            connect_to=connect_to,
            status=status,
        )
    except Exception as exc:
        if error_path is None or is_ready.is_set():
            raise
        Path(error_path).write_text(startup_error(exc), encoding="utf-8")
        sys.exit(1)
    if status is not None and status.forced is not None:
        sys.exit(status.code)
    return result
