"""What the scheduler stores lazily (timestamps of a task READY since submission, the current
attempt's record) still reads the same through queries, snapshots and replay."""

from __future__ import annotations

import random

import msgspec
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


def _decoded(*specs: TaskSpec) -> list[TaskSpec]:
    """Specs as the master gets them: decoded from bytes, each holding its own strings."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(list(specs)), type=list[TaskSpec])


def test_kept_specs_share_names_and_empty_containers() -> None:
    h = Harness()
    # Apart from the plain path, idempotency keys and parents take the general one.
    specs = _decoded(
        TaskSpec(name="resize", queue="img"),
        TaskSpec(name="resize", queue="img", args=[1], kwargs={"k": 2}),
        TaskSpec(name="resize", queue="img", idempotency_key="x"),
    )
    assert specs[0].name is not specs[1].name and specs[0].kwargs is not specs[2].kwargs
    ids = h.submit(*specs)
    kept = [h.state._book.tasks[i].spec for i in ids]
    assert len({id(s.name) for s in kept}) == 1 and len({id(s.queue) for s in kept}) == 1
    assert kept[0].kwargs is kept[2].kwargs and kept[0].args is kept[2].args
    assert (kept[1].args, kept[1].kwargs) == ([1], {"k": 2})
    assert kept == _decoded(*specs)  # values unchanged
    restored = SchedulerState.restore(h.state.snapshot(), random.Random(1))
    again = [restored._book.tasks[i].spec for i in ids]
    assert again[0].name is kept[0].name and again[0].kwargs is kept[0].kwargs
    first, second = (restored._book.tasks[i] for i in ids[:2])
    assert first.timestamps is second.timestamps and first.history is second.history
    assert restored == h.state
    h.check_replay()
