"""The workflow builder: refs become ``{"$result": key}`` plus an edge."""

from __future__ import annotations

import pytest

import tierq
from tierq import FailurePolicy, InvalidRequestError

app = tierq.App("nats://127.0.0.1:1")


@app.task
def extract(url: str) -> list[int]:
    return [1, 2]


@app.task
def transform(rows: list[int], factor: int = 1) -> list[int]:
    return rows


@app.task
def load(rows: list[int], table: str) -> int:
    return len(rows)


def test_refs_become_result_placeholders_and_edges() -> None:
    wf = app.workflow("etl", on_failure="fail_workflow", idempotency_key="day-1")
    raw = wf.add(extract, "s3://x")
    rows = wf.add(transform, raw, factor=2, priority=4)
    wf.add(load, rows=rows, table="t", key="store")
    spec = wf.spec()
    assert spec.name == "etl"
    assert spec.on_failure is FailurePolicy.FAIL_WORKFLOW
    assert spec.idempotency_key == "day-1"
    nodes = {n.key: n.spec for n in spec.nodes}
    assert list(nodes) == ["extract", "transform", "store"]
    assert nodes["transform"].args == [{"$result": "extract"}]
    assert nodes["transform"].kwargs == {"factor": 2}
    assert nodes["transform"].priority == 4
    assert nodes["store"].kwargs == {"rows": {"$result": "transform"}, "table": "t"}
    assert spec.edges == [("extract", "transform"), ("transform", "store")]


def test_keys_are_made_unique_and_depends_on_adds_plain_edges() -> None:
    wf = app.workflow()
    a = wf.add(extract, "1")
    b = wf.add(extract, "2")
    c = wf.add(transform, a, depends_on=[b])
    assert (a.key, b.key, c.key) == ("extract", "extract-2", "transform")
    assert wf.spec().edges == [("extract", "transform"), ("extract-2", "transform")]


def test_the_same_parent_twice_is_one_edge() -> None:
    wf = app.workflow()
    a = wf.add(extract, "1")
    wf.add("any.name", a, a)
    assert wf.spec().edges == [("extract", "name")]


def test_sinks_of_a_diamond() -> None:
    from tierq.client._workflow import sink_keys

    wf = app.workflow()
    a = wf.add(extract, "1")
    b = wf.add(transform, a, key="left")
    c = wf.add(transform, a, key="right")
    wf.add("join", b, c, key="join")
    wf.add(extract, "lonely", key="alone")
    assert sink_keys(wf.spec()) == ["join", "alone"]


def test_errors() -> None:
    wf = app.workflow()
    other = app.workflow()
    foreign = other.add(extract, "x")
    with pytest.raises(InvalidRequestError, match="no tasks"):
        wf.spec()
    with pytest.raises(InvalidRequestError, match="another workflow"):
        wf.add(transform, foreign)
    a = wf.add(extract, "x", key="a")
    with pytest.raises(InvalidRequestError, match="used twice"):
        wf.add(extract, "y", key="a")
    with pytest.raises(InvalidRequestError, match="as a whole argument") as info:
        wf.add(transform, [a])
    assert info.value.field == "args[0]"
    with pytest.raises(InvalidRequestError, match="belongs to the workflow"):
        wf.add(extract, "z", idempotency_key="k")
    with pytest.raises(InvalidRequestError, match="depends_on"):
        wf.add(extract, "z", depends_on=["not-a-ref"])
    with pytest.raises(InvalidRequestError, match="on_failure"):
        app.workflow(on_failure="explode")
    with pytest.raises(InvalidRequestError, match="arguments do not match"):
        wf.add(load, a)


def test_workflow_handle_lookup() -> None:
    from tierq.client import WorkflowHandle

    handle = WorkflowHandle(app, "wf_1", {"a": "t1", "b": "t2"}, sinks=["b"])
    assert handle["a"].id == "t1"
    with pytest.raises(KeyError):
        handle.task("zzz")
