"""Workflows: atomic submission, results flowing down, failure policies, cancellation, views."""

from __future__ import annotations

import pytest
from core_harness import Harness

from tierq.core import (
    FailurePolicy,
    RetryPolicy,
    TaskSpec,
    TaskState,
    WorkflowNode,
    WorkflowSpec,
    event_kind,
)
from tierq.errors import ConflictError, CycleError, InvalidRequestError, NotFoundError

ONCE = RetryPolicy(max_attempts=1)


def diamond(policy: FailurePolicy = FailurePolicy.SKIP_DEPENDENTS, **kw: object) -> WorkflowSpec:
    """a -> (b, c) -> d, plus an independent e."""
    return WorkflowSpec(
        nodes=[
            WorkflowNode(key="d", spec=TaskSpec(name="d", depends_on=("b", "c"))),
            WorkflowNode(key="a", spec=TaskSpec(name="a", retry=ONCE)),
            WorkflowNode(key="b", spec=TaskSpec(name="b", args=[{"$result": "a"}], retry=ONCE)),
            WorkflowNode(key="c", spec=TaskSpec(name="c", kwargs={"x": {"$result": "a"}})),
            WorkflowNode(key="e", spec=TaskSpec(name="e")),
        ],
        edges=[("a", "b"), ("a", "c")],
        on_failure=policy,
        **kw,  # type: ignore[arg-type]
    )


TYPES = ("a", "b", "c", "d", "e")


def submit(h: Harness, wf: WorkflowSpec) -> tuple[str, dict[str, str]]:
    evs, wf_id, ids = h.state.submit_workflow(wf, h.now)
    h.rec(evs)
    return wf_id, ids


def run(h: Harness, ids: dict[str, str], fail: set[str] = frozenset()) -> dict[str, object]:  # type: ignore[assignment]
    """Lease and report until nothing is left; returns what each key was handed."""
    by_id = {v: k for k, v in ids.items()}
    seen: dict[str, object] = {}
    for _ in range(20):
        leased = h.lease(10)
        if not leased:
            break
        for t in leased:
            key = by_id[t.id]
            seen[key] = (t.args, t.kwargs, t.parent_results)
            if key in fail:
                h.fail(t.id, attempt=t.attempt)
            else:
                h.succeed(t.id, attempt=t.attempt, result=f"r-{key}")
    return seen


def states(h: Harness, ids: dict[str, str]) -> dict[str, str]:
    return {k: h.state.get(v).state.value for k, v in ids.items()}


def test_events_parents_first_and_results_flow(h: Harness) -> None:
    wf_id, ids = submit(h, diamond())
    kinds = [event_kind(e) for e in h.events]
    assert kinds == ["workflow_submitted"] + ["task_submitted"] * 5
    order = [e.id for e in h.events[1:]]  # type: ignore[union-attr]
    assert order.index(ids["a"]) < order.index(ids["b"]) < order.index(ids["d"])
    assert order == sorted(order)  # ids are handed out in that order too
    h.region(types=TYPES)
    seen = run(h, ids)
    assert seen["b"] == (["r-a"], {}, {ids["a"]: "r-a"})
    assert seen["c"] == ([], {"x": "r-a"}, {ids["a"]: "r-a"})
    assert seen["d"][2] == {ids["b"]: "r-b", ids["c"]: "r-c"}  # type: ignore[index]
    view = h.state.workflow(wf_id)
    assert view.state == "succeeded" and view.done == view.total == 5
    assert {n.key: n.level for n in view.nodes} == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0}
    assert event_kind(h.events[-1]) == "workflow_finished"
    h.check_replay()


def test_skip_dependents(h: Harness) -> None:
    wf_id, ids = submit(h, diamond(FailurePolicy.SKIP_DEPENDENTS))
    h.region(types=TYPES)
    run(h, ids, fail={"b"})
    assert states(h, ids) == {
        "a": "succeeded",
        "b": "dead",
        "c": "succeeded",
        "d": "skipped",
        "e": "succeeded",
    }
    assert h.state.get(ids["d"]).reason == f"parent {ids['b']} is dead"
    assert h.state.workflow(wf_id).state == "failed"
    h.check_replay()


