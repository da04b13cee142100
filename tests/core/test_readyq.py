"""ReadyQueue (the scheduler's per-class queue) against a sorted model, aging and not."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tierq.core.live import LiveTask
from tierq.core.model import TaskSpec, TaskState
from tierq.core.pqueue import make_key
from tierq.core.readyq import ReadyQueue

SPEC = TaskSpec(name="job")


def new_task(i: int, priority: int = 0) -> LiveTask:
    return LiveTask(
        id=f"t{i:04d}", spec=SPEC, state=TaskState.READY, submitted_at=0.0, priority=priority
    )


def test_levels_keep_fifo_and_priority() -> None:
    q = ReadyQueue()
    tasks = [new_task(i) for i in range(6)]
    for seq, (task, p) in enumerate(zip(tasks, [1, 5, 1, 5, -3, 1], strict=True)):
        q.push(task, p, 0.0, seq)
    assert q.ordered() == ["t0001", "t0003", "t0000", "t0002", "t0005", "t0004"]
    got = q.take(3)
    assert [t.id for t in got] == ["t0001", "t0003", "t0000"]
    # Taken tasks stay queued until removed, and a second take does not return them.
    assert len(q) == 6
    assert [t.id for t in q.take(2)] == ["t0002", "t0005"]
    q.remove_many(got)
    assert len(q) == 3 and got[0].ready_key is None


def test_update_back_to_an_earlier_priority_is_taken_once() -> None:
    q = ReadyQueue()
    a, b, c = new_task(0), new_task(1), new_task(2)
    for seq, task in enumerate((a, b, c)):
        q.push(task, 1, 0.0, seq)
    q.update(a, 7, 0.0)
    q.update(a, 1, 0.0)  # the same key as its first entry: two copies now
    assert q.ordered() == ["t0000", "t0001", "t0002"]
    assert [t.id for t in q.take(10)] == ["t0000", "t0001", "t0002"]
    assert q.take(10) == []


def test_bound_stops_at_the_other_class_head() -> None:
    q = ReadyQueue()
    tasks = [new_task(i) for i in range(4)]
    for seq, task in enumerate(tasks):
        q.push(task, 3 - seq, 0.0, seq)
    bound = make_key(2, 0.0, 1, 0.0)
    assert [t.id for t in q.take(10, bound)] == ["t0000", "t0001"]
    assert q.head_key() == make_key(1, 0.0, 2, 0.0)


def test_removed_and_requeued_task_is_not_taken_twice() -> None:
    q = ReadyQueue()
    a, b = new_task(0), new_task(1)
    q.push(a, 0, 0.0, 0)
    q.push(b, 0, 0.0, 1)
    q.remove(a)
    q.push(a, 0, 0.0, 2)  # back in, behind b; its first entry is stale
    assert [t.id for t in q.take(5)] == ["t0001", "t0000"]


def test_compaction_bounds_stale_entries() -> None:
    q = ReadyQueue()
    tasks = [new_task(i) for i in range(1000)]
    for seq, task in enumerate(tasks):
        q.push(task, 0, 0.0, seq)
    for r in range(5):
        for i, task in enumerate(tasks):
            q.update(task, (i + r) % 7 + 1, 0.0)
    stats = q.statistics()
    assert stats.size == 1000
    assert stats.heap_entries <= 2 * 1000 + 64
    assert stats.compactions >= 1
    assert len(q.ordered()) == 1000


def test_push_new_matches_push() -> None:
    a, b = ReadyQueue(), ReadyQueue()
    prios = [3, -1, 3, 0, 1000, -1000, 0]
    ta = [new_task(i, p) for i, p in enumerate(prios)]
    tb = [new_task(i, p) for i, p in enumerate(prios)]
    for seq, (task, p) in enumerate(zip(ta, prios, strict=True)):
        a.push(task, p, 0.0, seq)
    b.push_new(tb, list(range(len(tb))))
    assert a.ordered() == b.ordered()
    assert [t.ready_key for t in ta] == [t.ready_key for t in tb]


def test_aging_queue_refuses_push_new() -> None:
    with pytest.raises(AssertionError):
        ReadyQueue(0.5).push_new([new_task(0)], [0])


class ReadyModel(RuleBasedStateMachine):
    """The queue against a dict of live (priority, enqueued_at, seq), sorted by make_key."""

    rate = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.q = ReadyQueue(self.rate)
        self.tasks: dict[str, LiveTask] = {}
        self.model: dict[str, tuple[int, float, int]] = {}
        self.taken: list[LiveTask] = []
        self.seq = 0

    def key(self, item: str) -> int:
        p, enq, seq = self.model[item]
        return make_key(p, enq, seq, self.rate)

    def expected(self) -> list[str]:
        taken = {t.id for t in self.taken}
        return sorted((i for i in self.model if i not in taken), key=self.key)

    def _push(self, task: LiveTask, priority: int, enq: float) -> None:
        self.q.push(task, priority, enq, self.seq)
        self.model[task.id] = (priority, enq, self.seq)
        self.seq += 1

    @rule(priority=st.integers(-1000, 1000), enq=st.floats(0, 100))
    def push(self, priority: int, enq: float) -> None:
        task = new_task(len(self.tasks), priority)
        self.tasks[task.id] = task
        self._push(task, priority, enq)

    @precondition(lambda self: len(self.tasks) > len(self.model))
    @rule(data=st.data(), priority=st.integers(-3, 3))
    def requeue(self, data: st.DataObject, priority: int) -> None:
        out = sorted(i for i in self.tasks if i not in self.model)
        self._push(self.tasks[data.draw(st.sampled_from(out))], priority, 50.0)

    @rule(limit=st.integers(1, 8), use_bound=st.booleans(), data=st.data())
    def take(self, limit: int, use_bound: bool, data: st.DataObject) -> None:
        want = self.expected()
        bound = None
        if use_bound and want:
            bound = self.key(data.draw(st.sampled_from(want)))
            want = [i for i in want if self.key(i) <= bound]
        got = self.q.take(limit, bound)
        assert [t.id for t in got] == want[:limit]
        self.taken += got

    @precondition(lambda self: self.taken)
    @rule()
    def remove_taken(self) -> None:
        self.q.remove_many(self.taken)
        for task in self.taken:
            del self.model[task.id]
        self.taken = []

    @precondition(lambda self: self.expected())
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(self.expected()))
        self.q.remove(self.tasks[item])
        del self.model[item]

    @precondition(lambda self: self.expected())
    @rule(data=st.data(), priority=st.integers(-3, 3))
    def update(self, data: st.DataObject, priority: int) -> None:
        item = data.draw(st.sampled_from(self.expected()))
        _, enq, seq = self.model[item]
        self.q.update(self.tasks[item], priority, enq)
        self.model[item] = (priority, enq, seq)

    @invariant()
    def same_size_head_and_order(self) -> None:
        assert len(self.q) == len(self.model)
        if not self.taken:
            want = self.expected()
            assert self.q.ordered() == want
            assert self.q.head_key() == (self.key(want[0]) if want else None)
            assert sorted(i for i, _ in self.q.entries()) == sorted(want)
        assert self.q.statistics().heap_entries <= 2 * len(self.model) + 64 + 8


class AgingReadyModel(ReadyModel):
    rate = 0.5


TestReadyModel = ReadyModel.TestCase
TestReadyModel.settings = settings(max_examples=80, stateful_step_count=50, deadline=None)
TestAgingReadyModel = AgingReadyModel.TestCase
TestAgingReadyModel.settings = settings(max_examples=40, stateful_step_count=50, deadline=None)


def test_levels_without_aging_keep_no_key_list() -> None:
    # The tokens order a level of one priority, so it stores them once (see readyq.py); keys
    # and bounds are converted at the edges, and agree with make_key.
    q = ReadyQueue()
    tasks = [new_task(i) for i in range(4)]
    for seq, (task, p) in enumerate(zip(tasks, [2, -7, 2, -7], strict=True)):
        q.push(task, p, 0.0, seq)
    for level in q._levels.values():
        assert level.keys is level.toks
    assert q.head_key() == make_key(2, 0.0, 0, 0.0)
    assert [t.id for t in q.take(10, make_key(-7, 0.0, 1, 0.0))] == ["t0000", "t0002", "t0001"]
    assert q.head_key() == make_key(-7, 0.0, 3, 0.0)
