"""An AsyncAPI 3.0 document of an app, built from its connections. No IO here.

One channel per socket connection (external targets have no socket and no channel), keyed
by the connection name, with ``address`` = the connection's ``address=`` or its name. Its
messages are the msgpack envelopes around the model's JSON Schema (see `describe`):

- replyer / requester: ``request`` ``{"args": ..., "workflow_id": ...}``, ``reply``
  ``{"return_args": ..., "workflow_id": ...}`` and ``error`` (the error reply); the
  operation carries a ``reply`` object pointing at ``reply`` and ``error``;
- subscriber / publisher: ``message``, the envelope that follows the packed topic.

Operations: ``receive`` for replyers and subscribers, ``send`` for requesters and
publishers. What AsyncAPI has no field for (socket type, bind, topic prefix bytes, hwm,
timeout) goes in an ``x-zmqservice`` extension on the operation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .describe import json_schema

if TYPE_CHECKING:
    from .app import App
    from .connection import Connection

__all__ = [
    "ASYNCAPI_VERSION",
    "CONTENT_TYPE",
    "asyncapi_document",
    "reply_envelope",
    "request_envelope",
]

ASYNCAPI_VERSION = "3.0.0"
CONTENT_TYPE = "application/msgpack"
SOCKETS = {"replyer": "REP", "subscriber": "SUB", "requester": "REQ", "publisher": "PUB"}
ERROR_TYPES = ["ValidationError", "HandlerError", "DecodeError"]
TITLES = {"request": "request", "reply": "reply", "error": "error reply", "message": "message"}

Schema = dict[str, Any]

_WORKFLOW_ID: Schema = {
    "type": "string",
    "description": "Ties together the work one message causes; onward calls use X_1, X_2 ...",
}


def request_envelope(args: Schema) -> Schema:
    """The request (and pub/sub) envelope around an args schema."""
    return {
        "type": "object",
        "properties": {"args": args, "workflow_id": _WORKFLOW_ID},
        "required": ["args", "workflow_id"],
    }


def reply_envelope(returns: Schema) -> Schema:
    """The successful reply envelope around a returns schema."""
    return {
        "type": "object",
        "properties": {"return_args": returns, "workflow_id": _WORKFLOW_ID},
        "required": ["return_args", "workflow_id"],
        "not": {"required": ["error"]},
    }


def _error_envelope() -> Schema:
    return {
        "type": "object",
        "properties": {
            "return_args": {"type": "null"},
            "workflow_id": _WORKFLOW_ID,
            "error": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "examples": ERROR_TYPES},
                    "message": {"type": "string"},
                },
                "required": ["type", "message"],
            },
        },
        "required": ["return_args", "workflow_id", "error"],
    }


def _key(name: str, taken: set[str]) -> str:
    """A component key AsyncAPI accepts (``[A-Za-z0-9._-]``), unique among `taken`."""
    key = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"
    base, n = key, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    taken.add(key)
    return key


def _summary(conn: Connection) -> str | None:
    doc = getattr(conn.handler, "__doc__", None)
    return doc.strip().splitlines()[0] if doc and doc.strip() else None


def _extension(conn: Connection) -> dict[str, Any]:
    ext: dict[str, Any] = {"kind": conn.kind, "socket": SOCKETS[conn.kind]}
    if conn.kind in ("replyer", "subscriber", "publisher"):
        ext["bind"] = conn.bind
    if conn.kind == "publisher":
        ext["xpub"] = conn.xpub
    if conn.kind in ("subscriber", "publisher"):
        from .codec import topic_prefix

        ext["topic"] = conn.topic
        ext["topic_prefix_hex"] = topic_prefix(conn.topic).hex()
        ext["hwm"] = conn.hwm
    if conn.kind == "requester":
        ext["timeout_s"] = conn.timeout
        ext["retries"] = conn.retries
    return ext


def _describe_channel(conn: Connection) -> str:
    if conn.kind in ("replyer", "requester"):
        return (
            f"ZeroMQ REQ/REP: one msgpack request frame, one reply frame. {conn.name!r} "
            "is the replyer's connection name."
        )
    framing = f"packb({conn.topic!r}) + packb(envelope)" if conn.topic else "packb(envelope)"
    return f"ZeroMQ PUB/SUB: one frame, {framing}."


class _Builder:
    """Collects channels, operations and component messages, keeping every key unique."""

    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self._channel_keys: set[str] = set()
        self._message_keys: set[str] = set()

    def _add_message(
        self, conn: Connection, channel: str, part: str, payload: Schema, into: dict[str, Any]
    ) -> dict[str, str]:
        """Add a component message to a channel; return the operation's reference to it."""
        key = _key(f"{channel}.{part}", self._message_keys)
        title = f"{conn.name} {TITLES[part]}"
        if part == "message" and conn.topic:
            title += f" (topic {conn.topic!r})"
        self.messages[key] = {
            "name": f"{conn.name}.{part}",
            "title": title,
            "contentType": CONTENT_TYPE,
            "payload": payload,
        }
        into[part] = {"$ref": f"#/components/messages/{key}"}
        return {"$ref": f"#/channels/{channel}/messages/{part}"}

    def add(self, conn: Connection) -> None:
        """Add the channel and operation of one socket connection."""
        key = _key(conn.name, self._channel_keys)
        channel_ref = {"$ref": f"#/channels/{key}"}
        parts: dict[str, Any] = {}
        operation: dict[str, Any] = {
            "action": "receive" if conn.side == "in" else "send",
            "channel": channel_ref,
        }
        if (summary := _summary(conn)) is not None:
            operation["summary"] = summary
        args = request_envelope(json_schema(conn.args))
        if conn.kind in ("replyer", "requester"):
            returns = reply_envelope(json_schema(conn.returns))
            request = self._add_message(conn, key, "request", args, parts)
            reply = self._add_message(conn, key, "reply", returns, parts)
            error = self._add_message(conn, key, "error", _error_envelope(), parts)
            operation["messages"] = [request]
            operation["reply"] = {"channel": dict(channel_ref), "messages": [reply, error]}
        else:
            operation["messages"] = [self._add_message(conn, key, "message", args, parts)]
        operation["x-zmqservice"] = _extension(conn)
        self.channels[key] = {
            "address": conn.address or conn.name,
            "description": _describe_channel(conn),
            "messages": parts,
        }
        self.operations[key] = operation


def asyncapi_document(app: App, *, version: str = "0.0.0") -> dict[str, Any]:
    """Build the AsyncAPI 3.0 document of `app`.

    Example:
        doc = asyncapi_document(app)
        json.dumps(doc)   # what `zmqservice docs TARGET` prints

    Args:
        app: the service.
        version: ``info.version``, the version of the service's API.

    Returns:
        A JSON-ready dict valid against the AsyncAPI 3.0.0 JSON Schema.
    """
    from ._version import __version__

    builder = _Builder()
    for conn in app.connections.values():
        if conn.kind in SOCKETS:  # an external target is an in-process call: no channel
            builder.add(conn)
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": app.name,
            "version": version,
            "description": (
                f"The zmqservice app {app.name!r}: msgpack over ZeroMQ. "
                f"Generated by zmqservice {__version__}."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": builder.channels,
        "operations": builder.operations,
    }
    if builder.messages:
        document["components"] = {"messages": builder.messages}
    return document
