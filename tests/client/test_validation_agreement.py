"""The SDK refuses exactly what a master with default settings refuses.

Whatever a user passes as an argument, ``TaskDef.spec`` either refuses it with an
``InvalidRequestError`` or builds a spec that the master accepts after the trip over the wire;
and every value the master accepts, the SDK accepts too.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

import tierq
from tierq.core import SchedulerState, Settings, TaskSpec
from tierq.errors import InvalidRequestError

app = tierq.App()


@app.task(name="t")
def t(*args: Any, **kwargs: Any) -> None:
    return None


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=4),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(0, 3)), inner, max_size=3),
    ),
    max_leaves=12,
)


def _deep(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def master_refuses(value: object) -> bool:
    try:
        wire = msgspec.msgpack.encode(TaskSpec(name="t", args=[value]))
    except (OverflowError, TypeError):
        return True  # it cannot even be sent
    spec = msgspec.msgpack.decode(wire, type=TaskSpec)
    state = SchedulerState(Settings(), random.Random(1))
    try:
        state.submit([spec], 1_700_000_000.0)
    except InvalidRequestError:
        return True
    return False


def sdk_refuses(value: object) -> bool:
    try:
        t.spec(value)
    except InvalidRequestError:
        return True
    return False


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(_values, st.integers(25, 40).map(_deep)))
def test_the_sdk_refuses_exactly_what_the_master_refuses(value: object) -> None:
    assert sdk_refuses(value) == master_refuses(value)


def test_an_integer_past_64_bits_is_refused_with_a_message() -> None:
    try:
        t.spec(2**70)
    except InvalidRequestError as exc:
        assert "64-bit" in exc.message and exc.field is not None and "args" in exc.field
    else:
        raise AssertionError("2**70 was accepted")
