"""The trading-desk example: its services through `app.test_client()`, and the whole demo."""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from zmqservice import RemoteError, ValidationError

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "trading_desk"
MODULES = ("models", "prices", "strategy", "order_desk")


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    """Import a fresh copy of an example service (module state starts empty each test)."""
    monkeypatch.syspath_prepend(str(DEMO))
    for name in MODULES:
        sys.modules.pop(name, None)
    yield importlib.import_module
    for name in MODULES:
        sys.modules.pop(name, None)


def order(**changes: object) -> dict[str, object]:
    return {"symbol": "BTC", "side": "buy", "qty": 2, "price": Decimal("100.50"), **changes}


# -- order desk ---------------------------------------------------------------------------


def test_order_desk_fills_and_publishes_the_fill(example: Callable[[str], ModuleType]) -> None:
    client = example("order_desk").app.test_client()

    reply = client.request("place_order", order())

    assert reply == {"order_id": "O1", **order()}
    assert isinstance(reply["price"], Decimal)
    assert client.sent["fills"] == [reply]
    assert client.request("place_order", order(side="sell"))["order_id"] == "O2"


def test_order_desk_takes_model_instances(example: Callable[[str], ModuleType]) -> None:
    models = example("models")
    client = example("order_desk").app.test_client()

    reply = client.request("place_order", models.Order("ETH", "sell", 1, Decimal("3100.25")))

    assert reply["side"] == "sell"
    assert reply["price"] == Decimal("3100.25")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"side": "hold"}, "side"),  # Literal["buy", "sell"]
        ({"qty": "2"}, "qty"),  # no silent coercion
        ({"price": 100.5}, "price"),  # a Decimal field rejects a float
        ({"symbol": None}, "symbol"),
    ],
)
def test_order_desk_rejects_invalid_orders(
    example: Callable[[str], ModuleType], changes: dict[str, object], field: str
) -> None:
    client = example("order_desk").app.test_client()

    with pytest.raises(ValidationError, match=field):
        client.request("place_order", order(**changes))
    assert client.sent["fills"] == []


@pytest.mark.parametrize("qty", [0, -3, 11])
def test_order_desk_checks_qty(example: Callable[[str], ModuleType], qty: int) -> None:
    client = example("order_desk").app.test_client(config={"max_qty": 10})

    with pytest.raises(RemoteError) as failure:
        client.request("place_order", order(qty=qty))

    assert failure.value.type == "HandlerError"
    assert f"qty must be between 1 and 10, got {qty}" in failure.value.message
    assert client.sent["fills"] == []


# -- strategy -----------------------------------------------------------------------------


def fill_from(order: dict[str, object]) -> dict[str, object]:
    """A stub order desk: fills every order as O1."""
    return {"order_id": "O1", **order}


@pytest.mark.parametrize(
    ("second", "side"), [("99.00", "buy"), ("101.00", "sell"), ("100.30", None)]
)
def test_strategy_trades_moves_past_its_threshold(
    example: Callable[[str], ModuleType], second: str, side: str | None
) -> None:
    models = example("models")
    client = example("strategy").app.test_client(config={"threshold_bps": 50, "qty": 3})
    client.stub("place_order", fill_from)

    client.publish("prices", models.Quote("BTC", Decimal("100.00"), 1))
    client.publish("prices", models.Quote("ETH", Decimal("3000.00"), 1))  # other symbols apart
    client.publish("prices", models.Quote("BTC", Decimal(second), 2))

    expected = [{"symbol": "BTC", "side": side, "qty": 3, "price": Decimal(second)}]
    assert client.sent["place_order"] == (expected if side else [])


def test_strategy_logs_rejected_orders(
    example: Callable[[str], ModuleType], caplog: pytest.LogCaptureFixture
) -> None:
    def reject(order: dict[str, object]) -> None:
        raise RemoteError("HandlerError", "ValueError: qty must be between 1 and 0, got 1")

    client = example("strategy").app.test_client()
    client.stub("place_order", reject)

    client.publish("prices", {"symbol": "BTC", "price": Decimal("100.00"), "tick": 1})
    client.publish("prices", {"symbol": "BTC", "price": Decimal("90.00"), "tick": 2})

    assert len(client.sent["place_order"]) == 1
    assert "order rejected: ValueError: qty must be" in caplog.text


def test_strategy_tracks_its_position_from_fills(example: Callable[[str], ModuleType]) -> None:
    strategy = example("strategy")
    client = strategy.app.test_client()
    price = Decimal("10.00")

    client.publish("fills", fill_from(order(side="buy", qty=5, price=price)))
    client.publish("fills", fill_from(order(side="sell", qty=2, price=price)))
    client.publish("fills", fill_from(order(symbol="ETH", side="sell", qty=1, price=price)))

    assert strategy.position == {"BTC": 3, "ETH": -1}
    with pytest.raises(ValidationError, match="side"):
        client.publish("fills", fill_from(order(side="short")))


# -- prices -------------------------------------------------------------------------------


def test_prices_publishes_every_symbol_each_tick(example: Callable[[str], ModuleType]) -> None:
    prices = example("prices")
    config = {"ticks": 3, "interval": 0, "warmup": 0}
    client = prices.app.test_client(config=config)

    assert client.run_main() == 3

    quotes = client.sent["prices"]
    assert [(q["tick"], q["symbol"]) for q in quotes] == [
        (tick, symbol) for tick in (1, 2, 3) for symbol in ("BTC", "ETH")
    ]
    assert all(isinstance(q["price"], Decimal) for q in quotes)
    again = prices.app.test_client(config=config)
    again.run_main()
    assert again.sent["prices"] == quotes  # seeded: the same run twice


# -- the whole demo, over real sockets ----------------------------------------------------


def test_run_demo_shows_prices_orders_and_fills() -> None:
    command = [sys.executable, str(DEMO / "run_demo.py"), "--ticks", "8"]
    # A session of its own, so a timeout can kill the demo together with its services.
    with subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=10)
            pytest.fail(f"run_demo.py did not finish within 45 s:\n{output}")

    assert proc.returncode == 0, output
    assert re.search(r"prices \| .*tick 8/8: BTC \d+\.\d\d", output), output
    assert re.search(r"strategy \| .*placing (buy|sell) 1 \w+ @ \d+\.\d\d", output), output
    assert re.search(r"order_desk \| .*filled O1: ", output), output
    assert re.search(r"strategy \| .*fill O1: ", output), output
    summary = re.search(r"summary: (\d+) price ticks .*, (\d+) orders .*, (\d+) fills", output)
    assert summary is not None, output
    assert int(summary[1]) == 8
    assert int(summary[2]) > 0
    assert int(summary[3]) == int(summary[2])
    assert "exit codes: order_desk 0, strategy 0, prices 0" in output
