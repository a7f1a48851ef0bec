"""The IO-free side of reliability: per-call request options, size limits, sequence numbers
and error replies for anything a peer can send (``connection.py``, ``stats.py``, ``inbound.py``)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zmqservice import App, codec, peek
from zmqservice.connection import DEFAULT_MAX_MESSAGE_SIZE, Connection, hard_limit, message_limit
from zmqservice.dispatch import Dispatcher
from zmqservice.sending import DEFAULT, call_target
from zmqservice.stats import MAX_GAP, MAX_PUBLISHER_ID, MAX_PUBLISHERS

PROPERTY = settings(database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def packb(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


class Recorder:
    """An `Outbound` that records what it was asked, options included."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any, Any]] = []
        self.published: list[bytes] = []

    def request(
        self,
        conn: Connection,
        frame: bytes,
        workflow_id: str = "",
        timeout: Any = DEFAULT,
        retries: Any = DEFAULT,
    ) -> bytes:
        self.requests.append((conn.name, workflow_id, timeout, retries))
        return codec.encode_reply({"ok": True}, workflow_id)

    def publish(self, conn: Connection, frame: bytes) -> None:
        self.published.append(frame)

    def call(self, conn: Connection, target: Any, args: Any) -> Any:
        return call_target(target, args)


def client_app() -> App:
    app = App("demo")
    app.requester("quote", returns={"ok": bool}, timeout=2.0, retries=1)
    app.requester("patient", returns={"ok": bool})
    app.publisher("ticks", topic="ticks")
    return app


# -- per-call timeout= and retries= ---------------------------------------------------------


def test_to_send_passes_the_connection_defaults_and_the_workflow_id() -> None:
    outbound = Recorder()
    to_send = Dispatcher(client_app(), None, outbound).root_sender

    assert to_send("quote", {"x": 1}) == {"ok": True}
    assert to_send("patient", {"x": 1}) == {"ok": True}

    root = to_send.workflow_id
    assert outbound.requests == [
        ("quote", f"{root}_1", 2.0, 1),
        ("patient", f"{root}_2", None, 0),
    ]


def test_to_send_overrides_timeout_and_retries_for_one_call() -> None:
    outbound = Recorder()
    to_send = Dispatcher(client_app(), None, outbound).root_sender

    to_send("quote", {}, timeout=0.005)
    to_send("quote", {}, retries=3)
    to_send("quote", {}, timeout=None, retries=0)  # None: wait for ever, this once
    to_send("quote", {})

    assert [(t, r) for _, _, t, r in outbound.requests] == [
        (0.005, 1),
        (2.0, 3),
        (None, 0),
        (2.0, 1),
    ]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"timeout": 0}, ["in", "out.quote", "timeout", "0"]),
        ({"timeout": -1.5}, ["timeout", "-1.5"]),
        ({"timeout": float("nan")}, ["timeout"]),
        ({"timeout": float("inf")}, ["timeout"]),
        ({"timeout": "1"}, ["timeout", "'1'"]),
        ({"timeout": True}, ["timeout", "True"]),
        ({"retries": -1}, ["retries", "-1"]),
        ({"retries": 1.0}, ["retries", "1.0"]),
    ],
)
def test_bad_per_call_options_raise_value_error_naming_the_connection(
    options: dict[str, Any], words: list[str]
) -> None:
    outbound = Recorder()
    to_send = Dispatcher(client_app(), None, outbound).root_sender

    with pytest.raises(ValueError) as caught:
        to_send("quote", {}, **options)

    assert "out.quote (requester)" in str(caught.value)
    for word in words[1:]:
        assert word in str(caught.value)
    assert outbound.requests == []


def test_per_call_options_on_a_publisher_raise_type_error() -> None:
    to_send = Dispatcher(client_app(), None, Recorder()).root_sender

    with pytest.raises(TypeError, match=r"out\.ticks \(publisher\): timeout= and retries= apply"):
        to_send("ticks", {}, timeout=1.0)


def test_per_call_options_on_an_unknown_name_name_it() -> None:
    to_send = Dispatcher(client_app(), None, Recorder()).root_sender

    with pytest.raises(ValueError, match="no out-connection named 'nope'"):
        to_send("nope", {}, timeout=1.0)


