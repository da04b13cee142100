"""The worker checks a result with the master's own JSON check: it refuses exactly what the
master would, and names the place."""

from __future__ import annotations

import datetime as dt
import enum
import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierq.core import Settings
from tierq.core.validate import check_json as check_json_value
from tierq.errors import InvalidRequestError
from tierq.worker.values import NotJSONError, check_json


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -3, 1.5, "x", [], [1, "a", None], (1, 2), {"a": [1, {"b": 2.0}]}],
)
def test_json_values_pass(value: object) -> None:
    check_json(value)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (dt.datetime(2026, 1, 1), "value"),
        ({1, 2}, "value"),
        (b"bytes", "value"),
        ([1, object()], "value[1]"),
        ({"a": {"b": dt.date(2026, 1, 1)}}, "value['a']['b']"),
        ({1: "int key"}, "value"),
        (math.nan, "value"),
        ([math.inf], "value[0]"),
    ],
)
def test_non_json_values_name_the_path(value: object, path: str) -> None:
    with pytest.raises(NotJSONError) as info:
        check_json(value)
    assert info.value.path == path
    assert path in str(info.value)


def test_deep_nesting_is_refused() -> None:
    value: list[object] = []
    inner = value
    for _ in range(100):
        nxt: list[object] = []
        inner.append(nxt)
        inner = nxt
    with pytest.raises(NotJSONError, match="nested deeper"):
        check_json(value)


class _Level(enum.IntEnum):
    HIGH = 3


class _Colour(enum.StrEnum):
    RED = "red"


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.just({"$result": 1}),
    st.sampled_from([_Level.HIGH, _Colour.RED]),
)
_results = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(0, 3)), inner, max_size=3),
    ),
    max_leaves=12,
)


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def master_refuses(result: object) -> bool:
    """What the master does with a result: decode it from MessagePack, then core's check."""
    try:
        wire = msgspec.msgpack.encode(result)
    except (OverflowError, TypeError):
        return True
    limits = Settings()
    try:
        check_json_value(
            msgspec.msgpack.decode(wire), "result", limits.max_json_depth, limits.max_payload_bytes
        )
    except InvalidRequestError:
        return True
    return False


def worker_refuses(result: object) -> bool:
    try:
        check_json(result, "result")
    except NotJSONError:
        return True
    return False


@settings(max_examples=400, deadline=None)
@given(result=st.one_of(_results, st.integers(25, 40).map(_nested)))
def test_the_worker_refuses_exactly_the_results_the_master_refuses(result: object) -> None:
    """Over JSON-like values; sets, datetimes and other objects MessagePack would convert are
    refused on purpose (``test_non_json_values_name_the_path``)."""
    assert worker_refuses(result) == master_refuses(result)


def test_a_result_past_64_bits_is_refused_where_it_is() -> None:
    with pytest.raises(NotJSONError, match="64-bit") as info:
        check_json({"n": [1, 2**64]}, "result")
    assert info.value.path == "result['n'][1]"
