"""`cli.render.routes_table`: long cells fold onto more lines, never cut with an ellipsis."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from zmqservice.cli.render import ROUTE_COLUMNS, routes_table

LONG = "cancel_order_with_a_name_long_enough_to_need_folding"


def row(name: str) -> dict[str, str]:
    return {
        "name": name,
        "kind": "replyer",
        "address": "tcp://192.0.2.1:5001",
        "topic": "",
        "args": "{order_id: str, reason: str, requested_by: str}",
        "returns": "{order_id: str, ok: bool}",
        "handler": f"orders:{name}",
    }


@pytest.mark.parametrize("width", [80, 60, 40])
def test_a_narrow_console_folds_cells_instead_of_cutting_them(width: int) -> None:
    console = Console(file=io.StringIO(), width=width, color_system=None)

    console.print(routes_table("orders", [row(LONG)]))

    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "…" not in text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    names = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert "".join(names) == LONG  # the name, folded over several lines, whole


def test_every_route_column_is_shown() -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(routes_table("orders", [row("cancel")]))
    header = console.file.getvalue().splitlines()[2]  # type: ignore[attr-defined]
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == list(ROUTE_COLUMNS)
