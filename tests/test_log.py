"""`zmqservice.log`: the handlers `setup_logging` installs, and the workflow id on records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from zmqservice.log import (
    WORKFLOW_ID,
    get_logger,
    setup_logging,
)


@pytest.fixture
def restore_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("zmqservice")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    for handler in [h for h in logger.handlers if h not in handlers]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)


def test_a_second_setup_replaces_its_own_handlers_only(
    restore_logger: logging.Logger, tmp_path: Path
) -> None:
    foreign = logging.NullHandler()
    restore_logger.addHandler(foreign)
    try:
        setup_logging("INFO", tmp_path / "a.log")
        first = [h for h in restore_logger.handlers if h is not foreign]
        setup_logging("DEBUG")
        second = [h for h in restore_logger.handlers if h is not foreign]
    finally:
        restore_logger.removeHandler(foreign)
    assert len(first) == 2  # console and file
    assert len(second) == 1 and second[0] not in first
    assert foreign not in second
    assert restore_logger.level == logging.DEBUG


def test_records_carry_the_workflow_id_in_hand(
    restore_logger: logging.Logger, tmp_path: Path
) -> None:
    path = tmp_path / "service.log"
    setup_logging("CRITICAL", path, "INFO")
    token = WORKFLOW_ID.set("W-42")
    try:
        get_logger().info("inside a message")
    finally:
        WORKFLOW_ID.reset(token)
    get_logger().info("outside")
    for handler in restore_logger.handlers:
        handler.flush()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert "[W-42] inside a message" in lines[0]
    assert "[] outside" in lines[1]
