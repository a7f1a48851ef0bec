"""Args/returns models: attrs classes, dataclasses and predecessor dict specs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from decimal import Decimal
from typing import Any, Literal, Optional
from uuid import UUID

import attrs
import pytest

from zmqservice import ValidationError
from zmqservice.models import make_model

WHERE = "in.cancel_order (replyer) args"
ID = UUID("12345678-1234-5678-1234-567812345678")


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


@attrs.define
class CancelOrder:
    order_id: str
    reason: str = "user"


@attrs.define
class Leg:
    qty: int


@attrs.define
class Rich:
    price: Decimal
    id: UUID
    tags: set[str]
    at: dt.datetime
    leg: Leg
    side: Side
    kind: Literal["limit", "market"]
    note: Optional[int]  # noqa: UP045 - the spelling users of Python 3.9 code write
    legs: list[Leg]
    totals: dict[str, int]


@dataclasses.dataclass
class Ping:
    host: str
    count: int = 3


def rich_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "price": Decimal("1.50"),
        "id": ID,
        "tags": {"a", "b"},
        "at": "2024-05-06T07:08:09",
        "leg": {"qty": 1},
        "side": "buy",
        "kind": "limit",
        "note": None,
        "legs": [{"qty": 2}],
        "totals": {"x": 1},
    }
    data.update(changes)
    return data


def error_of(model_spec: object, data: object, **kwargs: object) -> str:
    model = make_model(model_spec, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as info:
        model.load(data, WHERE)
    return str(info.value)


# -- attrs classes and dataclasses ----------------------------------------------------------


def test_attrs_model_loads_an_instance() -> None:
    assert make_model(CancelOrder).load({"order_id": "A1"}, WHERE) == CancelOrder("A1", "user")


def test_attrs_model_fills_a_missing_optional_field_from_its_default() -> None:
    assert make_model(CancelOrder).load({"order_id": "A1"}, WHERE).reason == "user"


def test_attrs_model_splits_required_and_optional_fields() -> None:
    model = make_model(CancelOrder)
    assert (model.required, model.optional) == ({"order_id": str}, {"reason": str})


def test_dataclass_model_loads_an_instance_with_defaults() -> None:
    assert make_model(Ping).load({"host": "h"}, WHERE) == Ping("h", 3)


def test_dataclass_model_splits_required_and_optional_fields() -> None:
    model = make_model(Ping)
    assert (model.required, model.optional) == ({"host": str}, {"count": int})


def test_dataclass_model_rejects_a_wrong_type() -> None:
    assert "expected int, got str @ $.count" in error_of(Ping, {"host": "h", "count": "3"})


def test_class_model_rejects_a_non_map() -> None:
    assert error_of(CancelOrder, ["A1"]) == f"{WHERE}: expected map, got list @ $"


def test_class_model_rejects_optional_args() -> None:
    with pytest.raises(TypeError, match="optional fields go on the class"):
        make_model(CancelOrder, {"extra": int})


def test_make_model_rejects_an_unsupported_spec() -> None:
    with pytest.raises(TypeError, match="a model must be None"):
        make_model(int)


# -- the None model -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 1, "x", [1, {"a": b"b"}], {"any": {"thing": 1.5}}])
def test_none_model_passes_anything_through(value: object) -> None:
    model = make_model(None)
    assert model.is_any
    assert model.load(value, WHERE) == value
    assert model.dump(value, WHERE) == value


def test_none_spec_with_optional_args_is_a_dict_model() -> None:
    model = make_model(None, {"limit": int})
    assert not model.is_any
    assert model.load({}, WHERE) == {}


# -- predecessor dict specs -----------------------------------------------------------------


def test_dict_model_loads_a_validated_dict() -> None:
    model = make_model({"order_id": str, "qty": int})
    assert model.load({"order_id": "A1", "qty": 2}, WHERE) == {"order_id": "A1", "qty": 2}


def test_dict_model_optional_field_may_be_omitted() -> None:
    model = make_model({"order_id": str}, {"reason": str})
    assert model.load({"order_id": "A1"}, WHERE) == {"order_id": "A1"}


def test_dict_model_optional_field_is_validated_when_present() -> None:
    message = error_of({"order_id": str}, {"order_id": "A1", "reason": 5}, optional={"reason": str})
    assert "expected str, got int @ $.reason" in message


def test_dict_model_reports_required_and_optional_fields() -> None:
    model = make_model({"order_id": str}, {"reason": str})
    assert (model.required, model.optional) == ({"order_id": str}, {"reason": str})


def test_dict_shorthand_str_to_int_accepts_a_matching_map() -> None:
    model = make_model({"counts": {str: int}})
    assert model.load({"counts": {"a": 1, "b": 2}}, WHERE) == {"counts": {"a": 1, "b": 2}}


def test_dict_shorthand_str_to_int_rejects_a_wrong_value() -> None:
    message = error_of({"counts": {str: int}}, {"counts": {"a": "1"}})
    assert "expected int, got str @ $.counts['a']" in message


def test_dict_shorthand_str_to_int_rejects_a_wrong_key() -> None:
    assert "expected str, got int" in error_of({"counts": {str: int}}, {"counts": {1: 1}})


def test_list_shorthand_accepts_a_list_of_ints() -> None:
    assert make_model({"ids": [int]}).load({"ids": [1, 2]}, WHERE) == {"ids": [1, 2]}


def test_list_shorthand_rejects_a_wrong_item_naming_its_index() -> None:
    assert "expected int, got str @ $.ids[1]" in error_of({"ids": [int]}, {"ids": [1, "2"]})


def test_list_shorthand_rejects_a_string() -> None:
    assert "expected array, got str @ $.ids" in error_of({"ids": [int]}, {"ids": "12"})


def test_tuple_spec_loads_an_array_as_a_tuple() -> None:
    model = make_model({"pair": (int, str)})
    assert model.load({"pair": [1, "a"]}, WHERE) == {"pair": (1, "a")}


def test_tuple_spec_rejects_a_wrong_item_type() -> None:
    assert "expected int, got str @ $.pair" in error_of({"pair": (int, str)}, {"pair": ["a", 1]})


def test_tuple_spec_rejects_a_wrong_length() -> None:
    assert "@ $.pair" in error_of({"pair": (int, str)}, {"pair": [1]})


def test_set_shorthand_accepts_a_set() -> None:
    assert make_model({"tags": {str}}).load({"tags": {"a"}}, WHERE) == {"tags": {"a"}}


def test_set_shorthand_rejects_a_list() -> None:
    assert "expected set, got list @ $.tags" in error_of({"tags": {str}}, {"tags": ["a"]})


def test_set_shorthand_rejects_a_wrong_item_type() -> None:
    assert "expected str, got int @ $.tags" in error_of({"tags": {str}}, {"tags": {1}})


def test_nested_dict_spec_loads_a_nested_dict() -> None:
    model = make_model({"leg": {"qty": int, "side": str}})
    data = {"leg": {"qty": 1, "side": "buy"}}
    assert model.load(data, WHERE) == data


def test_nested_dict_spec_rejects_an_unknown_nested_field() -> None:
    message = error_of({"leg": {"qty": int}}, {"leg": {"qty": 1, "price": 2}})
    assert "extra fields found (price) @ $.leg" in message


def test_nested_dict_spec_rejects_a_missing_nested_field() -> None:
    message = error_of({"leg": {"qty": int, "side": str}}, {"leg": {"qty": 1}})
    assert "required field missing @ $.leg.side" in message


# -- typed fields ---------------------------------------------------------------------------


def test_rich_attrs_model_loads_every_supported_type() -> None:
    assert make_model(Rich).load(rich_data(), WHERE) == Rich(
        price=Decimal("1.50"),
        id=ID,
        tags={"a", "b"},
        at=dt.datetime(2024, 5, 6, 7, 8, 9),
        leg=Leg(1),
        side=Side.BUY,
        kind="limit",
        note=None,
        legs=[Leg(2)],
        totals={"x": 1},
    )


@pytest.mark.parametrize("value", ["1.50", 1.5, 1])
def test_decimal_field_rejects_non_decimals(value: object) -> None:
    assert "expected Decimal" in error_of(Rich, rich_data(price=value))


def test_uuid_field_rejects_a_uuid_string() -> None:
    assert "expected UUID, got str @ $.id" in error_of(Rich, rich_data(id=str(ID)))


def test_set_field_rejects_a_list() -> None:
    assert "expected set, got list @ $.tags" in error_of(Rich, rich_data(tags=["a"]))


def test_datetime_field_accepts_a_native_datetime() -> None:
    moment = dt.datetime(2024, 1, 2, 3, 4, 5)
    assert make_model(Rich).load(rich_data(at=moment), WHERE).at == moment


def test_datetime_field_rejects_a_number() -> None:
    assert "expected datetime (ISO 8601 string), got int @ $.at" in error_of(Rich, rich_data(at=5))


def test_datetime_field_rejects_a_non_iso_string() -> None:
    assert "@ $.at" in error_of(Rich, rich_data(at="yesterday"))


def test_nested_attrs_error_names_the_nested_path() -> None:
    assert "expected int, got str @ $.leg.qty" in error_of(Rich, rich_data(leg={"qty": "1"}))


def test_list_of_attrs_error_names_the_index() -> None:
    assert "@ $.legs[0].qty" in error_of(Rich, rich_data(legs=[{"qty": 1.0}]))


def test_enum_field_rejects_an_unknown_value() -> None:
    assert "@ $.side" in error_of(Rich, rich_data(side="hold"))


def test_literal_field_rejects_another_value() -> None:
    assert "@ $.kind" in error_of(Rich, rich_data(kind="stop"))


def test_optional_field_accepts_its_type() -> None:
    assert make_model(Rich).load(rich_data(note=3), WHERE).note == 3


def test_optional_field_rejects_another_type() -> None:
    assert "expected int, got str @ $.note" in error_of(Rich, rich_data(note="3"))


def test_dict_field_rejects_a_wrong_value_type() -> None:
    assert "@ $.totals['x']" in error_of(Rich, rich_data(totals={"x": "1"}))


# -- strictness -----------------------------------------------------------------------------


def test_str_field_rejects_an_int() -> None:
    message = error_of({"order_id": str}, {"order_id": 5})
    assert message == f"{WHERE}: expected str, got int @ $.order_id"


@pytest.mark.parametrize(
    ("value", "got"), [("5", "str"), (5.0, "float"), (True, "bool")], ids=["str", "float", "bool"]
)
def test_int_field_rejects_a_non_int(value: object, got: str) -> None:
    message = error_of({"qty": int}, {"qty": value})
    assert message == f"{WHERE}: expected int, got {got} @ $.qty"


def test_bool_field_rejects_an_int() -> None:
    assert "expected bool, got int @ $.ok" in error_of({"ok": bool}, {"ok": 1})


def test_float_field_accepts_an_int_as_the_one_widening() -> None:
    assert make_model({"price": float}).load({"price": 2}, WHERE) == {"price": 2.0}


@pytest.mark.parametrize("value", ["1.5", True])
def test_float_field_rejects_str_and_bool(value: object) -> None:
    assert "expected float" in error_of({"price": float}, {"price": value})


def test_unknown_field_is_rejected_naming_it() -> None:
    message = error_of(CancelOrder, {"order_id": "A1", "colour": "red"})
    assert message == f"{WHERE}: extra fields found (colour) @ $"


def test_unknown_field_in_a_dict_model_is_rejected() -> None:
    assert "extra fields found (colour)" in error_of(
        {"order_id": str}, {"order_id": "A", "colour": 1}
    )


def test_missing_required_field_is_rejected_naming_it() -> None:
    assert error_of(CancelOrder, {}) == f"{WHERE}: required field missing @ $.order_id"


def test_every_failing_field_is_reported() -> None:
    message = error_of({"a": str, "b": int}, {"a": 1, "b": "x"})
    assert "expected str, got int @ $.a" in message
    assert "expected int, got str @ $.b" in message


# -- dump -----------------------------------------------------------------------------------


def test_dump_turns_an_attrs_instance_into_a_dict() -> None:
    assert make_model(CancelOrder).dump(CancelOrder("A1"), WHERE) == {
        "order_id": "A1",
        "reason": "user",
    }


def test_dump_accepts_a_dict_for_a_class_model() -> None:
    model = make_model(CancelOrder)
    assert model.dump({"order_id": "A1"}, WHERE) == {"order_id": "A1", "reason": "user"}


def test_dump_checks_the_types_of_an_attrs_instance() -> None:
    with pytest.raises(ValidationError, match=r"expected str, got int @ \$\.order_id"):
        make_model(CancelOrder).dump(CancelOrder(5), WHERE)  # type: ignore[arg-type]


def test_dump_rejects_an_instance_of_another_class() -> None:
    with pytest.raises(ValidationError, match="expected map, got Leg"):
        make_model(CancelOrder).dump(Leg(1), WHERE)


def test_dump_turns_a_dataclass_instance_into_a_dict() -> None:
    assert make_model(Ping).dump(Ping("h"), WHERE) == {"host": "h", "count": 3}


def test_dump_validates_a_dict_model() -> None:
    with pytest.raises(ValidationError, match=r"required field missing @ \$\.qty"):
        make_model({"order_id": str, "qty": int}).dump({"order_id": "A1"}, WHERE)


def test_dump_keeps_wire_types_and_writes_datetimes_as_iso_strings() -> None:
    plain = make_model(Rich).dump(make_model(Rich).load(rich_data(), WHERE), WHERE)
    assert plain == {
        "price": Decimal("1.50"),
        "id": ID,
        "tags": {"a", "b"},
        "at": "2024-05-06T07:08:09",
        "leg": {"qty": 1},
        "side": "buy",
        "kind": "limit",
        "note": None,
        "legs": [{"qty": 2}],
        "totals": {"x": 1},
    }


def test_field_type_looks_up_required_and_optional_fields() -> None:
    model = make_model({"order_id": str}, {"qty": int})
    assert (model.field_type("order_id"), model.field_type("qty"), model.field_type("x")) == (
        str,
        int,
        None,
    )


def test_non_str_map_keys_are_refused_at_declaration() -> None:
    @attrs.define
    class Counts:
        by_id: list[dict[int, str]]

    with pytest.raises(TypeError, match="map keys must be str"):
        make_model(Counts, name="counts")
    with pytest.raises(TypeError, match="map keys must be str"):
        make_model({"by_id": {int: str}}, name="counts")


def test_names_with_dashes_build_dict_models() -> None:
    model = make_model({"qty": int}, {"note": str}, name="order-desk place-order args")
    assert model.load({"qty": 1}, "t") == {"qty": 1}


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    [({str: int}, {"a": 1}, {"a": "1"}), ([int], [1, 2], [1, "2"]), ((int, str), [1, "a"], [1])],
    ids=["map", "list", "tuple"],
)
def test_whole_model_shorthands_validate(spec: Any, good: Any, bad: Any) -> None:
    model = make_model(spec, name="shorthand")
    assert model.load(good, "t") == (tuple(good) if isinstance(spec, tuple) else good)
    with pytest.raises(ValidationError, match=r"^t: "):
        model.load(bad, "t")


def test_literal_errors_list_the_allowed_values() -> None:
    model = make_model({"side": Literal["buy", "sell"]}, name="order")
    with pytest.raises(ValidationError, match=r"expected one of 'buy', 'sell' @ \$\.side"):
        model.load({"side": "hold"}, "order args")


def test_private_attrs_fields_are_named_as_on_the_wire() -> None:
    @attrs.define
    class Private:
        _secret: int

    model = make_model(Private, name="p")
    assert model.required == {"_secret": int}
    assert model.load({"_secret": 1}, "t") == Private(1)


# -- explaining a failure is bounded: a peer chooses how many failures there are ---------------


N = 100_000
WRONG_MAP = {f"k{i}": "x" for i in range(N)}


@pytest.mark.parametrize(
    ("spec", "data", "path", "skipped"),
    [
        ({"items": list[list[int]]}, {"items": ["x"] * N}, "$.items[9]", N - 10),
        ({"items": list[list[int]]}, {"items": [[1.5]] * N}, "$.items[9][0]", N - 10),
        ({"pairs": tuple[int, ...]}, {"pairs": ["x"] * N}, "$.pairs[9]", N - 10),
        # a map's keys are checked too: two values per entry
        ({"scores": {str: int}}, {"scores": WRONG_MAP}, "['k9']", 2 * N - 20),
    ],
)
def test_an_explanation_lists_at_most_max_errors_and_says_what_it_skipped(
    spec: Any, data: Any, path: str, skipped: int
) -> None:
    from zmqservice.convert import MAX_ERRORS

    assert MAX_ERRORS == 10
    with pytest.raises(ValidationError) as caught:
        make_model(spec).load(data, "in.x (replyer) args")
    message = str(caught.value)
    assert message.count("expected") == MAX_ERRORS, message
    assert path in message
    assert f"; {skipped} more value(s) not checked after 10 errors @ $." in message


def test_an_explanation_under_the_cap_lists_every_failure() -> None:
    with pytest.raises(ValidationError) as caught:
        make_model({"items": list[int]}).load({"items": [1, "a", 2, "b"]}, "where")
    assert str(caught.value) == (
        "where: expected int, got str @ $.items[1]; expected int, got str @ $.items[3]"
    )


def test_a_value_after_an_explanation_is_checked_in_full_again() -> None:
    model = make_model({"items": list[int]})
    with pytest.raises(ValidationError):
        model.load({"items": ["x"] * 100}, "where")
    with pytest.raises(ValidationError, match=r"\$\.items\[50\]$"):
        model.load({"items": [*[1] * 50, "x"]}, "where")
