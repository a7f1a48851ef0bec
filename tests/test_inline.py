"""`InlineServices`: relations are explicit wiring, delivered whatever the topics."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from zmqservice import App, InlineServices


def publisher_app(topic: str) -> App:
    app = App("ticker")
    app.publisher("ticks", args={"n": int}, topic=topic)
    app.requester("ask", args={"n": int})
    return app


def listener_app(heard: list[Any], topic: str) -> App:
    app = App("listener")

    @app.subscriber("ticks", args={"n": int}, topic=topic)
    def on_tick(args: Any) -> None:
        heard.append(args)

    return app


def wire(pub_topic: str, sub_topic: str, heard: list[Any], out: str = "ticks") -> InlineServices:
    inline = InlineServices()
    inline.add_service("ticker", publisher_app(pub_topic))
    inline.add_service("listener", listener_app(heard, sub_topic))
    inline.add_relation("ticker", out, "listener", "ticks")
    return inline


def mismatch_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "zmqservice.inline" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize(
    ("pub_topic", "sub_topic"), [("", "BTC"), ("ETH", "BTC"), ("BTCUSD", "BTC")]
)
def test_a_relation_delivers_whatever_the_topics_and_warns_once(
    caplog: pytest.LogCaptureFixture, pub_topic: str, sub_topic: str
) -> None:
    caplog.set_level(logging.WARNING, "zmqservice.inline")
    heard: list[Any] = []
    inline = wire(pub_topic, sub_topic, heard)
    for n in range(3):
        inline.send("ticker", "ticks", {"n": n})

    assert heard == [{"n": 0}, {"n": 1}, {"n": 2}]
    [warning] = mismatch_warnings(caplog)
    assert "ticker.ticks -> listener.ticks" in warning
    assert f"topic {sub_topic!r}" in warning
    assert "over sockets" in warning


@pytest.mark.parametrize(("pub_topic", "sub_topic"), [("BTC", "BTC"), ("BTC", ""), ("", "")])
def test_a_relation_whose_subscription_matches_does_not_warn(
    caplog: pytest.LogCaptureFixture, pub_topic: str, sub_topic: str
) -> None:
    caplog.set_level(logging.WARNING, "zmqservice.inline")
    heard: list[Any] = []
    wire(pub_topic, sub_topic, heard).send("ticker", "ticks", {"n": 1})
    assert heard == [{"n": 1}]
    assert mismatch_warnings(caplog) == []


def test_a_requester_reaches_a_subscriber_with_a_topic(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "zmqservice.inline")
    heard: list[Any] = []
    inline = wire("", "BTC", heard, out="ask")
    assert inline.send("ticker", "ask", {"n": 7}) is None
    assert heard == [{"n": 7}]
    assert len(mismatch_warnings(caplog)) == 1


def test_one_publisher_feeds_subscribers_of_different_topics() -> None:
    heard: dict[str, list[Any]] = {"BTC": [], "ETH": [], "": []}
    inline = InlineServices()
    inline.add_service("ticker", publisher_app("BTC"))
    for topic, inbox in heard.items():
        inline.add_service(f"listener_{topic}", listener_app(inbox, topic))
        inline.add_relation("ticker", "ticks", f"listener_{topic}", "ticks")
    inline.send("ticker", "ticks", {"n": 1})
    assert heard == {"BTC": [{"n": 1}], "ETH": [{"n": 1}], "": [{"n": 1}]}
