"""JSON Schemas of models, routes, the describe payload and the AsyncAPI 3.0 document.

The AsyncAPI document is validated against the official AsyncAPI 3.0.0 JSON Schema,
``tests/asyncapi-3.0.0-schema.json``: ``package/schemas/3.0.0.json`` of the npm package
``@asyncapi/specs`` 6.11.1 (``npm pack @asyncapi/specs``), which bundles its definitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Optional
from uuid import UUID

import attrs
import jsonschema
import msgpack
import pytest

from zmqservice import App, codec
from zmqservice.asyncapi import asyncapi_document
from zmqservice.describe import (
    describe_app,
    json_schema,
    model_label,
    route_rows,
    schema_label,
    type_label,
    type_schema,
)
from zmqservice.loading import load_app
from zmqservice.models import make_model

ASYNCAPI_SCHEMA = Path(__file__).with_name("asyncapi-3.0.0-schema.json")
PREDECESSOR = Path(__file__).parent / "integration" / "predecessor_services"
Draft7 = jsonschema.Draft7Validator


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


@attrs.define
class Leg:
    """One leg of an order.

    More text that stays out of the schema.
    """

    qty: int
    price: Decimal


@attrs.define
class Order:
    ident: UUID
    side: Side
    legs: list[Leg]
    placed: dt.datetime
    tags: set[str] = attrs.Factory(set)
    kind: Literal["limit", "market"] = "limit"
    note: Optional[str] = None  # noqa: UP045 - the spelling users write
    pair: tuple[str, int] = ("BTC", 1)
    extra: dict[str, float] = attrs.Factory(dict)


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0
    label: str | None = None


@attrs.define
class Node:
    value: int
    children: list[Node] = attrs.Factory(list)


def wire(value: Any) -> Any:
    """What a raw msgpack peer sees of `value`: markers stay maps."""
    return msgpack.unpackb(codec.encode(value), raw=False)


def valid(schema: dict[str, Any], value: Any) -> bool:
    Draft7.check_schema(schema)
    return Draft7(schema).is_valid(value)


# -- one type at a time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (bytes, {"type": "string", "format": "binary"}),
        (None, {"type": "null"}),
        (Any, {}),
        (dt.datetime, {"type": "string", "format": "date-time"}),
        (dt.date, {"type": "string", "format": "date"}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (dict[str, bool], {"type": "object", "additionalProperties": {"type": "boolean"}}),
        (Optional[str], {"type": ["string", "null"]}),  # noqa: UP045
        (int | float, {"type": ["integer", "number"]}),
        (Literal["a", "b"], {"enum": ["a", "b"], "type": "string"}),
        (Literal[3], {"const": 3, "type": "integer"}),
        (Side, {"title": "Side", "enum": ["buy", "sell"], "type": "string"}),
        (typing.Annotated[int, "meta"], {"type": "integer"}),
    ],
)
def test_type_schema(tp: Any, schema: dict[str, Any]) -> None:
    assert type_schema(tp) == schema


def test_fixed_tuple_is_an_array_of_exact_length() -> None:
    schema = type_schema(tuple[str, int])
    assert schema["items"] == [{"type": "string"}, {"type": "integer"}]
    assert valid(schema, ["a", 1])
    assert not valid(schema, ["a", 1, 2])
    assert not valid(schema, [1, "a"])


def test_union_of_complex_types_is_any_of() -> None:
    schema = type_schema(list[int] | None)
    assert schema == {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]}


@pytest.mark.parametrize(
    ("tp", "value", "wrong"),
    [
        (Decimal, Decimal("1.50"), "1.50"),
        (UUID, UUID(int=7), str(UUID(int=7))),
        (set[str], {"a", "b"}, ["a", "b"]),
    ],
)
def test_markers_are_described_as_they_travel(tp: Any, value: Any, wrong: Any) -> None:
    schema = type_schema(tp)
    assert valid(schema, wire(value))
    assert not valid(schema, wrong)  # validation rejects the bare form, so does the schema


def test_decimal_marker_checks_the_number() -> None:
    schema = type_schema(Decimal)
    assert valid(schema, {"__decimal__": True, "as_str": "-1.5e3"})
    assert not valid(schema, {"__decimal__": True, "as_str": "one"})
    assert not valid(schema, {"__decimal__": True, "as_str": "1", "extra": 1})


def test_marker_schemas_are_never_read_as_markers() -> None:
    # {"__decimal__": ..., "as_str": ...} as a `properties` map would decode as a Decimal.
    for tp in (Decimal, UUID, set[int]):
        schema = type_schema(tp)
        assert codec.decode(codec.encode(schema)) == schema


def test_attrs_class_schema() -> None:
    schema = type_schema(Order)
    assert schema["title"] == "Order"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["ident", "side", "legs", "placed"]
    assert schema["properties"]["kind"] == {
        "enum": ["limit", "market"],
        "type": "string",
        "default": "limit",
    }
    assert schema["properties"]["note"] == {"type": ["string", "null"], "default": None}
    assert "default" not in schema["properties"]["pair"]  # only JSON scalars are shown
    leg = schema["properties"]["legs"]["items"]
    assert leg["title"] == "Leg"
    assert leg["description"] == "One leg of an order."
    assert leg["properties"]["price"]["title"] == "Decimal"


def test_dataclass_schema() -> None:
    schema = type_schema(Point)
    assert schema == {
        "title": "Point",
        "type": "object",
        "properties": {
            "x": {"type": "number"},
            "y": {"type": "number", "default": 0.0},
            "label": {"type": ["string", "null"], "default": None},
        },
        "required": ["x"],
        "additionalProperties": False,
    }


def test_predecessor_dict_model_schema() -> None:
    model = make_model({"order_id": str, "qty": {str: [int]}}, {"tags": {str}}, "place")
    schema = json_schema(model)
    assert "title" not in schema  # the generated TypedDict's name means nothing to a reader
    assert schema["required"] == ["order_id", "qty"]
    assert schema["properties"]["qty"] == {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "integer"}},
    }
    assert schema["properties"]["tags"]["title"] == "set"


def test_nested_predecessor_dicts_are_objects() -> None:
    schema = json_schema(make_model({"user": {"name": str, "age": int}}, None, "nested"))
    assert schema["properties"]["user"]["required"] == ["name", "age"]


def test_recursive_class_stops() -> None:
    schema = type_schema(Node)
    child = schema["properties"]["children"]["items"]
    assert child["title"] == "Node"
    assert "recursive" in child["description"]


def test_none_model_is_anything() -> None:
    assert json_schema(make_model(None)) == {}
    assert json_schema(None) == {}


def test_unknown_type_is_anything_with_a_note() -> None:
    schema = type_schema(complex)
    assert set(schema) == {"description"}
    assert "complex" in schema["description"]


ORDER = Order(
    ident=UUID(int=1),
    side=Side.SELL,
    legs=[Leg(qty=1, price=Decimal("2.5"))],
    placed=dt.datetime(2024, 1, 2, 3, 4, 5),
    tags={"x"},
    note="n",
)


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        (Order, ORDER),
        (Point, Point(x=1.0, label="p")),
        (
            {"a": int, "b": [Decimal], "c": {str: UUID}},
            {"a": 1, "b": [Decimal("1")], "c": {"k": UUID(int=2)}},
        ),
    ],
)
def test_what_a_model_dumps_the_schema_accepts(spec: Any, value: Any) -> None:
    model = make_model(spec, None, "roundtrip")
    assert valid(json_schema(model), wire(model.dump(value, "test")))


def test_what_validation_rejects_the_schema_rejects() -> None:
    schema = json_schema(make_model(Leg))
    assert not valid(schema, {"qty": "1", "price": wire(Decimal("1"))})
    assert not valid(schema, {"qty": 1})
    assert not valid(schema, {"qty": 1, "price": wire(Decimal("1")), "extra": 0})


# -- labels -----------------------------------------------------------------------------------


def test_type_and_model_labels() -> None:
    assert type_label(list[int]) == "list[int]"
    assert type_label(Optional[str]) == "str | None"  # noqa: UP045
    assert type_label(tuple[int, ...]) == "tuple[int, ...]"
    assert model_label(None) == "-"
    assert model_label(make_model(None)) == "any"
    assert model_label(make_model(Order)) == "Order"
    assert model_label(make_model({"a": int}, {"b": str}, "x")) == "{a: int, b?: str}"


@pytest.mark.parametrize(
    ("tp", "label"),
    [
        (Decimal, "Decimal"),
        (set[int], "set[int]"),
        (list[UUID], "list[UUID]"),
        (tuple[str, int], "tuple[str, int]"),
        (dict[str, float], "dict[str, float]"),
        (Optional[dt.datetime], "datetime | None"),  # noqa: UP045
        (Side, "Side"),
        (Literal["a"], "Literal['a']"),
        (Leg, "Leg"),
        (Any, "any"),
    ],
)
def test_schema_label(tp: Any, label: str) -> None:
    assert schema_label(type_schema(tp)) == label


# -- an app: routes and the describe payload ------------------------------------------------


def make_app() -> App:
    app = App("shop")

    @app.replyer("place", args=Order, returns={"ok": bool}, address="tcp://192.0.2.1:5001")
    def place(args: Order) -> dict[str, bool]:
        """Place an order."""
        return {"ok": True}

    @app.subscriber("prices", args={"symbol": str, "price": Decimal}, topic="BTC", bind=True)
    def on_price(args: dict[str, Any]) -> None:
        pass

    app.publisher("fills", args=Leg, topic="fills", xpub=True)
    app.requester("exchange", args=None, returns=Point, timeout=1.5, retries=2)
    app.external_target("rate", "decimal:Decimal", args={"value": str}, returns=None)
    return app


def test_route_rows() -> None:
    rows = {row["name"]: row for row in route_rows(make_app())}
    assert rows["place"] == {
        "name": "place",
        "kind": "replyer",
        "address": "tcp://192.0.2.1:5001",
        "topic": "",
        "args": "Order",
        "returns": "{ok: bool}",
        "handler": f"{__name__}:make_app.<locals>.place",
    }
    assert rows["prices"]["address"] == "-"
    assert rows["prices"]["returns"] == "-"
    assert rows["fills"]["handler"] == "-"
    assert rows["exchange"]["args"] == "any"
    assert rows["rate"]["handler"] == "decimal:Decimal"


def test_describe_payload() -> None:
    description = describe_app(make_app())
    assert description["app"] == "shop"
    assert description["zmqservice"] == __import__("zmqservice").__version__
    conns = {c["name"]: c for c in description["connections"]}
    assert list(conns) == ["place", "prices", "fills", "exchange", "rate"]
    assert conns["place"]["bind"] is True
    assert conns["place"]["args"] == type_schema(Order)
    assert conns["place"]["returns"]["properties"] == {"ok": {"type": "boolean"}}
    assert conns["prices"] == {
        "name": "prices",
        "kind": "subscriber",
        "topic": "BTC",
        "bind": True,
        "args": json_schema(make_app().connections["prices"].args),
    }
    assert conns["fills"]["xpub"] is True and conns["fills"]["bind"] is False
    assert "bind" not in conns["exchange"] and conns["exchange"]["args"] == {}
    assert conns["rate"]["returns"] == {}


def test_describe_payload_survives_the_wire() -> None:
    description = describe_app(make_app())
    assert codec.decode(codec.encode(description)) == description


def test_describe_payload_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import zmqservice.describe as describe

    def broken(model: Any) -> dict[str, Any]:
        raise RuntimeError("no")

    monkeypatch.setattr(describe, "json_schema", broken)
    conn = describe.describe_app(make_app())["connections"][0]
    assert conn["args"] == {"description": "no schema: RuntimeError: no"}


# -- AsyncAPI 3.0 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> jsonschema.protocols.Validator:
    """A validator for the official AsyncAPI 3.0.0 JSON Schema."""
    schema = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_asyncapi_document_is_valid(asyncapi: jsonschema.protocols.Validator) -> None:
    document = json.loads(json.dumps(asyncapi_document(make_app(), version="1.2.3")))
    assert errors(asyncapi, document) == []
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "shop"
    assert document["info"]["version"] == "1.2.3"


def test_asyncapi_every_reference_resolves() -> None:
    document = asyncapi_document(make_app())
    for ref in refs(document):
        resolve(document, ref)
    for operation in document["operations"].values():
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:  # a subset of the channel's messages
            assert message["$ref"].startswith(channel_ref + "/messages/")
        if "reply" in operation:
            reply_channel = operation["reply"]["channel"]["$ref"]
            for message in operation["reply"]["messages"]:
                assert message["$ref"].startswith(reply_channel + "/messages/")


def test_asyncapi_channels_and_operations() -> None:
    document = asyncapi_document(make_app())
    channels, operations = document["channels"], document["operations"]
    assert list(channels) == ["place", "prices", "fills", "exchange"]  # no external target
    assert channels["place"]["address"] == "tcp://192.0.2.1:5001"
    assert channels["prices"]["address"] == "prices"
    actions = {name: op["action"] for name, op in operations.items()}
    assert actions == {
        "place": "receive",
        "prices": "receive",
        "fills": "send",
        "exchange": "send",
    }
    assert "reply" in operations["place"] and "reply" in operations["exchange"]
    assert "reply" not in operations["prices"] and "reply" not in operations["fills"]
    assert operations["place"]["summary"] == "Place an order."
    assert (
        operations["prices"]["x-zmqservice"]["topic_prefix_hex"] == codec.topic_prefix("BTC").hex()
    )


def test_asyncapi_payloads_are_the_envelopes() -> None:
    document = asyncapi_document(make_app())
    ops = document["operations"]
    request = resolve(document, ops["place"]["messages"][0]["$ref"])
    request = resolve(document, request["$ref"])
    assert request["contentType"] == "application/msgpack"
    assert request["payload"]["required"] == ["args", "workflow_id"]
    assert request["payload"]["properties"]["args"] == type_schema(Order)
    reply_ref, error_ref = (m["$ref"] for m in ops["place"]["reply"]["messages"])
    reply = resolve(document, resolve(document, reply_ref)["$ref"])["payload"]
    assert reply["properties"]["return_args"]["properties"] == {"ok": {"type": "boolean"}}
    error = resolve(document, resolve(document, error_ref)["$ref"])["payload"]
    ok = {"return_args": {"ok": True}, "workflow_id": "w"}
    failed = {
        "return_args": None,
        "workflow_id": "w",
        "error": {"type": "HandlerError", "message": "boom"},
    }
    assert valid(reply, ok) and not valid(reply, failed)
    assert valid(error, failed) and not valid(error, ok)


def test_asyncapi_message_payload_accepts_real_frames() -> None:
    app = make_app()
    document = asyncapi_document(app)
    message = resolve(document, document["channels"]["prices"]["messages"]["message"]["$ref"])
    frame = codec.encode_request({"symbol": "BTC", "price": Decimal("1.5")}, "wf")
    assert valid(message["payload"], msgpack.unpackb(frame, raw=False))


def test_asyncapi_of_a_predecessor_module(asyncapi: jsonschema.protocols.Validator) -> None:
    for name in ("sf_echo.py", "sf_listener.py", "sf_ticker.py", "sf_caller.py"):
        document = asyncapi_document(load_app(str(PREDECESSOR / name)))
        assert errors(asyncapi, json.loads(json.dumps(document))) == [], name


def test_asyncapi_of_an_empty_app(asyncapi: jsonschema.protocols.Validator) -> None:
    document = asyncapi_document(App("empty"))
    assert errors(asyncapi, document) == []
    assert document["channels"] == {} and "components" not in document


def test_asyncapi_keys_are_made_safe_and_unique(asyncapi: jsonschema.protocols.Validator) -> None:
    app = App("odd")
    app.publisher("a b", args={"x": int})
    app.publisher("a_b", args={"x": int})
    document = asyncapi_document(app)
    assert list(document["channels"]) == ["a_b", "a_b_2"]
    assert document["channels"]["a_b"]["address"] == "a b"
    assert errors(asyncapi, document) == []


def test_the_validator_catches_a_broken_document(asyncapi: jsonschema.protocols.Validator) -> None:
    document = asyncapi_document(make_app())
    document["operations"]["place"]["action"] = "publish"  # AsyncAPI 2 wording
    del document["info"]["version"]
    found = errors(asyncapi, document)
    assert found
    assert any("version" in error or "operations" in error for error in found)
