"""What an app says about itself: the payload of the built-in describe request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App

__all__ = ["describe_app"]


def describe_app(app: App) -> dict[str, Any]:
    """Describe `app`: name, zmqservice version and each connection's name and kind."""
    from . import __version__

    return {
        "app": app.name,
        "zmqservice": __version__,
        "connections": [
            {"name": conn.name, "kind": conn.kind, "topic": conn.topic}
            for conn in app.connections.values()
        ],
    }
