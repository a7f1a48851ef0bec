"""The wire format: msgpack envelopes, predecessor markers and topic framing.

Byte-compatible with `service-framework` 0.0.20 in both directions:

- request ``{"args": ..., "workflow_id": str}``; reply ``{"return_args": ..., "workflow_id": str}``
  plus ``"error": {"type": ..., "message": ...}`` when it failed;
- ``Decimal``, ``set`` and ``UUID`` travel as ``{"__decimal__": True, "as_str": ...}``,
  ``{"__set__": True, "value": [...]}`` and ``{"__uuid__": True, "as_str": ...}``;
- pub/sub frames are ``packb(topic) + packb(envelope)`` (no topic: ``packb(envelope)``).
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

import msgpack

from .errors import DecodeError
from .log import peer_text

__all__ = [
    "decode",
    "decode_publication",
    "decode_published",
    "decode_reply",
    "decode_request",
    "encode",
    "encode_error",
    "encode_published",
    "encode_reply",
    "encode_request",
    "split_published",
    "split_topic",
    "topic_label",
    "topic_prefix",
]


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return {"__decimal__": True, "as_str": str(obj)}
    if isinstance(obj, (set, frozenset)):
        return {"__set__": True, "value": list(obj)}
    if isinstance(obj, UUID):
        return {"__uuid__": True, "as_str": str(obj)}
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    raise TypeError(f"cannot encode {type(obj).__name__} for the wire")


def marker_hook(obj: dict[Any, Any]) -> Any:
    """Turn one decoded map that is a predecessor marker into its value (json/msgpack hook)."""
    # Only the exact two-key marker shapes: a user map that merely has a marker key stays a map.
    if len(obj) == 2:
        if "__decimal__" in obj and "as_str" in obj:
            return Decimal(obj["as_str"])
        if "__uuid__" in obj and "as_str" in obj:
            if not isinstance(obj["as_str"], str):
                raise TypeError("a UUID marker's as_str must be a string")
            return UUID(obj["as_str"])
        if "__set__" in obj and "value" in obj:
            return set(obj["value"])
    return obj


_local = threading.local()


def _new_packer() -> Any:
    packer = msgpack.Packer(default=_default, use_bin_type=True)
    _local.packer = packer
    return packer


def encode(obj: Any) -> bytes:
    """Pack any value msgpack can carry, with the predecessor's markers."""
    # One Packer per thread: reusing it halves the cost of packb, and a Packer must not be
    # shared between threads (its `default` callback can let another thread in mid-pack).
    try:
        packer = _local.packer
    except AttributeError:
        packer = _new_packer()
    return packer.pack(obj)  # type: ignore[no-any-return]