def test_test_client_send_accepts_and_checks_per_call_options() -> None:
    client = client_app().test_client()
    client.stub("quote", {"ok": True})

    assert client.send("quote", {}, timeout=0.01, retries=0) == {"ok": True}
    with pytest.raises(ValueError, match="timeout"):
        client.send("quote", {}, timeout=-1)
    assert client.sent["quote"] == [{}]


def test_inline_services_send_accepts_per_call_options() -> None:
    from zmqservice import InlineServices

    server = App("demo")

    @server.replyer("quote")
    def quote(args: Any) -> Any:
        return {"ok": True}

    inline = InlineServices()
    inline.add_service("client", client_app())
    inline.add_service("server", server)
    inline.add_relation("client", "quote", "server", "quote")

    assert inline.send("client", "quote", {}, timeout=0.5, retries=0) == {"ok": True}
    with pytest.raises(ValueError, match="retries"):
        inline.send("client", "quote", {}, retries=-1)


def test_a_handler_passes_per_call_options_through_its_to_send() -> None:
    app = client_app()

    @app.replyer("front")
    def front(args: Any, to_send: Any) -> Any:
        return to_send("quote", args, timeout=0.25, retries=0)

    outbound = Recorder()
    reply = Dispatcher(app, None, outbound).replier(app.connections["front"])(
        codec.encode_request({}, "W")
    )

    assert codec.decode_reply(reply) == ({"ok": True}, None)
    assert outbound.requests == [("quote", "W_1", 0.25, 0)]


# -- is_reply_to: which replies a requester takes -------------------------------------------


@pytest.mark.parametrize(
    ("reply", "taken"),
    [
        (codec.encode_reply({"a": 1}, "X_1"), True),
        (codec.encode_error("HandlerError", "boom", "X_1"), True),
        (packb({"workflow_id": "X_1", "return_args": 5}), True),  # another key order
        (codec.encode_reply({"a": 1}, "X_2"), False),  # stale: another request's
        (codec.encode_reply({"a": 1}, "X_11"), False),
        (codec.encode_error("DecodeError", "over the limit", ""), True),  # could not read it
        (packb({"return_args": 5}), True),  # a peer that does not echo ids
        (b"\xc1 not msgpack", True),  # taken, so the caller sees the DecodeError
        (packb([1, 2]), True),
    ],
)
def test_is_reply_to(reply: bytes, taken: bool) -> None:
    assert peek.is_reply_to(reply, "X_1") is taken


def test_is_reply_to_matches_a_uuid_marker_echo() -> None:
    uuid = "5a0e3c52-3a8e-4f7a-9d0f-6f1f4e3c2b1a"
    reply = packb({"return_args": 5, "workflow_id": {"__uuid__": True, "as_str": uuid}})
    assert peek.is_reply_to(reply, uuid)


# -- size limits ----------------------------------------------------------------------------


def limited_app(app_limit: Any = DEFAULT_MAX_MESSAGE_SIZE, own: int | None = None) -> App:
    app = App("demo", max_message_size=app_limit)
    calls: list[Any] = []
    app.calls = calls  # type: ignore[attr-defined]

    @app.replyer("echo", max_message_size=own)
    def echo(args: Any) -> Any:
        calls.append(args)
        return len(args)

    @app.subscriber("feed", max_message_size=own)
    def feed(args: Any) -> None:
        calls.append(args)

    return app


def test_the_default_limit_is_one_mebibyte_and_the_hard_cap_sixteen_times_that() -> None:
    app = limited_app()
    assert app.max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 1 << 20
    assert message_limit(app, app.connections["echo"]) == 1 << 20
    assert hard_limit(1 << 20) == 16 << 20
    assert hard_limit(None) == -1  # libzmq's "no limit"


