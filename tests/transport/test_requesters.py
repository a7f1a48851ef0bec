"""The Lazy Pirate core shared by the sync, async and one-shot requesters."""

from __future__ import annotations

import time

import msgpack
import pytest

from zmqservice.transport.requesters import answers, left_ms, to_ms, unwrap


def reply(workflow_id: str) -> bytes:
    return msgpack.packb({"return_args": 1, "workflow_id": workflow_id})  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("timeout", "expected"), [(None, -1), (2.0, 2000), (0.0001, 1), (0.0126, 13)]
)
def test_to_ms_rounds_to_whole_milliseconds_of_at_least_one(
    timeout: float | None, expected: int
) -> None:
    assert to_ms(timeout) == expected


def test_left_ms_counts_down_and_has_no_end_without_a_timeout() -> None:
    started = time.monotonic()
    assert left_ms(started, -1) is None
    assert 0 < (left_ms(started, 10_000) or 0) <= 10_000
    assert (left_ms(started - 1.0, 500) or 0) <= -500


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([b"", b"r"], b"r"),
        ([b"x", b"r"], None),  # no empty delimiter
        ([b"", b"r", b"more"], None),  # more than one frame after it
        ([b"r"], None),
    ],
)
def test_unwrap_takes_only_reps_envelope(parts: list[bytes], expected: bytes | None) -> None:
    assert unwrap(parts) == expected


def test_answers_correlates_by_workflow_id() -> None:
    assert answers(reply("W_1"), "W_1")
    assert not answers(reply("W_0"), "W_1")
    assert answers(reply("W_0"), "")  # no id: any reply answers