def test_fail_workflow_cancels_the_rest(h: Harness) -> None:
    wf_id, ids = submit(h, diamond(FailurePolicy.FAIL_WORKFLOW))
    h.region(types=TYPES)
    leased = h.lease(10)  # a and e are ready
    assert sorted(t.name for t in leased) == ["a", "e"]
    h.fail(ids["a"])
    assert states(h, ids) == {
        "a": "dead",
        "b": "cancelled",
        "c": "cancelled",
        "d": "cancelled",
        "e": "cancelled",
    }
    assert h.state.workflow(wf_id).state == "failed"
    assert [event_kind(e) for e in h.succeed(ids["e"])] == ["task_duplicate_report"]
    h.check_replay()


def test_continue_passes_the_error_down(h: Harness) -> None:
    wf_id, ids = submit(h, diamond(FailurePolicy.CONTINUE))
    h.region(types=TYPES)
    seen = run(h, ids, fail={"a"})
    err = seen["b"][0][0]  # type: ignore[index]
    assert err["$error"]["state"] == "dead" and err["$error"]["type"] == "ValueError"
    assert states(h, ids)["d"] == "succeeded"
    assert h.state.workflow(wf_id).state == "failed"
    h.check_replay()


def test_cancel_workflow(h: Harness) -> None:
    wf_id, _ids = submit(h, diamond())
    h.region(types=TYPES)
    h.lease(1)
    evs = h.rec(h.state.cancel_workflow(wf_id, h.now))
    assert [event_kind(e) for e in evs].count("task_cancelled") == 5
    assert event_kind(evs[-1]) == "workflow_finished" and evs[-1].state == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(ConflictError):
        h.state.cancel_workflow(wf_id, h.now)
    with pytest.raises(NotFoundError):
        h.state.cancel_workflow("wf_nope", h.now)
    h.check_replay()


def test_workflow_idempotency(h: Harness) -> None:
    wf_id, ids = submit(h, diamond(idempotency_key="w1"))
    evs, again, ids2 = h.state.submit_workflow(diamond(idempotency_key="w1"), h.now)
    assert evs == [] and again == wf_id and ids2 == ids
    with pytest.raises(ConflictError):
        h.state.submit_workflow(diamond(FailurePolicy.CONTINUE, idempotency_key="w1"), h.now)


def test_node_may_depend_on_existing_task(h: Harness) -> None:
    (ext,) = h.submit(TaskSpec(name="a"))
    wf = WorkflowSpec(nodes=[WorkflowNode(key="x", spec=TaskSpec(name="b", depends_on=(ext,)))])
    _, ids = submit(h, wf)
    assert h.state.get(ids["x"]).state is TaskState.PENDING
    h.region(types=TYPES)
    h.lease()
    assert [event_kind(e) for e in h.succeed(ext)] == ["task_succeeded", "task_ready"]
    h.check_replay()


@pytest.mark.parametrize(
    ("wf", "error", "field"),
    [
        (
            WorkflowSpec(
                nodes=[WorkflowNode(key="a", spec=TaskSpec(name="a"))], edges=[("a", "a")]
            ),
            CycleError,
            "edges",
        ),
        (
            WorkflowSpec(
                nodes=[WorkflowNode(key="a", spec=TaskSpec(name="a", args=[{"$result": "zz"}]))]
            ),
            InvalidRequestError,
            "nodes[0].spec.args",
        ),
        (
            WorkflowSpec(
                nodes=[WorkflowNode(key="a", spec=TaskSpec(name="a", idempotency_key="k"))]
            ),
            InvalidRequestError,
            "nodes[0].spec.idempotency_key",
        ),
        (
            WorkflowSpec(nodes=[WorkflowNode(key="a", spec=TaskSpec(name="a", priority=-5000))]),
            InvalidRequestError,
            "nodes[0].spec.priority",
        ),
        (
            WorkflowSpec(nodes=[WorkflowNode(key="a", spec=TaskSpec(name="a"))], name=""),
            InvalidRequestError,
            "name",
        ),
    ],
)
def test_refused_workflows_change_nothing(
    h: Harness, wf: WorkflowSpec, error: type[Exception], field: str
) -> None:
    before = h.state.snapshot()
    with pytest.raises(error) as info:
        h.state.submit_workflow(wf, h.now)
    assert getattr(info.value, "field", None) == field
    assert h.state.snapshot() == before


