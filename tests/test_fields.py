"""The one field walk: attrs classes, dataclasses and TypedDicts read the same way."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import attrs
import pytest
from typing_extensions import NotRequired, TypedDict

from zmqservice.fields import Field, is_class_record, is_record, record_fields


@attrs.define
class Order:
    symbol: str
    _secret: int
    qty: Annotated[int, "lots"] = 1
    tags: list[str] = attrs.Factory(list)
    seen: int = attrs.field(init=False, default=0)


@dataclasses.dataclass
class Quote:
    symbol: str
    venues: list[str] = dataclasses.field(default_factory=list)
    price: float | None = None


# The functional form, as models builds them: with string annotations (this module's
# __future__ import) a class-form TypedDict cannot see NotRequired when it is created.
Tick = TypedDict("Tick", {"seq": int, "note": NotRequired[str]})  # noqa: UP013


def test_attrs_fields_are_keyed_by_attribute_name_with_resolved_hints() -> None:
    assert record_fields(Order) == (
        Field("symbol", "symbol", str, True, attrs.NOTHING, factory=False, init=True),
        Field("_secret", "secret", int, True, attrs.NOTHING, factory=False, init=True),
        Field("qty", "qty", int, False, 1, factory=False, init=True),
        Field("tags", "tags", list[str], False, attrs.NOTHING, factory=True, init=True),
        Field("seen", "seen", int, False, 0, factory=False, init=False),
    )


def test_dataclass_default_factory_is_optional_without_a_default() -> None:
    symbol, venues, price = record_fields(Quote)
    assert (symbol.required, symbol.default) == (True, attrs.NOTHING)
    assert (venues.required, venues.default, venues.factory) == (False, attrs.NOTHING, True)
    assert (price.required, price.default, price.type) == (False, None, float | None)


def test_typeddict_required_keys() -> None:
    assert [(f.name, f.type, f.required) for f in record_fields(Tick)] == [
        ("seq", int, True),
        ("note", str, False),
    ]


@pytest.mark.parametrize(
    ("tp", "record", "class_record"),
    [(Order, True, True), (Quote, True, True), (Tick, True, False), (dict, False, False)],
)
def test_what_is_a_record(tp: object, record: bool, class_record: bool) -> None:
    assert (is_record(tp), is_class_record(tp)) == (record, class_record)


def test_anything_else_is_refused() -> None:
    with pytest.raises(TypeError, match="not an attrs class, a dataclass or a TypedDict"):
        record_fields(Order(symbol="x", secret=1))
