from __future__ import annotations

import datetime as dt
import math

import pytest

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
