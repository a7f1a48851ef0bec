"""``zmqservice routes`` as a child process: on a narrow terminal and piped, no cell is cut."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import WAIT_S, Spawner

Write = Callable[[str, Any], Path]

NAME = "cancel_order_" + "and_then_some_more_words_" * 12 + "end"  # 313 characters

SERVICE = f"""
    from zmqservice import App

    app = App("wide")


    @app.replyer("{NAME}", args={{"order_id": str, "reason": str}})
    def cancel(args):
        return args
"""


def name_cells(text: str) -> str:
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return "".join(line.split("│")[1].strip() for line in plain.splitlines() if "│" in line)


def test_piped_routes_are_as_wide_as_their_content(spawn: Spawner, write: Write) -> None:
    write("wide.py", SERVICE)

    child = spawn.run("routes", "wide.py", env={"COLUMNS": "60"})

    assert child.proc.returncode == 0, child.stderr()
    out = child.stdout()
    assert "…" not in out  # before: cut at 250 columns
    assert NAME in out  # on one line
    assert "{order_id: str, reason: str}" in out


def test_routes_on_a_narrow_terminal_fold_long_names(spawn: Spawner, write: Write) -> None:
    write("wide.py", SERVICE)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zmqservice", "routes", "wide.py"],
        cwd=spawn.workdir,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.DEVNULL,
        env={**spawn.env(), "COLUMNS": "60", "TERM": "xterm"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        deadline = time.monotonic() + WAIT_S * 3
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT_S)
        os.close(master)

    text = b"".join(chunks).decode("utf-8", "replace")
    assert "…" not in text  # before: "cancel_o…"
    assert name_cells(text).startswith(NAME)  # folded over many lines, whole
    assert max(len(line) for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).splitlines()) <= 60
