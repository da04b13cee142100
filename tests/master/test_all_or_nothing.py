"""A request answered with an error changes nothing: every master operation, any bad input.

Each operation starts from a valid request against a state that holds tasks in every state
the request can touch; hypothesis replaces one field anywhere in it with a hostile value (or
sends arbitrary bytes). Whenever the handler refuses, the state's snapshot must be byte for
byte what it was: a command validates all of its input before it changes anything.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierq.core import (
    ErrorSummary,
    Outcome,
    OutcomeKind,
    RegionInfo,
    RetryPolicy,
    SchedulerState,
    Settings,
    Started,
    TaskSpec,
    WorkflowNode,
    WorkflowSpec,
)
from tierq.errors import TierqError
from tierq.master.handlers import Handlers
from tierq.master.metrics import LiveMetrics

T0 = 1_700_000_000.0


def _state() -> tuple[SchedulerState, dict[str, str]]:
    state = SchedulerState(Settings(), random.Random(3))
    state.register_region(RegionInfo(name="eu", instance="i1", task_types=("a", "b")), T0)
    _, ids = state.submit(
        [
            TaskSpec(name="a", args=[1], idempotency_key="k1"),
            TaskSpec(name="a", args=[2]),
            TaskSpec(name="b", args=[3], retry=RetryPolicy(max_attempts=1)),
            TaskSpec(name="a", args=[4]),
        ],
        T0,
    )
    state.lease("eu", "i1", 3, T0 + 1)
    state.report_started([Started(task_id=ids[0], attempt=1, worker="w1")], T0 + 2)
    state.report(
        [
            Outcome(
                task_id=ids[2],
                attempt=1,
                kind=OutcomeKind.FAILED,
                error=ErrorSummary(type="ValueError", message="no"),
            )
        ],
        T0 + 3,
    )
    node = WorkflowNode(key="n", spec=TaskSpec(name="a"))
    _, workflow, _ = state.submit_workflow(WorkflowSpec(name="w", nodes=[node]), T0 + 4)
    return state, {
        "running": ids[0],
        "assigned": ids[1],
        "dead": ids[2],
        "ready": ids[3],
        "workflow": workflow,
    }


def _templates(ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    spec = {"name": "a", "args": [1, "x"], "kwargs": {"k": 1.5}, "priority": 3, "retry": {}}
    return {
        "submit": {"tasks": [spec, {**spec, "idempotency_key": "k2"}]},
        "submit_workflow": {
            "workflow": {
                "name": "wf",
                "nodes": [
                    {"key": "p", "spec": spec},
                    {"key": "c", "spec": {**spec, "args": []}, "after": ["p"]},
                ],
            }
        },
        "register": {"info": {"name": "us", "instance": "u1", "task_types": ["a"]}},
        "report": {
            "region": "eu",
            "instance": "i1",
            "started": [{"task_id": ids["assigned"], "attempt": 1, "worker": "w2"}],
            "progress": [{"task_id": ids["running"], "attempt": 1, "fraction": 0.5}],
            "outcomes": [
                {"task_id": ids["running"], "attempt": 1, "kind": "succeeded", "result": [1]}
            ],
            "held": [[ids["running"], 1], [ids["assigned"], 1]],
        },
        "cancel": {"id": ids["ready"]},
        "cancel_workflow": {"id": ids["workflow"]},
        "reprioritize": {"id": ids["ready"], "priority": 9},
        "retry": {"id": ids["dead"]},
        "settings": {"settings": msgspec.to_builtins(Settings())},
        "query": {"kind": "tasks", "limit": 10},
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON-like document a value can be put."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


_hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, -1, 2**31, 2**62, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    # Strings that break names and ids, drawn often: most validation is about them.
    st.sampled_from(["", "\x00", "a\x00b", "w" * 300, "\uff33hell", "..", "a.b", "*", ">", " "]),
    st.sampled_from(["\x00", "w" * 300, "\u202e"]),
    st.binary(max_size=20),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(min_value=0, max_value=9), max_size=3),
)

_OPS = sorted(_templates({k: "x" for k in ("running", "assigned", "dead", "ready", "workflow")}))


@pytest.mark.parametrize("op", _OPS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_refused_request_changes_nothing(op: str, data: st.DataObject) -> None:
    state, ids = _state()
    handlers = Handlers(state, {}, LiveMetrics())
    template = _templates(ids)[op]
    if data.draw(st.booleans(), label="raw bytes"):
        payload = data.draw(st.binary(max_size=64), label="payload")
    else:
        path = data.draw(st.sampled_from(_paths(template)), label="path")
        value = data.draw(_hostile, label="value")
        payload = msgspec.msgpack.encode(_replace(template, path, value))
    before = state.snapshot()
    try:
        handlers.table[op](payload, T0 + 10)
    except TierqError:
        assert state.snapshot() == before
    # Anything else than TierqError escapes and fails the test: a bug, not bad input.


@pytest.mark.parametrize("op", _OPS)
def test_the_templates_are_valid(op: str) -> None:
    """The starting requests are accepted, so the mutations above start from a valid one."""
    state, ids = _state()
    handlers = Handlers(state, {}, LiveMetrics())
    handlers.table[op](msgspec.msgpack.encode(_templates(ids)[op]), T0 + 10)


def test_a_bad_outcome_after_a_good_start_changes_nothing() -> None:
    """The case found by fault injection: a NUL in an outcome's worker id, behind a valid
    start and progress in the same report, used to apply the start and the progress."""
    state, ids = _state()
    handlers = Handlers(state, {}, LiveMetrics())
    report = _templates(ids)["report"]
    report["outcomes"][0]["worker"] = "w\x00"
    before = state.snapshot()
    with pytest.raises(TierqError, match="worker"):
        handlers.report(msgspec.msgpack.encode(report), T0 + 10)
    assert state.snapshot() == before
