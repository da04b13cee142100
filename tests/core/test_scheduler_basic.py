"""SchedulerState: the main paths (submit, lease, report, tick) and replay of each."""

from __future__ import annotations

import pytest
from core_harness import Harness

from tierq.core import (
    ErrorSummary,
    Outcome,
    OutcomeKind,
    RetryPolicy,
    TaskSpec,
    TaskState,
    event_kind,
)
from tierq.errors import NotFoundError


def test_submit_lease_succeed(h: Harness) -> None:
    ids = h.submit(TaskSpec(name="a", priority=1), TaskSpec(name="a", priority=5))
    h.region()
    leased = h.lease()
    assert [t.id for t in leased] == [ids[1], ids[0]]
    assert h.state.get(ids[0]).state is TaskState.ASSIGNED
    evs = h.succeed(ids[0], result={"x": 1})
    assert [event_kind(e) for e in evs] == ["task_succeeded"]
    assert h.state.get(ids[0]).result == {"x": 1}
    h.check_replay()


def test_failure_retries_then_dead(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a", retry=RetryPolicy(max_attempts=2, jitter=0.0)))
    h.region()
    h.lease()
    evs = h.fail(tid)
    assert [event_kind(e) for e in evs] == ["task_failed"]
    assert h.state.get(tid).state is TaskState.FAILED
    assert h.state.next_wakeup() == pytest.approx(h.now + 1.0)
    h.tick(h.now + 1.0)
    assert h.state.get(tid).state is TaskState.READY
    assert h.state.get(tid).attempt == 2
    h.region()  # the lease above lapsed while we waited? re-register is harmless
    (t,) = h.lease()
    assert t.attempt == 2
    evs = h.fail(tid, attempt=2)
    assert [event_kind(e) for e in evs] == ["task_failed", "task_dead"]
    assert h.state.get(tid).state is TaskState.DEAD
    h.check_replay()


def test_duplicate_report_changes_nothing(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a"))
    h.region()
    h.lease()
    h.succeed(tid)
    before = h.state.snapshot()
    evs = h.succeed(tid)
    assert [event_kind(e) for e in evs] == ["task_duplicate_report"]
    assert h.state.statistics(h.now).totals.duplicate_reports == 1
    after = h.state.get(tid)
    assert after.state is TaskState.SUCCEEDED
    assert before != h.state.snapshot()  # only the counter moved
    h.check_replay()


def test_lost_outcome_requeues_at_once(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a"))
    h.region()
    h.lease()
    o = Outcome(task_id=tid, attempt=1, kind=OutcomeKind.LOST)
    evs = h.rec(h.state.report([o], h.now))
    assert [event_kind(e) for e in evs] == ["task_failed", "task_ready"]
    t = h.state.get(tid)
    assert (t.state, t.attempt) is not None and t.state is TaskState.READY and t.attempt == 2
    h.check_replay()


def test_unknown_region_must_register(h: Harness) -> None:
    with pytest.raises(NotFoundError):
        h.state.lease("nowhere", "x", 1, h.now)


def test_failed_with_error_summary_is_kept(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a"))
    h.region()
    h.lease()
    err = ErrorSummary(type="KeyError", message="k")
    h.rec(
        h.state.report([Outcome(task_id=tid, attempt=1, kind=OutcomeKind.FAILED, error=err)], h.now)
    )
    assert h.state.get(tid).error == err


def test_latency_type_leaves_out_tasks_that_waited_on_purpose(h: Harness) -> None:
    plain, later = h.submit(TaskSpec(name="a"), TaskSpec(name="a", run_at=h.now + 60))
    (child,) = h.submit(TaskSpec(name="b", depends_on=(plain,)))
    assert h.state.latency_type(plain) == "a"
    assert h.state.latency_type(later) is None
    assert h.state.latency_type(child) is None
    assert h.state.latency_type("nope") is None