def decode(frame: bytes) -> Any:
    """Unpack one msgpack value, turning markers back into `Decimal`, `UUID` and `set`.

    Raises:
        DecodeError: for anything that is not exactly one valid msgpack value.
    """
    # Every marker key starts with "__": without those bytes the hook cannot fire, so skip
    # its per-map Python call.
    try:
        hook = marker_hook if b"__" in frame else None
        return msgpack.unpackb(frame, object_hook=hook, raw=False)
    except (ValueError, TypeError, KeyError, InvalidOperation, msgpack.UnpackException) as exc:
        raise DecodeError(f"not a msgpack message: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise DecodeError("not a msgpack message: nested too deeply") from None


def _workflow_id(envelope: dict[Any, Any]) -> str:
    workflow_id = envelope.get("workflow_id")
    if isinstance(workflow_id, str):
        return workflow_id
    if isinstance(workflow_id, UUID):  # the predecessor's main mode sends a UUID marker
        return str(workflow_id)
    if workflow_id is None:
        return ""
    raise DecodeError(f"workflow_id must be a string, got {type(workflow_id).__name__}")


def encode_request(args: Any, workflow_id: str) -> bytes:
    """Pack a request (and pub/sub) envelope."""
    return encode({"args": args, "workflow_id": workflow_id})


def encode_request_with(args: Any, workflow_id: str, headers: dict[str, Any]) -> bytes:
    """`encode_request` with optional envelope keys (`headers`; ``trace``, say) added."""
    return encode({**headers, "args": args, "workflow_id": workflow_id})


DESCRIBE_KEY = "_describe"
"""Envelope key of the built-in describe request:
``{"args": None, "workflow_id": ..., "_describe": True}``."""


class DescribeRequest(DecodeError):
    """Raised by `decode_request` for the built-in describe request, which has no handler.

    Replyers answer it; everywhere else (subscribers, tools) it is just an invalid message.
    """

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id


def decode_request(frame: bytes) -> tuple[Any, str]:
    """Unpack a request envelope into `(args, workflow_id)`.

    Raises:
        DecodeError: bad bytes, or not a ``{"args": ..., "workflow_id": ...}`` map.
    """
    envelope = decode(frame)
    if type(envelope) is not dict or "args" not in envelope:
        raise DecodeError(
            'not a request envelope: expected a map with "args" and "workflow_id", '
            f"got {type(envelope).__name__}"
        )
    workflow_id = envelope.get("workflow_id")
    if type(workflow_id) is not str:
        workflow_id = _workflow_id(envelope)
    if DESCRIBE_KEY in envelope:
        raise DescribeRequest(workflow_id)
    return envelope["args"], workflow_id


def encode_reply(return_args: Any, workflow_id: str) -> bytes:
    """Pack a successful reply."""
    return encode({"return_args": return_args, "workflow_id": workflow_id})


def encode_error(error_type: str, message: str, workflow_id: str) -> bytes:
    """Pack an error reply; `error_type` is ValidationError, HandlerError or DecodeError.

    The message often quotes what a peer sent (field names, values): it is escaped and
    bounded by `log.peer_text`, so one reply stays small and prints as one line.
    """
    return encode(
        {
            "return_args": None,
            "workflow_id": workflow_id,
            "error": {"type": error_type, "message": peer_text(message)},
        }
    )


def decode_reply(frame: bytes) -> tuple[Any, dict[str, str] | None]:
    """Unpack a reply into `(return_args, error)`; `error` is None on success.

    Raises:
        DecodeError: bad bytes or not a reply envelope.
    """
    envelope = decode(frame)
    if type(envelope) is not dict:
        raise DecodeError(f"not a reply envelope: got {type(envelope).__name__}")
    error = envelope.get("error")
    if error is not None:  # its text is the peer's: escaped and bounded (`log.peer_text`)
        if not isinstance(error, dict):
            error = {"type": "RemoteError", "message": repr(error)}
        return None, {
            "type": peer_text(str(error.get("type", "RemoteError"))),
            "message": peer_text(str(error.get("message", ""))),
        }
    return envelope.get("return_args"), None


def topic_prefix(topic: str) -> bytes:
    """The bytes a published frame starts with, and a subscriber subscribes to."""
    return encode(topic) if topic else b""


def topic_label(prefix: bytes) -> str:
    """How a subscription prefix reads: ``'BTC'``, ``(every topic)`` or its hex bytes."""
    if not prefix:
        return "(every topic)"
    try:
        topic = msgpack.unpackb(prefix, raw=False)
    except Exception:
        return prefix.hex()
    return repr(topic) if isinstance(topic, str) else prefix.hex()


def encode_published(args: Any, workflow_id: str, pub: str, seq: int) -> bytes:
    """Pack a pub/sub envelope: the request envelope plus the publisher's id and a number.

    `pub` is random per publisher socket, `seq` counts 1, 2, 3 ... on it, so a subscriber
    can count the messages it missed. Peers that do not know the keys ignore them.
    """
    return encode({"args": args, "workflow_id": workflow_id, "seq": seq, "pub": pub})


def encode_published_with(
    args: Any, workflow_id: str, pub: str, seq: int, headers: dict[str, Any]
) -> bytes:
    """`encode_published` with optional envelope keys (`headers`) added."""
    return encode({**headers, "args": args, "workflow_id": workflow_id, "seq": seq, "pub": pub})


def split_topic(frame: bytes) -> tuple[str, Any]:
    """Decode a pub/sub frame whose topic is not known: ``(topic or "", envelope)``.

    A frame is ``packb(envelope)`` or ``packb(topic) + packb(envelope)``; a leading topic
    string is split off, so a subscriber without a topic hears every topic.

    Raises:
        DecodeError: neither shape.
    """
    try:
        return "", decode(frame)
    except DecodeError:
        try:
            msgpack.unpackb(frame, raw=False)
        except msgpack.ExtraData as extra:
            if isinstance(extra.unpacked, str):
                return extra.unpacked, decode(extra.extra)
        except Exception:
            pass
        raise


def decode_publication(frame: bytes, prefix: bytes) -> tuple[Any, str, Any, Any]:
    """Unpack a pub/sub frame into `(args, workflow_id, pub, seq)`.

    `pub` and `seq` are what the publisher put there (None from a publisher that does not
    number its messages, such as the predecessor); the caller checks their types.
    With a `prefix` (the subscriber's topic) it is stripped; with none, a leading topic
    string the publisher added is skipped, so an unfiltered subscriber hears every topic.

    Raises:
        DecodeError: bad bytes, another topic, or not a ``{"args": ...}`` map.
    """
    if prefix:
        if not frame.startswith(prefix):
            raise DecodeError("published frame does not start with the subscribed topic")
        envelope = decode(frame[len(prefix) :])
    else:
        try:
            envelope = decode(frame)
        except DecodeError:  # a topic in front: rare, and this path may decode twice
            envelope = split_topic(frame)[1]
    # The same checks as decode_request, written out again: a helper call would cost every
    # published message ~0.06 µs, and pub/sub is the tightest path (see bench/).
    if type(envelope) is not dict or "args" not in envelope:
        raise DecodeError(
            'not a published envelope: expected a map with "args" and "workflow_id", '
            f"got {type(envelope).__name__}"
        )
    workflow_id = envelope.get("workflow_id")
    if type(workflow_id) is not str:
        workflow_id = _workflow_id(envelope)
    if DESCRIBE_KEY in envelope:
        raise DescribeRequest(workflow_id)
    return envelope["args"], workflow_id, envelope.get("pub"), envelope.get("seq")


def split_published(frame: bytes, prefix: bytes = b"") -> tuple[str, Any, str]:
    """Split a pub/sub frame into ``(topic, args, workflow_id)`` (the ``listen`` view).

    Raises:
        DecodeError: not a published envelope (with or without a leading topic).
    """
    args, workflow_id, _, _ = decode_publication(frame, prefix)
    topic = decode(prefix) if prefix else split_topic(frame)[0]
    return str(topic), args, workflow_id


def decode_published(frame: bytes, prefix: bytes) -> tuple[Any, str]:
    """Unpack a pub/sub frame into `(args, workflow_id)`; see `decode_publication`."""
    args, workflow_id, _, _ = decode_publication(frame, prefix)
    return args, workflow_id
