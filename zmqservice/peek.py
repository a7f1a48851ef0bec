"""Reading an envelope's top-level keys without building its args: a scan, not a decode.

A requester checks that a reply answers its request (`is_reply_to`); a middleware reads a
message's workflow id and optional keys (`envelope_headers`). Both skip the ``args`` and
``return_args`` values unbuilt, so a large message costs a walk over its bytes, not objects.
"""

from __future__ import annotations

import threading
from decimal import InvalidOperation
from typing import Any
from uuid import UUID

import msgpack

from .codec import marker_hook

__all__ = ["envelope_headers", "is_reply_to"]

_local = threading.local()


def is_reply_to(frame: bytes, workflow_id: str) -> bool:
    """Whether a reply frame answers the request sent with `workflow_id`.

    True when the reply echoes that id; also when it carries none or an empty one (a peer
    that does not echo ids, or an error reply to a request the peer could not read, such as
    one over its size limit) and when it is not one msgpack map at all, so the caller gets
    the `DecodeError`. False only for a reply whose top-level ``workflow_id`` names another
    request: a stale or misrouted one, which a requester discards. Ids nested deeper (in
    ``return_args``, say) are not looked at.
    """
    try:
        echoed = _top_level_workflow_id(frame)
        if type(echoed) is dict:
            echoed = marker_hook(echoed)
    except (
        ValueError,
        TypeError,
        KeyError,
        InvalidOperation,
        RecursionError,
        msgpack.UnpackException,
    ):
        return True
    if echoed is None or echoed == "":
        return True
    return (str(echoed) if isinstance(echoed, UUID) else echoed) == workflow_id


_SCAN_REUSE_MAX = 64 * 1024
"""Frames up to this size are scanned by one `msgpack.Unpacker` per thread (making one
costs more than the scan of a small reply); its buffer never grows past this."""


def _top_level_workflow_id(frame: bytes) -> Any:
    """The raw ``workflow_id`` of a one-map frame (None when absent); the last one wins, as
    in a decoded dict. The other values are skipped unbuilt: a scan, not a decode.

    Raises:
        ValueError, msgpack.UnpackException: the frame is not exactly one msgpack map.
    """
    size = len(frame)
    unpacker = None
    if size <= _SCAN_REUSE_MAX:
        # Taken while in use: a signal handler that makes a request here gets its own.
        unpacker, _local.unpacker = getattr(_local, "unpacker", None), None
    if unpacker is None:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(size, _SCAN_REUSE_MAX))
    start = unpacker.tell()
    unpacker.feed(frame)
    echoed = None
    for _ in range(unpacker.read_map_header()):
        if unpacker.unpack() == "workflow_id":
            echoed = unpacker.unpack()
        else:
            unpacker.skip()
    if unpacker.tell() - start != size:
        raise ValueError("bytes after the envelope")
    if size <= _SCAN_REUSE_MAX:
        _local.unpacker = unpacker  # read to its end: clean for the next frame
    return echoed


def envelope_headers(frame: bytes, prefix: bytes = b"") -> tuple[str, dict[str, Any]]:
    """A request's or publication's ``(workflow_id, optional keys)``, its args skipped unbuilt.

    The optional keys are every top-level key but ``args`` and ``workflow_id`` (``trace``,
    ``seq``, ``pub`` ...), decoded without markers. A subscriber's `prefix` is stripped; a
    leading topic string is skipped. Never raises: ``("", {})`` for a frame that is not
    such an envelope.
    """
    if prefix and frame.startswith(prefix):
        frame = frame[len(prefix) :]
    for skip_topic in (False, True):
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(frame), 1))
        unpacker.feed(frame)
        try:
            if skip_topic and not isinstance(unpacker.unpack(), str):
                break
            headers: dict[str, Any] = {}
            workflow_id: Any = ""
            for _ in range(unpacker.read_map_header()):
                key = unpacker.unpack()
                if key == "args":
                    unpacker.skip()
                elif key == "workflow_id":
                    workflow_id = unpacker.unpack()
                elif isinstance(key, str):
                    headers[key] = unpacker.unpack()
                else:
                    unpacker.skip()
        except (ValueError, TypeError, RecursionError, msgpack.UnpackException):
            continue
        return (workflow_id if isinstance(workflow_id, str) else ""), headers
    return "", {}
