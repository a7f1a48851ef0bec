"""Logging: `get_logger()`, rich console output, hourly rotating files, `workflow_id`.

Every record that reaches a zmqservice handler carries ``record.workflow_id``: the id of
the message being handled, or ``""`` outside a message.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import weakref
from contextvars import ContextVar
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "PEER_TEXT_LIMIT",
    "WORKFLOW_ID",
    "get_logger",
    "peer_text",
    "setup_logging",
    "tag_lines",
]

WORKFLOW_ID: ContextVar[str] = ContextVar("zmqservice_workflow_id", default="")
"""The workflow id of the work in hand; the dispatcher sets it around each handler."""

LOGGER_NAME = "zmqservice"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(workflow_id)s] %(message)s"
CONSOLE_FORMAT = "%(asctime)s %(levelname)-8s %(message)s"
PEER_TEXT_LIMIT = 2000
"""Characters of peer-supplied text an error reply or a log line carries (`peer_text`)."""


def peer_text(text: str, limit: int = PEER_TEXT_LIMIT) -> str:
    """Make text a peer may have chosen safe for one log line or error reply.

    Control and other unprintable characters are escaped as `repr` escapes them (a newline
    becomes ``\\n``: no forged log lines), and text over `limit` characters is cut, ending
    with a marker that gives the full length. Printable text within `limit` is returned as
    it is, so calling it twice changes nothing.
    """
    if len(text) <= limit and text.isprintable():
        return text
    head = text[:limit]
    if not head.isprintable():
        head = repr(head)[1:-1]
    if len(text) <= limit and len(head) <= limit:
        return head
    marker = f" [... cut: {len(text)} characters]"
    return head[: max(limit - len(marker), 0)] + marker


class WorkflowIdFilter(logging.Filter):
    """Stamp each record with the current `workflow_id`, escaped (`peer_text`): a peer chose it."""

    def filter(self, record: logging.LogRecord) -> bool:
        workflow_id = getattr(record, "workflow_id", None)
        if workflow_id is None:
            workflow_id = WORKFLOW_ID.get()
        record.workflow_id = peer_text(str(workflow_id))
        return True


class _Tag(logging.Filter):
    """Start a record's message with a tag, once (a record may reach several handlers)."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "zmqservice_tag", False):
            record.msg = f"{self.tag}: {record.msg}"
            record.zmqservice_tag = True
        return True


_FILTER = WorkflowIdFilter()
_INSTALLED: weakref.WeakSet[logging.Handler] = weakref.WeakSet()
"""The handlers `setup_logging` installed, which a later call replaces."""


def get_logger(name: str | None = None) -> logging.Logger:
    """Return the logger services log through (``zmqservice``, or ``zmqservice.<name>``).

    Example:
        ```python
        LOG = get_logger()
        LOG.info("cancelled %s", order_id)   # the record carries the workflow_id
        ```
    """
    logger = logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value


def setup_logging(
    console_loglevel: str | int = "INFO",
    log_path: str | Path | None = None,
    file_loglevel: str | int = "INFO",
    backup_count: int = 24,
) -> None:
    """Install a console handler and, with `log_path`, an hourly rotating file handler.

    The console handler is rich on a terminal and one plain line per record otherwise.

    Replaces the handlers installed by an earlier call, so calling it twice is safe.

    Raises:
        ValueError: for an unknown level name.
        ConfigError: `log_path` cannot be opened (a directory, no permission ...).
    """
    from rich.console import Console
    from rich.logging import RichHandler

    console_level = _level(console_loglevel)
    file_level = _level(file_loglevel)
    rotating: logging.Handler | None = None
    if log_path is not None:  # first: a path that cannot be opened changes nothing
        parent = Path(log_path).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            rotating = logging.handlers.TimedRotatingFileHandler(
                log_path, when="H", backupCount=backup_count, encoding="utf-8"
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if isinstance(exc, FileExistsError):  # from mkdir: a file is in the way
                reason = f"{str(parent)!r} is not a directory"
            raise ConfigError(f"log_path {str(log_path)!r}: cannot open it: {reason}") from None
        rotating.setFormatter(logging.Formatter(FILE_FORMAT))
        rotating.setLevel(file_level)
    logger = get_logger()
    for handler in [h for h in logger.handlers if h in _INSTALLED]:
        logger.removeHandler(handler)
        handler.close()

    console: logging.Handler
    if sys.stderr.isatty():
        console = RichHandler(
            console=Console(stderr=True),
            show_path=False,
            rich_tracebacks=False,
            log_time_format="%H:%M:%S.%f",
        )
        console.setFormatter(logging.Formatter("%(message)s"))
    else:
        # Piped to a file or a log collector: one plain line per record, never wrapped.
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    console.setLevel(console_level)
    handlers: list[logging.Handler] = [console]
    if rotating is not None:
        handlers.append(rotating)
    for handler in handlers:
        handler.addFilter(_FILTER)
        _INSTALLED.add(handler)
        logger.addHandler(handler)
    logger.setLevel(min(h.level for h in handlers))


def tag_lines(tag: str) -> None:
    """Start every line the handlers of `setup_logging` write with ``tag:`` (``worker 1``).

    Lets the lines of N worker processes sharing one console be told apart.
    """
    tag_filter = _Tag(tag)
    for handler in get_logger().handlers:
        if handler in _INSTALLED:
            handler.addFilter(tag_filter)
