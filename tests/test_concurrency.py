"""`concurrency=` on replyers: validation, the test client, and ROUTER message splitting."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from zmqservice import App
from zmqservice.transport.pool import split


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2", None])
def test_concurrency_must_be_a_positive_int(value: Any) -> None:
    app = App("svc")
    with pytest.raises(ValueError, match=r"replyer 'echo': concurrency must be an int >= 1"):
        app.replyer("echo", concurrency=value)


def test_concurrency_defaults_to_one() -> None:
    app = App("svc")

    @app.replyer("echo")
    def echo(args: Any) -> Any:
        return args

    assert app.connections["echo"].concurrency == 1


def test_concurrency_is_kept_on_the_connection() -> None:
    app = App("svc")

    @app.replyer("echo", concurrency=8)
    def echo(args: Any) -> Any:
        return args

    assert app.connections["echo"].concurrency == 8


def test_test_client_ignores_concurrency() -> None:
    app = App("svc")

    @app.replyer("echo", args={"value": int}, returns={"value": int}, concurrency=4)
    def echo(args: dict[str, int]) -> dict[str, int]:
        return args

    assert app.test_client().request("echo", {"value": 3}) == {"value": 3}


def test_split_keeps_the_envelope_up_to_the_delimiter() -> None:
    assert split([b"id", b"", b"req"], "x") == ([b"id", b""], b"req", None)
    assert split([b"proxy", b"id", b"", b"req"], "x") == ([b"proxy", b"id", b""], b"req", None)


def test_split_refuses_a_message_without_delimiter() -> None:
    envelope, frame, error = split([b"id", b"req"], "in.echo (replyer)")
    assert (envelope, frame) == ([b"id", b""], None)
    assert error is not None
    reply = msgpack.unpackb(error)
    assert reply["error"]["type"] == "DecodeError"
    assert "delimiter" in reply["error"]["message"]


def test_split_refuses_a_multipart_request() -> None:
    envelope, frame, error = split([b"id", b"", b"a", b"b"], "in.echo (replyer)")
    assert (envelope, frame) == ([b"id", b""], None)
    assert error is not None
    assert "2 frames" in msgpack.unpackb(error)["error"]["message"]