def test_a_connection_limit_overrides_the_app_limit() -> None:
    app = limited_app(app_limit=None, own=100)
    assert message_limit(app, app.connections["echo"]) == 100
    assert message_limit(limited_app(app_limit=None), app.connections["echo"]) == 100
    assert message_limit(limited_app(app_limit=None), limited_app().connections["echo"]) is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_a_bad_limit_is_refused_at_declaration(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_message_size must be a positive int"):
        App("demo", max_message_size=bad)
    app = App("demo")
    with pytest.raises(ValueError, match="replyer 'echo': max_message_size"):
        app.replyer("echo", max_message_size=bad)
    with pytest.raises(ValueError, match="subscriber 'feed': max_message_size"):
        app.subscriber("feed", max_message_size=bad)


def test_a_replyer_refuses_a_request_over_the_limit_unread() -> None:
    app = limited_app(own=64)
    replier = Dispatcher(app, None, Recorder()).replier(app.connections["echo"])
    big = codec.encode_request("x" * 100, "W-big")

    reply = msgpack.unpackb(replier(big))

    assert reply["workflow_id"] == ""  # it was not read, so its id is unknown
    assert reply["error"]["type"] == "DecodeError"
    message = reply["error"]["message"]
    assert "in.echo (replyer)" in message
    assert f"{len(big)} bytes" in message
    assert "limit of 64 bytes" in message
    assert "max_message_size" in message
    assert app.calls == []  # type: ignore[attr-defined]
    small = msgpack.unpackb(replier(codec.encode_request("x" * 10, "W-ok")))
    assert small == {"return_args": 10, "workflow_id": "W-ok"}


def test_with_no_limit_a_big_request_is_served() -> None:
    app = limited_app(app_limit=None)
    replier = Dispatcher(app, None, Recorder()).replier(app.connections["echo"])
    reply = msgpack.unpackb(replier(codec.encode_request("x" * (2 << 20), "W")))
    assert reply == {"return_args": 2 << 20, "workflow_id": "W"}


def test_a_subscriber_drops_a_message_over_the_limit_and_counts_it() -> None:
    app = limited_app(own=64)
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])

    error = receive(codec.encode_request("x" * 100, "W"))

    assert error is not None and "limit of 64 bytes" in str(error)
    assert receive(codec.encode_request("x", "W")) is None
    assert app.calls == ["x"]  # type: ignore[attr-defined]
    stats = dispatcher.stats["feed"]
    assert (stats.received, stats.dropped) == (2, 1)


# -- what a replyer does with anything a peer sends -----------------------------------------

MALFORMED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("never used byte", b"\xc1"),
    ("truncated", packb({"args": {"a": 1}, "workflow_id": "w"})[:-2]),
    ("trailing bytes", packb({"args": 1, "workflow_id": "w"}) + b"\x00"),
    ("str32 of 4 GiB", b"\xdb\xff\xff\xff\xff"),
    ("bin32 of 4 GiB", b"\xc6\xff\xff\xff\xff"),
    ("array32 of 4G items", b"\xdd\xff\xff\xff\xff"),
    ("map32 of 4G pairs", b"\xdf\xff\xff\xff\xff"),
    ("ext32 of 4 GiB", b"\xc9\xff\xff\xff\xff\x01"),
    ("arrays 100,000 deep", b"\x91" * 100_000),
    ("maps 50,000 deep", b"\x81\xa1k" * 50_000),
    ("a list", packb([1, 2, 3])),
    ("a string", packb("args")),
    ("nil", packb(None)),
    ("no args key", packb({"workflow_id": "w"})),
    ("int map key", b"\x81\x01\x02"),
    ("int workflow_id", packb({"args": 1, "workflow_id": 7})),
    ("broken uuid marker", packb({"args": {"__uuid__": True, "as_str": "nope"}})),
    ("broken set marker", packb({"args": {"__set__": True, "value": [[1]]}})),
    ("bad timestamp", b"\x82\xa4args\xc7\x03\xff\x00\x00\x00\xabworkflow_id\xa1w"),
]


