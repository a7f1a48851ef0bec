"""Config merging and address resolution (`zmqservice.config`, `zmqservice.transport.addresses`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from zmqservice import App, ConfigError
from zmqservice.config import build_config, parse_value
from zmqservice.transport.addresses import Endpoint, resolve_addresses


@attrs.define
class OrdersConfig:
    symbol: str
    size: int = 1
    ratio: float = 0.5
    venues: list[str] = attrs.Factory(list)


@pytest.fixture
def orders() -> App:
    return App("orders", config=OrdersConfig)


@pytest.fixture
def shop() -> App:
    return App("shop", config={"required": {"symbol": str}, "optional": {"size": int}})


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# -- merge order ----------------------------------------------------------------------------


def test_model_defaults_fill_missing_keys(orders: App) -> None:
    assert build_config(orders, {"symbol": "BTC"}) == OrdersConfig(symbol="BTC")


def test_config_file_overrides_defaults(orders: App, tmp_path: Path) -> None:
    path = write_json(tmp_path / "config.json", {"symbol": "BTC", "size": 2})
    assert build_config(orders, path).size == 2


def test_config_file_path_may_be_a_string(orders: App, tmp_path: Path) -> None:
    path = write_json(tmp_path / "config.json", {"symbol": "BTC"})
    assert build_config(orders, str(path)).symbol == "BTC"


def test_environment_overrides_the_file(orders: App, tmp_path: Path) -> None:
    path = write_json(tmp_path / "config.json", {"symbol": "BTC", "size": 2})
    assert build_config(orders, path, environ={"ORDERS_SIZE": "3"}).size == 3


def test_extra_arguments_override_the_environment(orders: App) -> None:
    config = build_config(
        orders, {"symbol": "BTC"}, environ={"ORDERS_SIZE": "3"}, extra={"size": 4}
    )
    assert config.size == 4


def test_environment_is_ignored_without_environ(
    orders: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_SIZE", "3")
    assert build_config(orders, {"symbol": "BTC"}).size == 1


def test_environment_alone_can_supply_a_required_key(orders: App) -> None:
    assert build_config(orders, None, environ={"ORDERS_SYMBOL": "ETH"}).symbol == "ETH"


def test_environment_variables_of_other_apps_are_ignored(orders: App) -> None:
    config = build_config(orders, {"symbol": "BTC"}, environ={"SHOP_SIZE": "9", "SIZE": "9"})
    assert config.size == 1


def test_str_typed_key_keeps_the_raw_environment_string(orders: App) -> None:
    assert build_config(orders, None, environ={"ORDERS_SYMBOL": "123"}).symbol == "123"


def test_other_keys_are_json_parsed_from_the_environment(orders: App) -> None:
    environ = {"ORDERS_SYMBOL": "BTC", "ORDERS_RATIO": "0.25", "ORDERS_VENUES": '["a", "b"]'}
    config = build_config(orders, None, environ=environ)
    assert (config.ratio, config.venues) == (0.25, ["a", "b"])


def test_environment_value_that_is_not_json_stays_a_string_and_fails_validation(
    orders: App,
) -> None:
    with pytest.raises(ConfigError, match="config key 'size': expected int, got str"):
        build_config(orders, {"symbol": "BTC"}, environ={"ORDERS_SIZE": "many"})


def test_dict_config_model_reads_its_keys_from_the_environment(shop: App) -> None:
    config = build_config(shop, None, environ={"SHOP_SYMBOL": "7", "SHOP_SIZE": "2"})
    assert config == {"symbol": "7", "size": 2}


def test_class_config_model_gives_an_instance(orders: App) -> None:
    assert isinstance(build_config(orders, {"symbol": "BTC"}), OrdersConfig)


def test_dict_config_model_gives_a_dict(shop: App) -> None:
    assert build_config(shop, {"symbol": "BTC"}) == {"symbol": "BTC"}


def test_app_without_a_config_model_takes_any_config() -> None:
    assert build_config(App("demo"), {"anything": [1]}) == {"anything": [1]}


@pytest.mark.parametrize("value", ["1", 1.0, True])
def test_parse_value_keeps_strings_for_str_keys(value: object) -> None:
    assert parse_value(str(value), str) == str(value)


@pytest.mark.parametrize(
    ("raw", "parsed"), [("1", 1), ("1.5", 1.5), ("true", True), ('{"a": 1}', {"a": 1}), ("x", "x")]
)
def test_parse_value_parses_json_for_other_keys(raw: str, parsed: object) -> None:
    assert parse_value(raw, int) == parsed


# -- setup_config ---------------------------------------------------------------------------


def test_setup_config_sees_the_merged_config(shop: App) -> None:
    seen: list[dict[str, Any]] = []

    @shop.setup_config
    def setup(config: dict[str, Any]) -> None:
        seen.append(config)

    build_config(shop, {"symbol": "BTC"}, environ={"SHOP_SIZE": "2"})
    assert seen == [{"symbol": "BTC", "size": 2}]


def test_setup_config_returned_keys_overwrite(shop: App) -> None:
    @shop.setup_config
    def setup(config: dict[str, Any]) -> dict[str, Any]:
        return {"symbol": config["symbol"].upper()}

    assert build_config(shop, {"symbol": "btc", "size": 2}) == {"symbol": "BTC", "size": 2}


def test_setup_config_runs_before_validation(shop: App) -> None:
    @shop.setup_config
    def setup(config: dict[str, Any]) -> dict[str, Any]:
        return {"symbol": "BTC"}

    assert build_config(shop, {}) == {"symbol": "BTC"}


def test_setup_config_returning_a_non_dict_is_a_config_error(shop: App) -> None:
    @shop.setup_config
    def setup(config: dict[str, Any]) -> list[str]:
        return ["symbol"]

    with pytest.raises(ConfigError, match="setup_config must return a dict"):
        build_config(shop, {"symbol": "BTC"})


# -- config errors --------------------------------------------------------------------------


def test_missing_required_key_is_a_config_error_naming_it(orders: App) -> None:
    with pytest.raises(ConfigError, match=r"^config key 'symbol': required field missing$"):
        build_config(orders, {})


def test_every_mistyped_key_is_named(orders: App) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(orders, {"symbol": 5, "size": "x"})
    assert str(info.value) == (
        "config key 'symbol': expected str, got int; config key 'size': expected int, got str"
    )


def test_every_missing_key_of_a_dict_model_is_named() -> None:
    app = App("testapp", config={"required": {"host": str, "port": int}})
    with pytest.raises(ConfigError) as info:
        build_config(app, {})
    assert "config key 'host'" in str(info.value)
    assert "config key 'port'" in str(info.value)


def test_unknown_config_key_is_a_config_error(orders: App) -> None:
    with pytest.raises(ConfigError, match=r"extra fields found \(colour\)"):
        build_config(orders, {"symbol": "BTC", "colour": "red"})


def test_config_error_is_a_value_error(orders: App) -> None:
    with pytest.raises(ValueError):
        build_config(orders, {})


def test_missing_config_file_is_a_config_error(orders: App, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*missing\.json"):
        build_config(orders, tmp_path / "missing.json")


def test_config_file_with_bad_json_is_a_config_error(orders: App, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{symbol: BTC", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        build_config(orders, path)


def test_config_file_holding_a_list_is_a_config_error(orders: App, tmp_path: Path) -> None:
    path = write_json(tmp_path / "config.json", ["symbol"])
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        build_config(orders, path)


# -- addresses ------------------------------------------------------------------------------


@pytest.fixture
def wired() -> App:
    """One connection of each socket kind, and an external target that needs no address."""
    app = App("demo")

    @app.replyer("cancel_order")
    def cancel_order(args: Any) -> Any:
        return args

    @app.subscriber("prices")
    def prices(args: Any) -> None:
        pass

    app.requester("exchange")
    app.publisher("order_events")
    app.external_target("dumps", "json:dumps")
    return app


ALL = {  # parsed only: nothing here is ever bound or connected
    "in": {
        "cancel_order": {"replyer": "127.0.0.1:5001"},
        "prices": {"subscriber": "10.0.0.1:5003"},
    },
    "out": {
        "exchange": {"requester": "10.0.0.2:5004"},
        "order_events": {"publisher": "127.0.0.1:5002"},
    },
}


def with_address(side: str, name: str, kind: str, value: Any) -> dict[str, Any]:
    addresses = json.loads(json.dumps(ALL))
    addresses[side][name] = {kind: value}
    return addresses


def test_host_port_binds_every_interface_on_binding_sides(wired: App) -> None:
    endpoints = resolve_addresses(wired, ALL, {})
    assert endpoints["cancel_order"] == Endpoint("tcp://*:5001", bind=True)  # not bound
    assert endpoints["order_events"] == Endpoint("tcp://*:5002", bind=True)  # not bound


def test_host_port_connects_to_the_host_on_connecting_sides(wired: App) -> None:
    endpoints = resolve_addresses(wired, ALL, {})
    assert endpoints["prices"] == Endpoint("tcp://10.0.0.1:5003", bind=False)
    assert endpoints["exchange"] == Endpoint("tcp://10.0.0.2:5004", bind=False)


def test_external_targets_need_no_address(wired: App) -> None:
    assert set(resolve_addresses(wired, ALL, {})) == {
        "cancel_order",
        "prices",
        "exchange",
        "order_events",
    }


@pytest.mark.parametrize(
    "endpoint", ["tcp://192.0.2.1:6000", "ipc:///tmp/zmqservice.sock", "inproc://orders"]
)
def test_full_endpoints_are_kept(wired: App, endpoint: str) -> None:
    addresses = with_address("in", "cancel_order", "replyer", endpoint)
    assert resolve_addresses(wired, addresses, {})["cancel_order"] == Endpoint(endpoint, bind=True)


def test_replyer_with_bind_false_connects() -> None:
    app = App("demo")

    @app.replyer("work", bind=False)
    def work(args: Any) -> Any:
        return args

    endpoints = resolve_addresses(app, {"in": {"work": {"replyer": "proxy:5000"}}}, {})
    assert endpoints["work"] == Endpoint("tcp://proxy:5000", bind=False)


def test_subscriber_with_bind_true_binds() -> None:
    app = App("demo")

    @app.subscriber("prices", bind=True)
    def prices(args: Any) -> None:
        pass

    endpoints = resolve_addresses(app, {"in": {"prices": {"subscriber": "h:5000"}}}, {})
    assert endpoints["prices"] == Endpoint("tcp://*:5000", bind=True)  # not bound


def test_xpub_publisher_connects_to_its_forwarder() -> None:
    app = App("demo")
    app.publisher("events", xpub=True)
    endpoints = resolve_addresses(app, {"out": {"events": {"publisher": "fwd:5000"}}}, {})
    assert endpoints["events"] == Endpoint("tcp://fwd:5000", bind=False)


def test_decorator_address_is_the_default() -> None:
    app = App("demo")
    app.requester("exchange", address="10.0.0.9:7000")
    assert resolve_addresses(app, None, {})["exchange"].url == "tcp://10.0.0.9:7000"


def test_addresses_file_overrides_the_decorator_address(tmp_path: Path) -> None:
    app = App("demo")
    app.requester("exchange", address="10.0.0.9:7000")
    path = write_json(tmp_path / "addresses.json", {"out": {"exchange": {"requester": "h:8000"}}})
    assert resolve_addresses(app, path, {})["exchange"].url == "tcp://h:8000"


def test_missing_address_is_a_config_error_naming_the_connection(wired: App) -> None:
    addresses = json.loads(json.dumps(ALL))
    del addresses["out"]["exchange"]
    with pytest.raises(ConfigError, match=r"^addresses\.out\.exchange\.requester: no address"):
        resolve_addresses(wired, addresses, {})


@pytest.mark.parametrize(
    "value",
    [
        "localhost",
        "host:",
        ":5000",
        "host:port",
        "host:70000",
        "tcp://host",
        "tcp://h:99999",
        "",
        5,
    ],
)
def test_bad_address_is_a_config_error_naming_the_key(wired: App, value: Any) -> None:
    addresses = with_address("out", "exchange", "requester", value)
    with pytest.raises(ConfigError, match=r"^addresses\.out\.exchange\.requester: "):
        resolve_addresses(wired, addresses, {})


@pytest.mark.parametrize("value", ["tcp://*:5004", "*:5004"])
def test_a_connecting_side_cannot_connect_to_star(wired: App, value: str) -> None:
    addresses = with_address("out", "exchange", "requester", value)
    with pytest.raises(ConfigError, match=r"^addresses\.out\.exchange\.requester: .*'\*' binds"):
        resolve_addresses(wired, addresses, {})


@pytest.mark.parametrize("value", ["ipc:///tmp/a\0b.ipc", "tcp://192.0.2.1:5001\0"])
@pytest.mark.parametrize(
    ("side", "name", "kind"), [("in", "cancel_order", "replyer"), ("out", "exchange", "requester")]
)
def test_a_nul_character_in_an_address_is_a_config_error(
    wired: App, value: str, side: str, name: str, kind: str
) -> None:
    addresses = with_address(side, name, kind, value)
    with pytest.raises(ConfigError, match=rf"^addresses\.{side}\.{name}\.{kind}: .* NUL"):
        resolve_addresses(wired, addresses, {})


def test_unknown_transport_is_a_config_error_naming_the_key(wired: App) -> None:
    addresses = with_address("in", "cancel_order", "replyer", "http://example.com:80")
    with pytest.raises(
        ConfigError, match=r"^addresses\.in\.cancel_order\.replyer: unknown transport"
    ):
        resolve_addresses(wired, addresses, {})


def test_address_under_the_wrong_kind_is_a_config_error(wired: App) -> None:
    addresses = with_address("out", "exchange", "publisher", "h:1")
    with pytest.raises(ConfigError, match=r"^addresses\.out\.exchange\.requester: missing"):
        resolve_addresses(wired, addresses, {})


def test_unknown_connection_in_the_file_is_a_config_error(wired: App) -> None:
    addresses = with_address("out", "exchnage", "requester", "h:1")
    with pytest.raises(ConfigError, match=r"addresses\.out\.exchnage: .*no such out-connection"):
        resolve_addresses(wired, addresses, {})


def test_connection_under_the_wrong_side_is_a_config_error(wired: App) -> None:
    addresses = with_address("in", "exchange", "requester", "h:1")
    with pytest.raises(ConfigError, match=r"addresses\.in\.exchange: .*no such in-connection"):
        resolve_addresses(wired, addresses, {})


def test_unknown_side_is_a_config_error(wired: App) -> None:
    with pytest.raises(ConfigError, match=r"^addresses\.inbound: "):
        resolve_addresses(wired, {**ALL, "inbound": {}}, {})


def test_missing_addresses_file_is_a_config_error(wired: App, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="addresses file"):
        resolve_addresses(wired, tmp_path / "nope.json", {})


def test_addresses_file_with_bad_json_is_a_config_error(wired: App, tmp_path: Path) -> None:
    path = tmp_path / "addresses.json"
    path.write_text("{'in': {}}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"addresses file .* is not valid JSON"):
        resolve_addresses(wired, path, {})


def test_setup_addresses_runs_even_on_empty_addresses() -> None:
    app = App("demo")
    calls: list[tuple[Any, Any]] = []

    @app.setup_addresses
    def setup(addresses: dict[str, Any], config: Any) -> None:
        calls.append((addresses, config))

    resolve_addresses(app, None, {"symbol": "BTC"})
    assert calls == [({}, {"symbol": "BTC"})]


def test_setup_addresses_result_replaces_the_addresses() -> None:
    app = App("demo")
    app.requester("exchange", address="h:1")

    @app.setup_addresses
    def setup(addresses: dict[str, Any], config: Any) -> dict[str, Any]:
        return {"out": {"exchange": {"requester": f"{config['host']}:2"}}}

    assert resolve_addresses(app, None, {"host": "10.1.1.1"})["exchange"].url == "tcp://10.1.1.1:2"


def test_setup_addresses_returning_a_non_dict_is_a_config_error() -> None:
    app = App("demo")

    @app.setup_addresses
    def setup(addresses: dict[str, Any], config: Any) -> str:
        return "h:1"

    with pytest.raises(ConfigError, match="setup_addresses must return"):
        resolve_addresses(app, None, {})


def test_optional_str_keys_keep_env_strings() -> None:
    assert parse_value("123", str | None) == "123"
    assert parse_value("123", int) == 123


def test_decimal_and_uuid_keys_parse_from_strings() -> None:
    from decimal import Decimal
    from uuid import UUID

    assert parse_value("1.50", Decimal) == Decimal("1.50")
    assert parse_value(str(UUID(int=3)), UUID) == UUID(int=3)
    assert parse_value("not-a-number", Decimal) == "not-a-number"


def test_config_file_markers_decode(tmp_path: Path) -> None:
    from decimal import Decimal

    app = App("testapp", config={"required": {"limit": Decimal}})
    path = tmp_path / "config.json"
    path.write_text('{"limit": {"__decimal__": true, "as_str": "2.5"}}')
    assert build_config(app, str(path)) == {"limit": Decimal("2.5")}


# -- files and strings that cannot be config: ConfigError naming the key ----------------------

DEEP = "[" * 5000 + "]" * 5000


def test_a_config_file_that_is_not_utf8_is_a_config_error(orders: App, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"symbol": "\xff\xfe"}')
    with pytest.raises(ConfigError, match=r"^config file .*config\.json' is not UTF-8: byte 12"):
        build_config(orders, path)


def test_an_addresses_file_that_is_not_utf8_is_a_config_error(wired: App, tmp_path: Path) -> None:
    path = tmp_path / "addresses.json"
    path.write_bytes(b'{"in": {"cancel_order": {"replyer": "\xff"}}}')
    with pytest.raises(ConfigError, match=r"^addresses file .*addresses\.json' is not UTF-8"):
        resolve_addresses(wired, path, {})


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ({"__decimal__": True, "as_str": "abc"}, "bad Decimal marker: as_str must be a number"),
        ({"__decimal__": True, "as_str": [1]}, "bad Decimal marker: as_str must be a number"),
        ({"__uuid__": True, "as_str": "abc"}, "bad UUID marker: as_str must be a UUID string"),
        ({"__uuid__": True, "as_str": 5}, "bad UUID marker: as_str must be a UUID string"),
        ({"__set__": True, "value": 5}, "bad set marker: value must be a list of hashable"),
        ({"__set__": True, "value": [[1]]}, "bad set marker: value must be a list of hashable"),
    ],
)
def test_a_bad_marker_in_a_config_file_names_its_key(
    tmp_path: Path, marker: dict[str, Any], words: str
) -> None:
    path = write_json(tmp_path / "config.json", {"outer": {"limits": [1, marker]}})
    with pytest.raises(ConfigError) as info:
        build_config(App("testapp"), path)
    assert str(info.value).startswith(f"config file {str(path)!r}, key 'outer.limits[1]': {words}")


def test_markers_inside_markers_still_decode(tmp_path: Path) -> None:
    from decimal import Decimal

    value = {"__set__": True, "value": [{"__decimal__": True, "as_str": "1.5"}]}
    path = write_json(tmp_path / "config.json", {"fees": value})
    assert build_config(App("testapp"), path) == {"fees": {Decimal("1.5")}}


@pytest.mark.parametrize("sign", ["", "-"])
def test_an_integer_too_long_for_python_in_a_config_file_names_its_key(
    tmp_path: Path, sign: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"size": ' + sign + "1" * 5000 + "}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'size': an integer of 5000 digits is too long"):
        build_config(App("testapp"), path)


def test_a_config_file_nested_5000_deep_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"x": ' + DEEP + "}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.json': nested deeper than 100 levels"):
        build_config(App("testapp"), path)


def test_a_config_file_nested_past_the_limit_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"x": ' + "[" * 150 + "]" * 150 + "}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'x\[0\]\[0\].*\.\.\.': nested deeper than 100"):
        build_config(App("testapp"), path)


def test_an_addresses_file_nested_5000_deep_is_a_config_error(wired: App, tmp_path: Path) -> None:
    path = tmp_path / "addresses.json"
    path.write_text('{"in": ' + DEEP + "}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^addresses file .*: nested deeper than 100 levels"):
        resolve_addresses(wired, path, {})


@pytest.mark.parametrize("declared", [None, list, int])
def test_a_string_value_nested_5000_deep_names_its_key(declared: Any) -> None:
    with pytest.raises(ConfigError, match=r"^config key 'depth': nested deeper than 100 levels"):
        parse_value(DEEP, declared, "depth")


def test_a_string_value_with_an_integer_too_long_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"^config key 'size': an integer of 5000 digits"):
        parse_value("1" * 5000, int, "size")


def test_an_environment_variable_nested_5000_deep_is_a_config_error() -> None:
    app = App("testapp", config={"optional": {"levels": list}})
    with pytest.raises(ConfigError, match=r"^config key 'levels': nested deeper than 100"):
        build_config(app, environ={"TESTAPP_LEVELS": DEEP})


# -- min_wait ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.001, 60])
def test_min_wait_takes_seconds_from_0_to_60(value: float) -> None:
    from zmqservice.config import check_min_wait

    assert check_min_wait(value) == value


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), 61, "1", True, None])
def test_min_wait_outside_0_to_60_is_a_config_error(value: Any) -> None:
    from zmqservice.config import check_min_wait

    with pytest.raises(ConfigError, match=r"^min_wait: expected seconds from 0 to 60, got "):
        check_min_wait(value)


@pytest.mark.parametrize("main", [False, True])
def test_app_run_refuses_a_bad_min_wait_before_any_socket(main: bool) -> None:
    app = App("testapp")

    @app.replyer("echo", address="tcp://127.0.0.1:0")
    def echo(args: Any) -> Any:
        return args

    @app.main
    def run_main() -> None:
        raise AssertionError("main must not run")

    with pytest.raises(ConfigError, match=r"^min_wait"):
        app.run(main=main, min_wait=float("nan"))
    assert app.endpoints == {}
