"""Rich renderables for the command line: routes table, describe tree, start-up panel.

Building them does no IO; `cli` prints them. Only `cli` imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ..describe import handler_name, schema_label

if TYPE_CHECKING:
    from ..app import App

__all__ = [
    "description_tree",
    "message_line",
    "routes_table",
    "startup_lines",
    "startup_panel",
]

ROUTE_COLUMNS = ("name", "kind", "address", "topic", "args", "returns", "handler")


def routes_table(app_name: str, rows: list[dict[str, Any]]) -> Group:
    """The `zmqservice routes` table of `describe.route_rows`, under a title line.

    A cell too wide for its column folds onto the next line (a name has no spaces to wrap
    at): never cut short with an ellipsis.
    """
    table = Table()
    for column in ROUTE_COLUMNS:
        table.add_column(column, style="bold" if column == "name" else None, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(row[column]) or "-") for column in ROUTE_COLUMNS))
    count = f"{len(rows)} connection{'' if len(rows) == 1 else 's'}"
    title = Text.assemble((app_name, "bold"), f": {count}")
    return Group(title, table)


def _schema_node(
    tree: Tree, label: str, schema: dict[str, Any], suffix: str = "", depth: int = 0
) -> None:
    fields = schema.get("type") == "object" and "properties" in schema
    untitled = fields and "title" not in schema and "patternProperties" not in schema
    kind = "" if untitled else f": [green]{escape(schema_label(schema))}[/]"
    node = tree.add(f"{escape(label)}{kind}{escape(suffix)}")
    items = schema.get("items")
    if schema.get("type") == "array" and isinstance(items, dict):
        schema = items  # list[Leg]: show Leg's fields under it
    if schema.get("type") != "object" or "patternProperties" in schema or depth > 8:
        return
    required = set(schema.get("required", []))
    for key, sub in schema.get("properties", {}).items():
        default = f" = {sub['default']!r}" if "default" in sub else ""
        _schema_node(node, key if key in required else f"{key}?", sub, default, depth + 1)


def description_tree(description: dict[str, Any]) -> Tree:
    """The `zmqservice describe` tree of a describe payload: connections, then fields."""
    version = description.get("zmqservice", "?")
    app = escape(str(description.get("app", "?")))
    tree = Tree(f"[bold]{app}[/] [dim]zmqservice {escape(str(version))}[/]")
    for conn in description.get("connections", []):
        flags = [f"topic {conn['topic']!r}"] if conn.get("topic") else []
        flags += [flag for flag in ("bind", "xpub") if conn.get(flag)]
        extra = f" [dim]({escape(', '.join(flags))})[/]" if flags else ""
        name, kind = escape(str(conn.get("name"))), escape(str(conn.get("kind")))
        node = tree.add(f"[bold]{name}[/] [cyan]{kind}[/]{extra}")
        for part in ("args", "returns"):
            if isinstance(conn.get(part), dict):
                _schema_node(node, part, conn[part])
    return tree


def startup_lines(app: App) -> list[tuple[str, str, str]]:
    """``(kind, name, where)`` per connection of a running app: its actual endpoint."""
    endpoints = app.endpoints
    rows: list[tuple[str, str, str]] = []
    for conn in app.connections.values():
        if conn.kind == "external_target":
            where = f"calls {handler_name(conn)}"
        else:
            how = "bound" if conn.bind and conn.kind != "requester" else "connects"
            topic = f", topic {conn.topic!r}" if conn.topic else ""
            where = f"{endpoints.get(conn.name, '?')} ({how}{topic})"
        rows.append((conn.kind, conn.name, where))
    return rows


def startup_panel(app_name: str, version: str, rows: list[tuple[str, str, str]]) -> Panel:
    """The start-up panel `zmqservice run` shows on a terminal."""
    table = Table.grid(padding=(0, 2))
    for kind, name, where in rows:
        table.add_row(Text(kind, "cyan"), Text(name, "bold"), Text(where))
    if not rows:
        table.add_row("[dim]no connections[/]")
    title = Text.assemble((app_name, "bold"), " ", (f"zmqservice {version}", "dim"))
    return Panel(table, title=title, title_align="left", expand=False)


def message_line(topic: str, workflow_id: str, args: Any) -> Text:
    """One `zmqservice listen` line on a terminal: topic, workflow_id, args as JSON."""
    from rich.json import JSON

    return Text.assemble(
        (topic or "-", "cyan"),
        " ",
        (workflow_id or "-", "magenta"),
        " ",
        JSON.from_data(args, indent=None).text,
    )
