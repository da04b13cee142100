"""What the scheduler stores lazily (timestamps of a task READY since submission, the current
attempt's record) still reads the same through queries, snapshots and replay."""

from __future__ import annotations

import random

from core_harness import T0, Harness

from tierq.core import SchedulerState, Started, TaskSpec, TaskState


def test_ready_task_shows_its_ready_time_and_assignment() -> None:
    h = Harness()
    h.region()
    (tid,) = h.submit(TaskSpec(name="a"))
    task = h.state.get(tid)
    assert task.timestamps == {"ready": T0}
    assert task.history == [] and task.ready_key is None
    h.now = T0 + 2
    h.lease()
    task = h.state.get(tid)
    assert task.timestamps == {"ready": T0, "assigned": T0 + 2}
    # The attempt's record is shown before the scheduler made it.
    assert [(r.attempt, r.region, r.assigned_at) for r in task.history] == [(1, "eu", T0 + 2)]
    h.check_replay()


def test_attempt_record_is_made_once_and_kept() -> None:
    h = Harness()
    h.region()
    (tid,) = h.submit(TaskSpec(name="a"))
    h.now = T0 + 1
    h.lease()
    h.rec(h.state.report_started([Started(task_id=tid, attempt=1, worker="w1")], T0 + 2))
    h.fail(tid, attempt=1)
    h.tick(T0 + 5)  # past the retry backoff (about 1 s)
    h.lease()
    h.succeed(tid, attempt=2, result=5)
    history = h.state.get(tid).history
    assert [(r.attempt, r.worker, r.outcome) for r in history] == [
        (1, "w1", "failed"),
        (2, None, "succeeded"),
    ]
    assert history[0].started_at == T0 + 2 and history[1].assigned_at == T0 + 5
    h.check_replay()


def test_cancelled_while_ready_keeps_both_times_and_snapshot_round_trips() -> None:
    h = Harness()
    a, b = h.submit(TaskSpec(name="a"), TaskSpec(name="a", priority=5))
    h.rec(h.state.cancel(a, T0 + 3))
    assert h.state.get(a).timestamps == {"ready": T0, "cancelled": T0 + 3}
    restored = SchedulerState.restore(h.state.snapshot(), random.Random(1))
    assert restored == h.state
    assert restored.get(b).timestamps == {"ready": T0}
    assert restored.get(b).state is TaskState.READY
    h.check_replay()
