"""Workflow validation: cycles, unknown and duplicate keys, size; levels for drawing."""

from __future__ import annotations

import pytest

from tierq.core import TaskSpec, WorkflowNode, WorkflowSpec, plan_workflow, topological_levels
from tierq.errors import (
    CycleError,
    DuplicateTaskError,
    GraphTooLargeError,
    InvalidRequestError,
    UnknownTaskError,
)


def wf(
    keys: list[str], edges: list[tuple[str, str]], deps: dict[str, tuple[str, ...]] | None = None
):
    deps = deps or {}
    nodes = [WorkflowNode(key=k, spec=TaskSpec(name="a", depends_on=deps.get(k, ()))) for k in keys]
    return WorkflowSpec(nodes=nodes, edges=edges)


def plan(spec: WorkflowSpec, existing: set[str] | None = None, max_nodes: int = 100_000):
    known = existing or set()
    return plan_workflow(spec, max_nodes, 1_000_000, known.__contains__)


@pytest.mark.parametrize(
    ("spec", "error", "ids"),
    [
        (wf(["a"], [("a", "a")]), CycleError, ("a",)),
        (wf(["a", "b"], [("a", "b"), ("b", "a")]), CycleError, ("a", "b")),
        (wf(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")]), CycleError, ("b", "c")),
        (wf(["a", "b"], [], {"a": ("b",), "b": ("a",)}), CycleError, ("a", "b")),
        (wf(["a"], [], {"a": ("a",)}), CycleError, ("a",)),
        (wf(["a"], [("a", "zz")]), UnknownTaskError, ("zz",)),
        (wf(["a"], [], {"a": ("nope",)}), UnknownTaskError, ("nope",)),
        (wf(["a", "a", "b", "b"], []), DuplicateTaskError, ("a", "b")),
        (WorkflowSpec(nodes=[]), InvalidRequestError, ()),
    ],
)
def test_refused(spec: WorkflowSpec, error: type[Exception], ids: tuple[str, ...]) -> None:
    with pytest.raises(error) as info:
        plan(spec)
    assert sorted(getattr(info.value, "ids", ())) == sorted(ids)
    for key in ids:
        assert key in str(info.value)


def test_too_large() -> None:
    with pytest.raises(GraphTooLargeError, match="limit is 2"):
        plan(wf(["a", "b", "c"], []), max_nodes=2)


def test_bad_key() -> None:
    with pytest.raises(InvalidRequestError) as info:
        plan(wf(["ok", "bad\x00"], []))
    assert info.value.field == "nodes[1].key"


def test_long_cycle_is_found_iteratively() -> None:
    n = 100_000
    keys = [f"k{i}" for i in range(n)]
    edges = [(keys[i], keys[(i + 1) % n]) for i in range(n)]
    with pytest.raises(CycleError) as info:
        plan(wf(keys, edges))
    assert len(info.value.ids) == 100  # capped, but names real members of the cycle
    assert set(info.value.ids) <= set(keys)


def test_order_parents_first_and_external_parents() -> None:
    spec = wf(["c", "b", "a"], [("a", "b"), ("b", "c")], {"a": ("ext1",)})
    p = plan(spec, existing={"ext1"})
    order_keys = [spec.nodes[i].key for i in p.order]
    assert order_keys == ["a", "b", "c"]
    assert p.external[2] == ("ext1",)
    assert sorted(p.edges) == sorted([(2, 1), (1, 0)])


def test_duplicate_edges_collapse() -> None:
    spec = wf(["a", "b"], [("a", "b"), ("a", "b")], {"b": ("a",)})
    assert plan(spec).edges == [(0, 1)]


@pytest.mark.parametrize(
    ("ids", "parents", "levels"),
    [
        (["a", "b", "c"], {"b": ["a"], "c": ["b"]}, [0, 1, 2]),
        (["a", "b", "c", "d"], {"d": ["a", "c"], "c": ["b"]}, [0, 0, 1, 2]),
        (["x"], {"x": ["outside"]}, [0]),
    ],
)
def test_levels(ids: list[str], parents: dict[str, list[str]], levels: list[int]) -> None:
    assert topological_levels(ids, lambda t: parents.get(t, [])) == levels