@pytest.mark.parametrize("frame", [f for _, f in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_a_malformed_request_gets_an_error_reply_and_no_handler_call(frame: bytes) -> None:
    app = limited_app()
    replier = Dispatcher(app, None, Recorder()).replier(app.connections["echo"])

    return_args, error = codec.decode_reply(replier(frame))

    assert error is not None
    assert error["type"] in ("DecodeError", "ValidationError")
    assert return_args is None
    assert app.calls == []  # type: ignore[attr-defined]


def test_args_nested_to_msgpacks_limit_get_a_reply_not_an_exception() -> None:
    # 1,000 levels decode (msgpack stops at 1,024): deeper than Python's recursion limit.
    app = App("demo")

    @app.replyer("echo")
    def echo(args: Any) -> Any:
        return args

    @app.replyer("typed", args={"a": list[int]})
    def typed(args: Any) -> Any:
        return None

    dispatcher = Dispatcher(app, None, Recorder())
    deep = b"\x82\xa4args" + b"\x91" * 1000 + b"\xc0" + b"\xabworkflow_id\xa1w"
    echoed, _ = codec.decode_reply(dispatcher.replier(app.connections["echo"])(deep))
    for _ in range(1000):
        echoed = echoed[0]
    assert echoed is None
    _, error = codec.decode_reply(dispatcher.replier(app.connections["typed"])(deep))
    assert error is not None and error["type"] == "ValidationError"


def test_an_exception_that_cannot_be_printed_still_gets_a_handler_error_reply() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    app = App("demo")

    @app.replyer("bad")
    def bad(args: Any) -> Any:
        raise Unprintable

    replier = Dispatcher(app, None, Recorder()).replier(app.connections["bad"])
    _, error = codec.decode_reply(replier(codec.encode_request(1, "w")))
    assert error is not None and error["type"] == "HandlerError"


@PROPERTY
@given(st.binary(max_size=512))
@example(b"\x82\xa4args\x81\xa1a\x01\xabworkflow_id\xa1w")  # a valid request
@example(b"\x81\xa4args\xc0")
@example(b"\x82\xa4args\x01\xa9_describe\xc3")
def test_a_replyer_answers_any_bytes_with_a_reply_and_never_raises(frame: bytes) -> None:
    calls: list[Any] = []
    app = App("demo")

    @app.replyer("strict", args={"a": int}, returns={"a": int})
    def strict(args: Any) -> Any:
        calls.append(args)
        return args

    replier = Dispatcher(app, None, Recorder()).replier(app.connections["strict"])

    return_args, error = codec.decode_reply(replier(frame))

    if error is None:  # a valid request, or the built-in describe request
        assert calls == [return_args] or (calls == [] and "connections" in return_args)
    else:
        assert calls == []
        assert error["type"] in ("DecodeError", "ValidationError")


_plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@PROPERTY
@given(st.dictionaries(st.sampled_from(["args", "workflow_id", "_describe", "x"]), _plain))
def test_a_replyer_answers_any_envelope_shape_and_never_raises(envelope: dict[str, Any]) -> None:
    app = App("demo")

    @app.replyer("echo")
    def echo(args: Any) -> Any:
        return args

    replier = Dispatcher(app, None, Recorder()).replier(app.connections["echo"])
    codec.decode_reply(replier(packb(envelope)))  # decodes: a reply, whatever came in


@PROPERTY
@given(st.binary(max_size=512))
def test_a_subscriber_returns_an_error_for_any_bytes_and_never_raises(frame: bytes) -> None:
    app = limited_app()
    dispatcher = Dispatcher(app, None, Recorder())
    for receive in (
        dispatcher.receiver(app.connections["feed"]),
        Dispatcher(app, None, Recorder()).receiver(app.connections["feed"]),
    ):
        result = receive(frame)
        assert result is None or isinstance(result, Exception)


# -- sequence numbers -----------------------------------------------------------------------


def published(dispatcher: Dispatcher) -> list[dict[str, Any]]:
    outbound = dispatcher.outbound
    assert isinstance(outbound, Recorder)
    prefix = codec.topic_prefix("ticks")
    return [msgpack.unpackb(frame[len(prefix) :]) for frame in outbound.published]


def test_a_publisher_numbers_its_messages_from_one_with_one_random_id() -> None:
    dispatcher = Dispatcher(client_app(), None, Recorder())
    for n in range(3):
        dispatcher.root_sender("ticks", {"n": n})

    envelopes = published(dispatcher)
    pub = dispatcher.publisher_ids["ticks"]
    assert [e["seq"] for e in envelopes] == [1, 2, 3]
    assert {e["pub"] for e in envelopes} == {pub}
    assert len(pub) == 12
    assert [e["args"] for e in envelopes] == [{"n": 0}, {"n": 1}, {"n": 2}]
    # another run (a restart) is another publisher
    assert Dispatcher(client_app(), None, Recorder()).publisher_ids["ticks"] != pub


def test_numbers_go_out_in_order_when_eight_threads_publish() -> None:
    dispatcher = Dispatcher(client_app(), None, Recorder())

    def work() -> None:
        for n in range(500):
            dispatcher.root_sender("ticks", n)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)

    assert [e["seq"] for e in published(dispatcher)] == list(range(1, 4001))


def numbered(pub: str, seq: int, args: Any = 1) -> bytes:
    return codec.encode_published(args, "W", pub, seq)


def counting_app(got: list[Any]) -> App:
    app = App("demo")

    @app.subscriber("feed")
    def feed(args: Any) -> None:
        got.append(args)

    return app


def test_a_subscriber_counts_the_messages_missing_from_each_publisher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[Any] = []
    app = counting_app(got)
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    frames = [("A", 1), ("B", 7), ("A", 2), ("A", 4), ("B", 8), ("A", 5), ("A", 9), ("B", 9)]

    with caplog.at_level(logging.WARNING, logger="zmqservice"):
        for pub, seq in frames:
            assert receive(numbered(pub, seq, seq)) is None

    stats = dispatcher.stats["feed"]
    assert got == [seq for _, seq in frames]  # counted, never held back
    assert (stats.received, stats.missed, stats.gaps, stats.out_of_order) == (8, 4, 2, 0)
    assert stats.missed_by_publisher == {"A": 4}
    assert stats.last_seq == {"A": 9, "B": 9}
    # one warning, naming the publisher: the next ones wait a second (they are all counted)
    warnings = [r.getMessage() for r in caplog.records if "missed" in r.getMessage()]
    assert len(warnings) == 1
    assert (
        "in.feed (subscriber): missed 1 message(s) from publisher A (got #4 after #2)"
        in (warnings[0])
    )


def test_the_first_message_of_a_publisher_is_no_gap_so_a_restart_is_none() -> None:
    app = counting_app([])
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    for frame in [numbered("old", 41), numbered("old", 42), numbered("new", 1), numbered("new", 2)]:
        receive(frame)
    stats = dispatcher.stats["feed"]
    assert (stats.missed, stats.gaps) == (0, 0)
    assert stats.as_dict()["publishers"] == 2


def test_a_repeated_or_late_number_is_counted_out_of_order() -> None:
    app = counting_app([])
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    for seq in (1, 2, 2, 1, 3):
        receive(numbered("A", seq))
    stats = dispatcher.stats["feed"]
    assert (stats.out_of_order, stats.missed, stats.last_seq["A"]) == (2, 0, 3)


def test_a_forged_huge_number_is_a_reset_and_does_not_poison_later_counting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = counting_app([])
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    with caplog.at_level(logging.WARNING, logger="zmqservice"):
        for seq in [1, 2, 3, 2**64 - 1, 4, 5, 15, 16]:  # a forgery, then 9 really lost
            receive(numbered("A", seq))
    stats = dispatcher.stats["feed"]
    assert (stats.missed, stats.gaps, stats.out_of_order, stats.resets) == (9, 1, 0, 1)
    assert stats.last_seq["A"] == 16
    assert stats.missed_by_publisher == {"A": 9}
    assert any("a reset, not missed messages" in r.getMessage() for r in caplog.records)


def test_a_forged_number_below_counts_out_of_order_and_changes_nothing() -> None:
    app = counting_app([])
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    for seq in [10, 11, -(2**63), 12, 13, 20]:
        receive(numbered("A", seq))
    stats = dispatcher.stats["feed"]
    assert (stats.missed, stats.gaps, stats.out_of_order, stats.resets) == (6, 1, 1, 0)


def test_two_numbers_in_a_row_make_a_new_numbering_the_publishers() -> None:
    app = counting_app([])
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    jump = 5 + MAX_GAP + 1
    for seq in [4, 5, jump, jump + 1, jump + 2, jump + 4, 1, 2, 3]:
        receive(numbered("A", seq))
    stats = dispatcher.stats["feed"]
    # a gap of MAX_GAP + 1 is not believed alone; the next number confirms the new count,
    # and a restarted count under the same id (1, 2, 3) is followed the same way
    assert (stats.missed, stats.gaps, stats.resets, stats.out_of_order) == (1, 1, 1, 1)
    assert stats.last_seq["A"] == 3


def test_a_jump_of_max_gap_is_still_a_gap() -> None:
    app = counting_app([])
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    for seq in [1, 1 + MAX_GAP]:
        receive(numbered("A", seq))
    stats = dispatcher.stats["feed"]
    assert (stats.missed, stats.gaps, stats.resets) == (MAX_GAP - 1, 1, 0)


def test_a_long_publisher_id_is_not_remembered() -> None:
    app = counting_app([])
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    for seq in (1, 5):
        receive(numbered("p" * (MAX_PUBLISHER_ID + 1), seq))
        receive(numbered("q" * MAX_PUBLISHER_ID, seq))
    stats = dispatcher.stats["feed"]
    assert list(stats.last_seq) == ["q" * MAX_PUBLISHER_ID]
    assert stats.missed == 3


def test_unnumbered_or_oddly_numbered_messages_are_delivered_and_not_tracked() -> None:
    got: list[Any] = []
    app = counting_app(got)
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    frames = [
        codec.encode_request("predecessor", "W"),  # no seq/pub at all
        packb({"args": "float seq", "workflow_id": "W", "seq": 1.0, "pub": "A"}),
        packb({"args": "int pub", "workflow_id": "W", "seq": 1, "pub": 5}),
        packb({"args": "list pub", "workflow_id": "W", "seq": 1, "pub": [1]}),
        packb({"args": "bool seq", "workflow_id": "W", "seq": True, "pub": "A"}),
    ]
    for frame in frames:
        assert receive(frame) is None
    assert got == ["predecessor", "float seq", "int pub", "list pub", "bool seq"]
    assert dispatcher.stats["feed"].last_seq == {}


def test_a_subscriber_remembers_a_bounded_number_of_publishers() -> None:
    app = counting_app([])
    dispatcher = Dispatcher(app, None, Recorder())
    receive = dispatcher.receiver(app.connections["feed"])
    for n in range(MAX_PUBLISHERS + 500):
        receive(numbered(f"p{n}", 1))
    stats = dispatcher.stats["feed"]
    assert len(stats.last_seq) == MAX_PUBLISHERS
    assert "p0" not in stats.last_seq and f"p{MAX_PUBLISHERS + 499}" in stats.last_seq


def test_publisher_to_subscriber_in_process_counts_a_lost_frame() -> None:
    pub_dispatcher = Dispatcher(client_app(), None, Recorder())
    got: list[Any] = []
    sub_app = App("demo")

    @sub_app.subscriber("feed", topic="ticks")
    def feed(args: Any) -> None:
        got.append(args)

    sub_dispatcher = Dispatcher(sub_app, None, Recorder())
    receive = sub_dispatcher.receiver(sub_app.connections["feed"])
    for n in range(10):
        pub_dispatcher.root_sender("ticks", n)
    outbound = pub_dispatcher.outbound
    assert isinstance(outbound, Recorder)
    for n, frame in enumerate(outbound.published):
        if n != 6:  # lost on the way
            receive(frame)

    assert got == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    stats = sub_dispatcher.stats["feed"]
    assert (stats.received, stats.missed, stats.gaps) == (9, 1, 1)


def test_app_stats_is_empty_when_not_running_and_the_test_client_has_them() -> None:
    app = counting_app([])
    assert app.stats == {}
    client = app.test_client()
    client.publish("feed", 1)
    assert client.stats["feed"].received == 1