def test_wide_fan_in_and_out(h: Harness) -> None:
    n = 2000
    nodes = [WorkflowNode(key="root", spec=TaskSpec(name="a"))]
    nodes += [
        WorkflowNode(key=f"m{i}", spec=TaskSpec(name="b", depends_on=("root",))) for i in range(n)
    ]
    nodes.append(
        WorkflowNode(
            key="sink", spec=TaskSpec(name="c", depends_on=tuple(f"m{i}" for i in range(n)))
        )
    )
    wf_id, _ids = submit(h, WorkflowSpec(nodes=nodes))
    h.region(types=TYPES)
    for _ in range(5):
        for t in h.lease(5000):
            h.succeed(t.id, result=1)
    assert h.state.workflow(wf_id).state == "succeeded"
    assert max(n.level for n in h.state.workflow(wf_id).nodes) == 2


def test_workflow_view_pages_its_nodes() -> None:
    h = Harness()
    chain = WorkflowSpec(
        nodes=[WorkflowNode(key=f"n{i}", spec=TaskSpec(name="a")) for i in range(25)],
        edges=[(f"n{i}", f"n{i + 1}") for i in range(24)],
    )
    _, wf_id, _ = h.state.submit_workflow(chain, h.now)
    whole = h.state.workflow(wf_id)
    assert whole.next_cursor is None and len(whole.nodes) == 25
    pages = [h.state.workflow(wf_id, limit=10)]
    while pages[-1].next_cursor is not None:
        pages.append(h.state.workflow(wf_id, cursor=pages[-1].next_cursor, limit=10))
    assert [len(p.nodes) for p in pages] == [10, 10, 5]
    assert [p.next_cursor for p in pages] == ["10", "20", None]
    assert [n for p in pages for n in p.nodes] == whole.nodes
    assert [e for p in pages for e in p.edges] == whole.edges
    # Each page carries the edges into its own nodes, and counts for the whole workflow.
    second = {n.task_id for n in pages[1].nodes}
    assert all(child in second for _, child in pages[1].edges)
    assert all(p.total == 25 and p.counts == whole.counts for p in pages)
    for bad in ("x", "-1", "26", "1e3"):
        with pytest.raises(InvalidRequestError) as err:
            h.state.workflow(wf_id, cursor=bad)
        assert err.value.field == "cursor"
    with pytest.raises(InvalidRequestError):
        h.state.workflow(wf_id, limit=0)


def test_list_workflows_newest_first_with_pages_and_filters() -> None:
    h = Harness()
    h.region(types=("a",))
    ids = []
    for i in range(5):
        h.now += 1
        one = WorkflowSpec(name=f"w{i}", nodes=[WorkflowNode(key="x", spec=TaskSpec(name="a"))])
        ids.append(h.state.submit_workflow(one, h.now)[1])
    h.rec(h.state.cancel_workflow(ids[1], h.now))
    for leased in h.lease(slots=1):  # the oldest READY task: w0's
        h.succeed(leased.id)
    rows, cursor = h.state.list_workflows(limit=2)
    assert [r.id for r in rows] == [ids[4], ids[3]] and cursor == ids[3]
    rows, cursor = h.state.list_workflows(limit=2, cursor=cursor)
    assert [r.id for r in rows] == [ids[2], ids[1]]
    rows, cursor = h.state.list_workflows(limit=2, cursor=cursor)
    assert [r.id for r in rows] == [ids[0]] and cursor is None
    assert (rows[0].state, rows[0].total, rows[0].done) == ("succeeded", 1, 1)
    assert [r.id for r in h.state.list_workflows(state="running")[0]] == ids[4:1:-1]
    assert [r.id for r in h.state.list_workflows(state="cancelled")[0]] == [ids[1]]
    assert h.state.list_workflows(state="failed") == ([], None)
    # A full page with nothing after it in the filter has no next cursor.
    assert h.state.list_workflows(state="cancelled", limit=1)[1] is None
    for bad in ({"limit": 0}, {"state": "done"}, {"cursor": "t_123"}):
        with pytest.raises(InvalidRequestError):
            h.state.list_workflows(**bad)  # type: ignore[arg-type]
