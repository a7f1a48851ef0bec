"""Tests for `risk.py` through `app.test_client()`: no sockets, the real validation and codec.

Run: `python -m pytest examples/testing` (the repository's test run collects it too).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import risk

from zmqservice import RemoteError, RemoteValidationError, ValidationError
from zmqservice.testing import StubMissing, TestClient


@pytest.fixture(autouse=True)
def _no_halts() -> Iterator[None]:
    """Module state (the halted symbols) starts empty in every test."""
    risk.halted.clear()
    yield
    risk.halted.clear()


@pytest.fixture
def client() -> TestClient:
    """A client whose `position` requester answers 90 for every account and symbol."""
    client = risk.app.test_client(config={"max_position": 100})
    client.stub("position", {"qty": 90})
    return client


def order(**changes: object) -> dict[str, object]:
    return {"account": "ada", "symbol": "BTC", "side": "buy", "qty": 5, **changes}


def test_approves_an_order_within_the_limit(client: TestClient) -> None:
    assert client.request("check_order", order()) == {"approved": True, "reason": "ok"}
    # What the service sent, as its peers decoded it: one position query, one decision.
    assert client.sent["position"] == [{"account": "ada", "symbol": "BTC"}]
    assert client.sent["decisions"] == [{"account": "ada", "symbol": "BTC", "approved": True}]


def test_rejects_an_order_past_the_limit(client: TestClient) -> None:
    reply = client.request("check_order", order(qty=20))

    assert reply == {"approved": False, "reason": "position would be 110, limit 100"}
    assert client.sent["decisions"][-1]["approved"] is False


def test_a_stub_function_sees_the_args(client: TestClient) -> None:
    positions = {"ada": 0, "bob": -100}
    client.stub("position", lambda args: {"qty": positions[args["account"]]})

    assert client.request("check_order", order(account="ada", side="sell"))["approved"]
    assert not client.request("check_order", order(account="bob", side="sell"))["approved"]


def test_takes_a_model_instance(client: TestClient) -> None:
    reply = client.request("check_order", risk.Order("ada", "BTC", "sell", 5))
    assert reply["approved"] is True


def test_bad_args_never_reach_the_handler(client: TestClient) -> None:
    with pytest.raises(RemoteValidationError, match=r"expected int, got str @ \$\.qty"):
        client.request("check_order", order(qty="5"))
    assert "position" not in client.sent  # the handler did not run


def test_a_failing_requester_becomes_a_handler_error(client: TestClient) -> None:
    def down(args: object) -> None:
        raise ConnectionError("positions service down")

    client.stub("position", down)
    with pytest.raises(RemoteError) as failure:
        client.request("check_order", order())
    assert failure.value.type == "HandlerError"
    assert failure.value.message == "ConnectionError: positions service down"


def test_a_halt_rejects_orders_until_it_is_lifted(client: TestClient) -> None:
    client.publish("halts", {"symbol": "BTC", "halted": True})
    assert client.request("check_order", order()) == {
        "approved": False,
        "reason": "BTC is halted",
    }
    assert "position" not in client.sent  # no need to ask

    client.publish("halts", {"symbol": "BTC", "halted": False})
    assert client.request("check_order", order())["approved"] is True


def test_publish_validates_like_a_publisher(client: TestClient) -> None:
    with pytest.raises(ValidationError, match="halted"):
        client.publish("halts", {"symbol": "BTC", "halted": "yes"})


@pytest.mark.parametrize(("held", "within"), [(100, True), (-100, True), (101, False)])
def test_main_checks_the_house_position(held: int, within: bool) -> None:
    client = risk.app.test_client()  # default config: max_position 100
    client.stub("position", {"qty": held})

    assert client.run_main() is within
    assert client.sent["position"] == [{"account": "house", "symbol": "BTC"}]


def test_an_unstubbed_requester_says_how_to_stub_it() -> None:
    client = risk.app.test_client()
    with pytest.raises(StubMissing, match=r"client\.stub\('position'"):
        client.run_main()
