"""The generated fast path must accept and reject exactly what the cattrs path does."""

from __future__ import annotations

import linecache
import traceback
from decimal import Decimal
from typing import Any
from uuid import UUID

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zmqservice.convert import converter
from zmqservice.errors import ValidationError
from zmqservice.fastpath import fast_dump, fast_load
from zmqservice.models import make_model


@attrs.define
class Flat:
    seq: int
    symbol: str
    price: float
    ok: bool
    amount: Decimal
    ident: UUID
    note: str | None = None
    client: str = "bench"


@attrs.define
class Nested:
    flat: Flat


@attrs.define
class WithFactory:
    tags: list[str] = attrs.Factory(list)


VALID = {
    "seq": 1,
    "symbol": "BTC",
    "price": 1.5,
    "ok": True,
    "amount": Decimal("1.50"),
    "ident": UUID(int=7),
}

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
    st.lists(st.integers(), max_size=2),
)


def _cattrs_load(data: Any) -> Any:
    return converter.structure(data, Flat)


def _outcome(fn: Any, data: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(data)
    except Exception as exc:
        return "error", type(exc).__name__


def test_fast_path_is_generated_for_flat_classes() -> None:
    assert fast_load(Flat, _cattrs_load) is not None
    assert fast_dump(Flat, converter.unstructure, converter.unstructure) is not None


@pytest.mark.parametrize("cls", [Nested, WithFactory])
def test_classes_with_non_plain_fields_keep_the_cattrs_path(cls: type) -> None:
    assert fast_load(cls, _cattrs_load) is None


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*VALID, "note", "client", "extra"]), values, max_size=9).map(
        lambda changes: {**VALID, **changes}
    )
)
def test_fast_load_agrees_with_cattrs(data: dict[str, Any]) -> None:
    slow = _outcome(_cattrs_load, data)
    fast_fn = fast_load(Flat, lambda d: (_ for _ in ()).throw(LookupError("fallback")))
    fast = _outcome(fast_fn, data)
    if slow[0] == "ok":
        assert fast == slow  # valid data never needs the fallback, and loads the same
    else:
        assert fast == ("error", "LookupError")  # invalid data: the fast path only defers


def test_the_fast_path_itself_accepts_valid_data() -> None:
    """Without a working fallback, valid data still loads: the generated code did it."""
    fast_fn = fast_load(Flat, lambda d: (_ for _ in ()).throw(LookupError("fallback")))
    assert fast_fn is not None
    assert fast_fn(dict(VALID)) == _cattrs_load(dict(VALID))


def test_fast_load_widens_int_to_float_like_cattrs() -> None:
    model = make_model(Flat)
    assert model.load({**VALID, "price": 2}, "t").price == 2.0
    assert isinstance(model.load({**VALID, "price": 2}, "t").price, float)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("seq", True), ("seq", "1"), ("symbol", 5), ("price", "1.5"), ("ok", 1), ("ident", "x")],
)
def test_model_rejects_through_the_fast_path_with_a_detailed_message(field: str, bad: Any) -> None:
    with pytest.raises(ValidationError, match=rf"\$\.{field}"):
        make_model(Flat).load({**VALID, field: bad}, "in.ticks (subscriber) args")


def test_model_rejects_unknown_and_missing_keys() -> None:
    model = make_model(Flat)
    with pytest.raises(ValidationError, match="extra fields found"):
        model.load({**VALID, "extra": 1}, "t")
    missing = dict(VALID)
    del missing["symbol"]
    with pytest.raises(ValidationError, match="required field missing"):
        model.load(missing, "t")


def test_fast_dump_checks_instance_fields() -> None:
    model = make_model(Flat)
    good = Flat(**VALID)
    assert model.dump(good, "t") == converter.unstructure(good)
    with pytest.raises(ValidationError, match=r"expected str, got int @ \$\.symbol"):
        model.dump(Flat(**{**VALID, "symbol": 5}), "t")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(VALID)), values)
def test_fast_dump_agrees_with_cattrs(field: str, value: Any) -> None:
    instance = Flat(**{**VALID, field: value})
    fast = _outcome(make_model(Flat)._dump, instance)

    def slow(v: Flat) -> Any:
        plain = converter.unstructure(v)
        converter.structure(plain, Flat)
        return plain

    assert (fast[0] == "ok") == (_outcome(slow, instance)[0] == "ok")


@attrs.define
class Picky:
    qty: int

    def __attrs_post_init__(self) -> None:
        raise RuntimeError("picky")


def test_a_traceback_through_a_generated_loader_shows_its_source() -> None:
    load = fast_load(Picky, _cattrs_load)
    assert load is not None
    with pytest.raises(RuntimeError, match="picky") as info:
        load({"qty": 1})
    text = "".join(traceback.format_exception(info.value))
    frame = f'File "<zmqservice generated load {__name__}.Picky>", line 6, in load\n'
    assert frame + "    return cls(qty=v0)\n" in text


def test_a_traceback_through_a_generated_dumper_shows_its_source() -> None:
    def refuse(value: Any) -> Any:
        raise LookupError("fallback")

    dump = fast_dump(Flat, converter.unstructure, refuse)
    assert dump is not None
    with pytest.raises(LookupError) as info:
        dump(Flat(**{**VALID, "seq": "1"}))
    text = "".join(traceback.format_exception(info.value))
    frame = f'File "<zmqservice generated dump {__name__}.Flat>", line 4, in dump\n'
    assert frame + "    return fallback(v)\n" in text


def test_each_generated_source_keeps_its_own_lines() -> None:
    one = attrs.make_class("Same", {"a": attrs.field(type=int)})
    two = attrs.make_class("Same", {"a": attrs.field(type=int), "b": attrs.field(type=str)})
    files = []
    for cls in (one, two, one):
        load = fast_load(cls, _cattrs_load)
        assert load is not None
        files.append(load.__code__.co_filename)
    assert files[0] == files[2] != files[1]
    assert "'b'" in "".join(linecache.getlines(files[1]))
    assert "'b'" not in "".join(linecache.getlines(files[0]))
