"""`zmqservice.log`: the handlers `setup_logging` installs, and the workflow id on records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from zmqservice.log import WORKFLOW_ID, get_logger, setup_logging, tag_lines


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


@pytest.mark.parametrize(
    ("where", "reason"),
    [(".", "Is a directory"), ("blocker/service.log", "'.*blocker' is not a directory")],
    ids=["a-directory", "a-file-in-the-way"],
)
def test_a_log_path_that_cannot_be_opened_is_a_config_error_changing_nothing(
    restore_logger: logging.Logger, tmp_path: Path, where: str, reason: str
) -> None:
    from zmqservice import ConfigError

    (tmp_path / "blocker").write_text("not a directory", encoding="utf-8")
    setup_logging("INFO")
    before = list(restore_logger.handlers)
    with pytest.raises(ConfigError, match=rf"^log_path '.*': cannot open it: {reason}"):
        setup_logging("DEBUG", tmp_path / where)
    assert restore_logger.handlers == before


def test_tag_lines_starts_every_line_with_the_tag_once(
    restore_logger: logging.Logger, tmp_path: Path
) -> None:
    path = tmp_path / "worker.log"
    setup_logging("CRITICAL", path, "INFO")
    tag_lines("worker 1")
    get_logger("runtime").info("ready in %s", "0.1s")
    get_logger().info("100%")
    for handler in restore_logger.handlers:
        handler.flush()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith("zmqservice.runtime [] worker 1: ready in 0.1s")
    assert lines[1].endswith("[] worker 1: 100%")
