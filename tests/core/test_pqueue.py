"""IndexedPriorityQueue: unit table plus a hypothesis comparison with a sorted-list model."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tierq.core.pqueue import IndexedPriorityQueue


def drain(q: IndexedPriorityQueue) -> list[str]:
    out = []
    while q:
        out.append(q.pop())
    return out


@pytest.mark.parametrize(
    ("pushes", "expected"),
    [
        ([("a", 1), ("b", 5), ("c", 3)], ["b", "c", "a"]),
        ([("a", 0), ("b", 0), ("c", 0)], ["a", "b", "c"]),  # FIFO among equals
        ([("a", -5), ("b", 5), ("c", -5), ("d", 5)], ["b", "d", "a", "c"]),
        ([("a", 1000), ("b", -1000)], ["a", "b"]),
    ],
)
def test_pop_order(pushes: list[tuple[str, int]], expected: list[str]) -> None:
    q = IndexedPriorityQueue()
    for item, p in pushes:
        q.push(item, p)
    assert q.peek() == expected[0]
    assert drain(q) == expected


def test_update_remove_contains() -> None:
    q = IndexedPriorityQueue()
    for i, p in enumerate([1, 2, 3]):
        q.push(f"t{i}", p)
    q.update("t0", 10)
    assert q.priority("t0") == 10
    assert q.remove("t1") is True
    assert q.remove("t1") is False
    assert "t1" not in q and "t0" in q
    assert len(q) == 2
    assert drain(q) == ["t0", "t2"]
    with pytest.raises(IndexError):
        q.pop()
    assert q.peek() is None


def test_update_keeps_place_among_equals() -> None:
    q = IndexedPriorityQueue()
    for name in "abc":
        q.push(name, 1)
    q.update("a", 5)
    q.update("a", 1)  # back to equal: still first, it was inserted first
    assert drain(q) == ["a", "b", "c"]


def test_double_push_is_refused() -> None:
    q = IndexedPriorityQueue()
    q.push("a", 1)
    with pytest.raises(KeyError):
        q.push("a", 2)


def test_aging_lets_old_entries_overtake() -> None:
    # rate 0.1/s: an entry 1 point lower but 20 s older is effectively 1 point higher.
    q = IndexedPriorityQueue(rate=0.1)
    q.push("old", 1, enqueued_at=1000.0)
    q.push("new", 2, enqueued_at=1020.0)
    assert drain(q) == ["old", "new"]
    q.push("old", 1, enqueued_at=1000.0)
    q.push("new", 2, enqueued_at=1005.0)
    assert drain(q) == ["new", "old"]


def test_set_rate_rekeys() -> None:
    q = IndexedPriorityQueue()
    q.push("old", 1, enqueued_at=1000.0)
    q.push("new", 2, enqueued_at=1100.0)
    q.set_rate(1.0)
    assert q.ordered() == ["old", "new"]
    assert q.priority("new") == pytest.approx(2)


def test_compaction_bounds_stale_entries() -> None:
    q = IndexedPriorityQueue()
    for i in range(1000):
        q.push(str(i), 0)
    for r in range(5):
        for i in range(1000):
            q.update(str(i), (i + r) % 7 + 1)
    stats = q.statistics()
    assert stats.size == 1000
    assert stats.heap_entries <= 2 * 1000 + 64
    assert stats.compactions >= 1
    assert stats.updates > 0


def test_statistics_counts() -> None:
    q = IndexedPriorityQueue()
    q.push("a", 1)
    q.push("b", 1)
    q.pop()
    q.remove("b")
    s = q.statistics()
    assert (s.size, s.pushes, s.pops, s.removes) == (0, 2, 1, 1)


class QueueModel(RuleBasedStateMachine):
    """The queue against a list sorted by (-priority, insertion order)."""

    def __init__(self) -> None:
        super().__init__()
        self.q = IndexedPriorityQueue()
        self.model: dict[str, tuple[int, int]] = {}  # id -> (priority, seq)
        self.seq = 0
        self.next_id = 0

    @initialize()
    def start(self) -> None:
        self.q = IndexedPriorityQueue()

    def expected(self) -> list[str]:
        return [k for k, _ in sorted(self.model.items(), key=lambda kv: (-kv[1][0], kv[1][1]))]

    @rule(priority=st.integers(-1000, 1000))
    def push(self, priority: int) -> None:
        item = f"t{self.next_id}"
        self.next_id += 1
        self.q.push(item, priority, seq=self.seq)
        self.model[item] = (priority, self.seq)
        self.seq += 1

    @precondition(lambda self: self.model)
    @rule()
    def pop(self) -> None:
        head = self.expected()[0]
        assert self.q.pop() == head
        del self.model[head]

    @precondition(lambda self: self.model)
    @rule(data=st.data(), priority=st.integers(-1000, 1000))
    def update(self, data: st.DataObject, priority: int) -> None:
        item = data.draw(st.sampled_from(sorted(self.model)))
        self.q.update(item, priority)
        self.model[item] = (priority, self.model[item][1])

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(sorted(self.model)))
        assert self.q.remove(item)
        del self.model[item]

    @invariant()
    def same_head_and_size(self) -> None:
        assert len(self.q) == len(self.model)
        assert self.q.peek() == (self.expected()[0] if self.model else None)

    @invariant()
    def same_order(self) -> None:
        assert self.q.ordered() == self.expected()


TestQueueModel = QueueModel.TestCase
TestQueueModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
