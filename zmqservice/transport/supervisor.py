"""``--workers N``: the parent's supervisor: start, watch, restart and drain the workers.

It runs in the parent's main thread next to the `balancer.Balancer`, whose poll waits on
the sockets and on each worker's process sentinel as well, so a worker's death is seen at
once and the requests it held (only those) are written off. A worker is ready once its
``@app.init`` has run (a multiprocessing ``Event``); the balancer gives it requests from
then on. A worker that exits before it is ready at the start fails the whole run (it would
fail the same way again): its error, written to a file by `child.run_child`, is shown once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import attrs

from ..errors import ZmqServiceError
from .balancer import Balancer
from .running import TERM_WAIT_S

__all__ = ["DRAIN_S", "MAX_QUICK", "QUICK_S", "Supervisor", "WorkersFailed", "error_path"]

LOG = logging.getLogger("zmqservice.workers")
TICK_S = 0.1
"""How often the parent checks for a signal and for workers that became ready (a worker
that dies is seen at once: its process sentinel is polled with the sockets)."""
QUICK_S = 5.0
"""A worker that dies sooner than this after its start counts as a quick crash."""
MAX_QUICK = 5
"""Quick crashes in a row of one worker slot after which the parent gives up."""
BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 4.0)
"""Delay before a restart, by the number of quick crashes in a row so far."""
DRAIN_S = 10.0
"""How long a stop waits for the workers to finish their message in hand, then kills."""


def error_path(tmp: str, index: int) -> str:
    """Where worker `index` writes the error it failed to start with (`child.run_child`)."""
    return os.path.join(tmp, f"worker-{index}.error")


class WorkersFailed(ZmqServiceError):
    """A worker failed to start, or kept crashing: `zmqservice run` prints one line, exit 1."""


@attrs.define
class _Slot:
    """One worker place: its current process, whether it is ready, its quick crashes."""

    index: int
    process: Any = None
    ready: Any = None
    """The multiprocessing ``Event`` its worker sets once ``@app.init`` has run."""
    up: bool = False
    """Whether the balancer hands it requests."""
    pid: int | None = None
    started: float = 0.0
    quick: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts, watches, restarts and drains the workers, and runs the balancer meanwhile.

    Everything runs in the caller's thread: the balancer's poll waits on the sockets and on
    each worker's process sentinel, so a death is seen at once.
    """

    def __init__(
        self, workers: int, start: Callable[[int], tuple[Any, Any]], balancer: Balancer, tmp: str
    ) -> None:
        self.slots = [_Slot(i) for i in range(workers)]
        self._start = start
        self.balancer = balancer
        self._tmp = tmp
        self.stopping = threading.Event()
        self.signals = 0
        self.failed: str | None = None
        """Why the supervisor gave up (a worker failed to start, or kept crashing)."""
        self.forced: str | None = None
        """Why the stop was forced (see `ExitStatus`)."""
        self.ready = False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            LOG.info("%s: draining %d workers", name, len(self.slots))
        elif self.signals == 2:
            LOG.warning("second signal %s: stopping the workers now", name)
            self.forced = self.forced or f"second signal {name}"
        else:
            LOG.warning("%s: already stopping", name)
        self.stopping.set()

    def start_all(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(error_path(self._tmp, slot.index))
        slot.process, slot.ready = self._start(slot.index)
        slot.pid, slot.up = slot.process.pid, False
        slot.started, slot.restart_at = time.monotonic(), None
        LOG.info("worker %d started (pid %s)", slot.index, slot.pid)

    def serve(self, on_ready: Callable[[], Any]) -> None:
        """Forward messages and keep N workers until a signal, or until giving up."""
        while not self.stopping.is_set() and self.failed is None:
            self._round(TICK_S)
            if not self.ready and all(slot.up for slot in self.slots):
                self.ready = True
                on_ready()

    def _round(self, timeout: float, restart: bool = True) -> None:
        live = {s.process.sentinel: s for s in self.slots if s.process is not None}
        for fd in self.balancer.poll(round(timeout * 1000), live):
            self._died(live[fd], restart)
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is not None and not slot.up and slot.ready.is_set():
                slot.up = True
                self.balancer.up(slot.index)
            elif restart and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn(slot)

    def _died(self, slot: _Slot, restart: bool) -> None:
        slot.process.join(TERM_WAIT_S)  # its sentinel is ready: it has exited, or nearly
        code, lived = slot.process.exitcode, time.monotonic() - slot.started
        was_up = slot.up or slot.ready.is_set()  # ready, though not yet seen to be
        slot.process, slot.up = None, False
        lost = self.balancer.down(slot.index)
        held = f", losing the {lost} request(s) it held" if lost else ""
        if not was_up:
            self._failed_start(slot, code, restart)
        elif not restart:  # a stop: it was told to exit
            if code != 0 or lost:
                LOG.warning("worker %d (pid %s) exited with %s%s", slot.index, slot.pid, code, held)
                self.forced = self.forced or f"worker {slot.index} exited with {code}{held}"
        else:
            LOG.warning(
                "worker %d (pid %s) exited with %s after %.1fs%s",
                *(slot.index, slot.pid, code, lived, held),
            )
        if restart and self.failed is None:
            self._restart_later(slot, lived, code)

    def _restart_later(self, slot: _Slot, lived: float, code: int | None) -> None:
        slot.quick = slot.quick + 1 if lived < QUICK_S else 1
        if slot.quick >= MAX_QUICK:
            self.failed = (
                f"worker {slot.index} crashed {slot.quick} times in a row within "
                f"{QUICK_S:g}s of its start (last exit code {code}): giving up"
            )
            LOG.error("%s", self.failed)
            return
        delay = BACKOFF_S[min(slot.quick, len(BACKOFF_S)) - 1]
        LOG.warning("worker %d: restarting in %gs", slot.index, delay)
        slot.restart_at = time.monotonic() + delay

    def _failed_start(self, slot: _Slot, code: int | None, restart: bool) -> None:
        """A worker exited before it was ready: its error in full once, else one line."""
        try:
            with open(error_path(self._tmp, slot.index), encoding="utf-8") as file:
                error = file.read().strip()
        except OSError:
            error = ""
        summary = (error.splitlines() or [f"exit code {code}"])[-1]
        if not restart:  # stopped while starting: only an error of its own is news
            if error:
                LOG.error("worker %d failed to start: %s", slot.index, summary)
        elif not self.ready and self.failed is None:
            # At the start: it would fail the same way again. Stop, exit 1.
            self.failed = f"worker {slot.index} failed to start: {summary}"
            detail = f":\n{error}" if error else ""
            LOG.error("worker %d failed to start (exit code %s)%s", slot.index, code, detail)
        else:  # a restart: the back-off and MAX_QUICK apply
            LOG.error("worker %d failed to start: %s", slot.index, summary)

    def drain(self, timeout: float = DRAIN_S) -> None:
        """SIGTERM every worker (each finishes its requests in hand, whose replies still go
        out), wait, then kill; a second signal sends them a second SIGTERM (stop now)."""
        self.balancer.stop_taking()
        self._kill_all(signal.SIGTERM)
        deadline, second = time.monotonic() + timeout, False
        while any(slot.process is not None for slot in self.slots):
            if self.signals >= 2 and not second:
                second = True
                self._kill_all(signal.SIGTERM)
                deadline = min(deadline, time.monotonic() + TERM_WAIT_S + 1)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._round(min(TICK_S, left), restart=False)
        for slot in self.slots:
            if slot.process is not None:
                LOG.error(
                    "worker %d (pid %s) did not stop in time: killing it", slot.index, slot.pid
                )
                self.forced = self.forced or f"worker {slot.index} killed"
                slot.process.kill()
                self._died(slot, restart=False)

    def _kill_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signum)
