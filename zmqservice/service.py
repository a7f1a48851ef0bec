"""`Service`: the predecessor's process handle, running one app in a child process."""

from __future__ import annotations

import multiprocessing
import os
import signal
from types import ModuleType
from typing import Any

__all__ = ["Service"]

STOP_TIMEOUT_S = 5.0


class Service:
    """Run one service in a child process (or here), with the predecessor's method names.

    Example:
        ```python
        with Service("orders.py:app", addresses=addrs, config={"symbol": "BTC"}) as svc:
            svc.run_service()
            svc.wait_ready(5)
            ...                       # talk to it; leaving the block stops it
        ```

    Args:
        app_or_target: an `App`, a module (ours or the predecessor's) or a target string
            such as ``"package.module:app"`` or ``"path/to/service.py"``.
        addresses: the addresses dict or a JSON file path.
        config: the config dict or a JSON file path.
        console_loglevel: the console log level, as ``-cl`` on the CLI.
        log_path: a log file, rotated hourly, as ``-l`` on the CLI.
        file_loglevel: the log file's level, as ``-f`` on the CLI.
        backup_count: rotated log files to keep, as ``-bc`` on the CLI.
        service_loop_min_wait_time_s: seconds to sleep between poll rounds.
        service_path: the predecessor's keyword for a target path.
        service_module: the predecessor's keyword for a target module.
    """

    def __init__(
        self,
        app_or_target: Any = None,
        addresses: Any = None,
        config: Any = None,
        console_loglevel: str = "INFO",
        log_path: str | None = None,
        file_loglevel: str = "INFO",
        backup_count: int = 24,
        service_loop_min_wait_time_s: float = 0,
        *,
        service_path: str | None = None,
        service_module: ModuleType | None = None,
    ) -> None:
        target = app_or_target or service_path or service_module
        if target is None:
            raise TypeError("Service needs an App, a module or a target string")
        self.target = target
        self.addresses = addresses
        self.config = config
        self.logging_args: dict[str, Any] = {
            "console_loglevel": console_loglevel,
            "log_path": log_path,
            "file_loglevel": file_loglevel,
            "backup_count": backup_count,
        }
        self.min_wait = service_loop_min_wait_time_s
        self.process: multiprocessing.process.BaseProcess | None = None
        self._ready: Any = None

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_service()

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.process is not None else "not running"
        return f"<Service {self.target!r} {state}>"

    # -- child process ----------------------------------------------------------------------

    def _start(self, main: bool) -> None:
        from .transport.child import run_child

        if self.process is not None and self.process.is_alive():
            raise RuntimeError(f"{self!r} is already running")
        # A string target is imported afresh in a spawned child; objects need fork to travel.
        method = "spawn" if isinstance(self.target, (str, os.PathLike)) else "fork"
        context: Any = multiprocessing.get_context(method)
        self._ready = context.Event()
        self.process = context.Process(
            target=run_child,
            args=(self.target, self.addresses, self.config),
            kwargs={
                "logging_args": self.logging_args,
                "main": main,
                "min_wait": self.min_wait,
                "ready": self._ready,
            },
            name=f"zmqservice-{self.target!r}",
        )
        self.process.start()

    def run_service(self) -> None:
        """Start serving in a child process; returns at once."""
        self._start(main=False)

    def run_service_as_main(self) -> None:
        """Start main mode in a child process; returns at once."""
        self._start(main=True)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the child has opened its sockets; False on timeout or if it died."""
        if self._ready is None or self.process is None:
            return False
        return bool(self._ready.wait(timeout)) and self.process.is_alive()

    @property
    def exitcode(self) -> int | None:
        """The child's exit code once it ended, else None."""
        return None if self.process is None else self.process.exitcode

    def stop_service(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Stop the child gracefully: SIGTERM, wait up to `timeout`, then kill.

        Returns:
            The child's exit code (0 after a clean stop), or None if none was running.
        """
        process, self.process = self.process, None
        if process is None:
            return None
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)
        code = process.exitcode
        process.close()
        return code

    # -- here -------------------------------------------------------------------------------

    def _run_here(self, main: bool) -> Any:
        from .transport.child import run_child

        return run_child(
            self.target,
            self.addresses,
            self.config,
            logging_args=self.logging_args,
            main=main,
            min_wait=self.min_wait,
        )

    def run_service_blocking(self) -> None:
        """Serve in this process until SIGINT/SIGTERM."""
        self._run_here(main=False)

    def run_service_as_main_blocking(self) -> Any:
        """Run main mode in this process; return what main returns."""
        return self._run_here(main=True)
