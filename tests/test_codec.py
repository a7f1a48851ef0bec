"""The wire format of DESIGN.md section 4: markers, envelopes, errors, topic framing."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zmqservice import DecodeError, codec, peek
from zmqservice.log import PEER_TEXT_LIMIT

ID = UUID("12345678-1234-5678-1234-567812345678")
PROPERTY = settings(database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


# -- markers --------------------------------------------------------------------------------


def test_decimal_is_encoded_as_the_predecessor_marker() -> None:
    assert codec.encode(Decimal("1.50")) == packb({"__decimal__": True, "as_str": "1.50"})


def test_set_is_encoded_as_the_predecessor_marker() -> None:
    assert codec.encode({"a"}) == packb({"__set__": True, "value": ["a"]})


def test_frozenset_is_encoded_as_a_set_marker() -> None:
    assert codec.encode(frozenset([1])) == packb({"__set__": True, "value": [1]})


def test_uuid_is_encoded_as_the_predecessor_marker() -> None:
    assert codec.encode(ID) == packb({"__uuid__": True, "as_str": str(ID)})


def test_markers_are_encoded_inside_nested_data() -> None:
    value = {"order": {"price": Decimal("2"), "ids": [ID]}}
    assert codec.encode(value) == packb(
        {
            "order": {
                "price": {"__decimal__": True, "as_str": "2"},
                "ids": [{"__uuid__": True, "as_str": str(ID)}],
            }
        }
    )


def test_datetime_is_encoded_as_an_iso_string() -> None:
    assert codec.encode(dt.datetime(2024, 1, 2, 3, 4, 5)) == packb("2024-01-02T03:04:05")


def test_bytes_travel_as_msgpack_bin() -> None:
    assert codec.encode(b"\x00\xff") == b"\xc4\x02\x00\xff"


def test_encode_rejects_a_type_the_wire_cannot_carry() -> None:
    with pytest.raises(TypeError, match="cannot encode object"):
        codec.encode(object())


@pytest.mark.parametrize(
    ("marker", "native"),
    [
        ({"__decimal__": True, "as_str": "1.50"}, Decimal("1.50")),
        ({"__uuid__": True, "as_str": str(ID)}, ID),
        ({"__set__": True, "value": [1, 2]}, {1, 2}),
    ],
    ids=["decimal", "uuid", "set"],
)
def test_predecessor_markers_decode_to_native_values(marker: dict[str, Any], native: Any) -> None:
    decoded = codec.decode(packb({"x": [marker]}))
    assert decoded == {"x": [native]}
    assert type(decoded["x"][0]) is type(native)


def test_decoded_decimal_keeps_its_exponent() -> None:
    assert str(codec.decode(codec.encode(Decimal("1.50")))) == "1.50"


def test_a_user_map_that_only_looks_like_a_marker_stays_a_map() -> None:
    value = {"__decimal__": True, "note": "not a marker"}
    assert codec.decode(codec.encode(value)) == value


# -- decode errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",
        packb({"args": [1, 2, 3], "workflow_id": "W"})[:-1],
        packb(1) + packb(2),
        b"\x91" * 100_000,
    ],
    ids=["empty", "reserved-byte", "truncated", "two-values", "deep-truncated"],
)
def test_decode_rejects_bad_bytes(frame: bytes) -> None:
    with pytest.raises(DecodeError, match="not a msgpack message"):
        codec.decode(frame)


@pytest.mark.parametrize(
    "marker",
    [
        {"__decimal__": True, "as_str": "one"},
        {"__decimal__": True, "as_str": None},
        {"__uuid__": True, "as_str": "nope"},
        {"__uuid__": True, "as_str": 5},
        {"__uuid__": True, "as_str": [1]},
        {"__set__": True, "value": [[1]]},
        {"__set__": True, "value": 3},
    ],
    ids=[
        "decimal-text",
        "decimal-none",
        "uuid-text",
        "uuid-int",
        "uuid-list",
        "set-unhashable",
        "set-int",
    ],
)
def test_decode_rejects_a_broken_marker(marker: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        codec.decode(packb(marker))


def test_decode_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        codec.decode(b"\xc1")


# -- request envelopes ----------------------------------------------------------------------


def test_request_envelope_matches_the_predecessor_bytes() -> None:
    assert codec.encode_request({"order_id": "A1"}, "W") == packb(
        {"args": {"order_id": "A1"}, "workflow_id": "W"}
    )


def test_decode_request_returns_args_and_workflow_id() -> None:
    frame = packb({"args": {"order_id": "A1"}, "workflow_id": "W"})
    assert codec.decode_request(frame) == ({"order_id": "A1"}, "W")


def test_decode_request_accepts_a_uuid_marker_workflow_id_as_str() -> None:
    frame = packb({"args": 1, "workflow_id": {"__uuid__": True, "as_str": str(ID)}})
    assert codec.decode_request(frame) == (1, str(ID))


def test_decode_request_without_workflow_id_gives_an_empty_one() -> None:
    assert codec.decode_request(packb({"args": 1})) == (1, "")


def test_decode_request_rejects_a_non_string_workflow_id() -> None:
    with pytest.raises(DecodeError, match="workflow_id must be a string, got int"):
        codec.decode_request(packb({"args": 1, "workflow_id": 7}))


@pytest.mark.parametrize("envelope", [[1, 2], "args", 5, None, {"workflow_id": "W"}], ids=str)
def test_decode_request_rejects_a_non_envelope(envelope: Any) -> None:
    with pytest.raises(DecodeError, match="not a request envelope"):
        codec.decode_request(packb(envelope))


def test_decode_request_rejects_bad_bytes() -> None:
    with pytest.raises(DecodeError):
        codec.decode_request(b"\xc1")


# -- reply envelopes ------------------------------------------------------------------------


def test_reply_envelope_matches_the_predecessor_bytes() -> None:
    assert codec.encode_reply({"ok": True}, "W") == packb(
        {"return_args": {"ok": True}, "workflow_id": "W"}
    )


def test_error_reply_carries_type_and_message() -> None:
    assert codec.encode_error("HandlerError", "boom", "W") == packb(
        {
            "return_args": None,
            "workflow_id": "W",
            "error": {"type": "HandlerError", "message": "boom"},
        }
    )


def test_decode_reply_returns_the_return_args_and_no_error() -> None:
    assert codec.decode_reply(codec.encode_reply([Decimal("1")], "W")) == ([Decimal("1")], None)


def test_decode_reply_returns_the_error() -> None:
    frame = codec.encode_error("ValidationError", "bad qty", "W")
    assert codec.decode_reply(frame) == (None, {"type": "ValidationError", "message": "bad qty"})


def test_decode_reply_reports_a_malformed_error_as_remote_error() -> None:
    frame = packb({"return_args": None, "workflow_id": "W", "error": "oops"})
    assert codec.decode_reply(frame) == (None, {"type": "RemoteError", "message": "'oops'"})


def test_decode_reply_rejects_a_non_map() -> None:
    with pytest.raises(DecodeError, match="not a reply envelope: got list"):
        codec.decode_reply(packb([1]))


# -- topic framing --------------------------------------------------------------------------


def test_topic_prefix_is_the_packed_topic() -> None:
    assert codec.topic_prefix("orders") == packb("orders")


def test_no_topic_has_an_empty_prefix() -> None:
    assert codec.topic_prefix("") == b""


def test_published_frame_is_packed_topic_then_packed_envelope() -> None:
    frame = codec.topic_prefix("orders") + codec.encode_request({"id": 1}, "W")
    assert frame == packb("orders") + packb({"args": {"id": 1}, "workflow_id": "W"})


def test_subscriber_with_a_topic_strips_it() -> None:
    frame = packb("orders") + packb({"args": {"id": 1}, "workflow_id": "W"})
    assert codec.decode_published(frame, packb("orders")) == ({"id": 1}, "W")


def test_subscriber_with_a_topic_rejects_another_topic() -> None:
    frame = packb("fills") + packb({"args": 1, "workflow_id": "W"})
    with pytest.raises(DecodeError, match="subscribed topic"):
        codec.decode_published(frame, packb("orders"))


def test_subscriber_without_a_topic_decodes_a_topic_frame() -> None:
    frame = packb("orders") + packb({"args": {"id": 1}, "workflow_id": "W"})
    assert codec.decode_published(frame, b"") == ({"id": 1}, "W")


def test_subscriber_without_a_topic_decodes_an_untopiced_frame() -> None:
    frame = packb({"args": {"id": 1}, "workflow_id": "W"})
    assert codec.decode_published(frame, b"") == ({"id": 1}, "W")


def test_subscriber_without_a_topic_rejects_garbage_after_a_topic() -> None:
    with pytest.raises(DecodeError):
        codec.decode_published(packb("orders") + b"\xc1", b"")


# -- properties -----------------------------------------------------------------------------

ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=False)
decimals = st.decimals(allow_nan=False, allow_infinity=False)
hashables = st.one_of(
    st.none(), st.booleans(), ints, floats, st.text(), st.binary(), decimals, st.uuids()
)
leaves = hashables | st.sets(hashables, max_size=5) | st.frozensets(hashables, max_size=3)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)


@PROPERTY
@given(values)
def test_decode_inverts_encode(value: Any) -> None:
    assert codec.decode(codec.encode(value)) == value


@PROPERTY
@given(values, st.text())
def test_request_envelope_round_trips(args: Any, workflow_id: str) -> None:
    assert codec.decode_request(codec.encode_request(args, workflow_id)) == (args, workflow_id)


@PROPERTY
@given(values, st.text(min_size=1))
def test_published_frame_round_trips_with_and_without_a_subscribed_topic(
    args: Any, topic: str
) -> None:
    frame = codec.topic_prefix(topic) + codec.encode_request(args, "W")
    assert codec.decode_published(frame, codec.topic_prefix(topic)) == (args, "W")
    assert codec.decode_published(frame, b"") == (args, "W")


@PROPERTY
@given(st.binary())
@example(packb({"__uuid__": True, "as_str": 5}))
@example(packb({"__decimal__": True, "as_str": [1]}))
@example(packb({"__set__": True, "value": None}))
@example(packb({1: 2}))
def test_decoding_any_bytes_returns_a_value_or_raises_decode_error(frame: bytes) -> None:
    with contextlib.suppress(DecodeError):
        codec.decode(frame)


@PROPERTY
@given(st.binary())
@example(packb({"args": 1, "workflow_id": {"__uuid__": True, "as_str": 5}}))
@example(packb({"args": 1, "workflow_id": [1]}))
def test_decoding_any_bytes_as_an_envelope_raises_only_decode_error(frame: bytes) -> None:
    for decode in (
        codec.decode_request,
        codec.decode_reply,
        lambda f: codec.decode_published(f, b""),
        lambda f: codec.decode_published(f, packb("t")),
    ):
        with contextlib.suppress(DecodeError):
            decode(frame)


# -- is_reply_to: the top-level workflow_id, exactly ------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        packb({"workflow_id": "X_2", "return_args": {"workflow_id": "X_1"}}),
        packb({"workflow_id": "X_2", "return_args": ["workflow_id", "X_1"]}),
        packb({"return_args": 1, "workflow_id": {"workflow_id": "X_1"}}),
        packb({"return_args": 1, "workflow_id": b"\xabworkflow_id\xa3X_1"}),
        packb({"workflow_id": "X_2", "error": {"type": "E", "workflow_id": "X_1"}}),
        # A map with the key twice: decoding keeps the last, and so does the check.
        b"\x82" + packb("workflow_id") + packb("X_1") + packb("workflow_id") + packb("X_2"),
    ],
    ids=["nested-map", "nested-list", "id-is-a-map", "id-is-bytes", "in-error", "twice"],
)
def test_is_reply_to_refuses_a_reply_that_only_ends_with_the_callers_id(reply: bytes) -> None:
    assert reply.endswith(packb("workflow_id") + packb("X_1")) or b"X_1" in reply
    assert peek.is_reply_to(reply, "X_1") is False


@pytest.mark.parametrize(
    "reply",
    [
        codec.encode_reply({"a": 1}, "X_1") + b"\x00",  # trailing bytes: not one value
        codec.encode_reply({"a": 1}, "X_1")[:-1],  # truncated
        b"\x82" + packb("workflow_id"),
    ],
)
def test_is_reply_to_takes_a_broken_reply_so_the_caller_sees_the_decode_error(
    reply: bytes,
) -> None:
    with pytest.raises(DecodeError):
        codec.decode_reply(reply)
    assert peek.is_reply_to(reply, "X_1") is True


ids = st.sampled_from(["X_1", "X_2", "X_11", "", "X"]) | st.just(ID) | st.none()
forged = st.fixed_dictionaries({"workflow_id": ids}) | st.tuples(st.just("workflow_id"), ids)


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(["return_args", "workflow_id", "error", "x"]),
        values | ids | forged | st.lists(forged, max_size=2),
        max_size=4,
    )
)
def test_is_reply_to_agrees_with_the_decoded_envelope(envelope: dict[str, Any]) -> None:
    frame = codec.encode(envelope)
    decoded = codec.decode(frame)
    echoed = decoded.get("workflow_id")
    expected = echoed is None or echoed == "" or str(echoed) == "X_1"
    if not isinstance(echoed, (str, UUID, type(None))):
        expected = False
    assert peek.is_reply_to(frame, "X_1") is expected


@PROPERTY
@given(st.binary())
def test_is_reply_to_takes_any_bytes(frame: bytes) -> None:
    assert peek.is_reply_to(frame, "X_1") in (True, False)


def test_an_error_reply_is_escaped_and_bounded_both_ways() -> None:
    sent = codec.encode_error("ValidationError", "bad key\nCRITICAL forged " + "k" * 10**6, "w")
    assert len(sent) < 2 * PEER_TEXT_LIMIT
    # A peer that is not zmqservice may send anything: the requester's side bounds it too.
    error = {"type": "X\nY", "message": "a\n" * 10**6}
    raw = packb({"return_args": None, "workflow_id": "w", "error": error})
    _, got = codec.decode_reply(raw)
    assert got is not None
    assert got["type"] == "X\\nY"
    assert "\n" not in got["message"]
    assert len(got["message"]) <= PEER_TEXT_LIMIT
