"""One ``tasks_assigned`` event per lease call; old ``task_assigned`` logs still replay; a lease
never touches the queues of classes the region cannot run."""

from __future__ import annotations

import gc
import random

import msgspec
import pytest
from core_harness import T0, Harness

from tierq.core import (
    Event,
    RegionInfo,
    SchedulerState,
    Settings,
    TaskAssigned,
    TasksAssigned,
    TaskSpec,
    TaskState,
    event_kind,
    event_task_id,
)
from tierq.core.ids import IdGenerator
from tierq.core.pqueue import IndexedPriorityQueue, make_key
from tierq.core.validate import check_specs
from tierq.errors import InvalidRequestError


def test_one_event_per_lease_in_hand_out_order(h: Harness) -> None:
    ids = h.submit(*(TaskSpec(name="a", priority=p) for p in (1, 5, 3)))
    h.region()
    evs, leased = h.state.lease("eu", "i1", 10, h.now)
    h.rec(evs)
    assert [event_kind(e) for e in evs] == ["tasks_assigned"]
    (ev,) = evs
    assert isinstance(ev, TasksAssigned)
    assert ev.ids == [t.id for t in leased] == [ids[1], ids[2], ids[0]]
    assert ev.attempts == [1, 1, 1] and ev.region == "eu"
    assert event_task_id(ev) is None
    for tid in ids:
        task = h.state.get(tid)
        assert task.state is TaskState.ASSIGNED and task.region == "eu"
        assert task.timestamps["assigned"] == h.now
        assert [(r.attempt, r.region) for r in task.history] == [(1, "eu")]
    assert h.state.statistics(h.now).held_by_region == {"eu": 3}
    h.check_replay()


def test_old_task_assigned_logs_replay_to_the_same_state(h: Harness) -> None:
    h.submit(*(TaskSpec(name="a", priority=p) for p in range(5)))
    h.region()
    h.lease(3)
    # The same log with the batch split into the per-task events older masters wrote.
    old: list[Event] = []
    for ev in h.events:
        if isinstance(ev, TasksAssigned):
            old += [
                TaskAssigned(at=ev.at, id=tid, attempt=a, region=ev.region)
                for tid, a in zip(ev.ids, ev.attempts, strict=True)
            ]
        else:
            old.append(ev)
    fresh = SchedulerState(h.settings, random.Random(0))
    for ev in old:
        fresh.apply(ev)
    assert fresh == h.state
    assert fresh.lease("eu", "i1", 10, h.now)[1] == h.state.lease("eu", "i1", 10, h.now)[1]


def test_a_batch_applies_checks_every_transition(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a"))
    h.region()
    h.lease()
    with pytest.raises(InvalidRequestError):
        h.state.apply(TasksAssigned(at=h.now, region="eu", ids=[tid], attempts=[]))
    before = h.state.statistics(h.now).by_state
    with pytest.raises(InvalidRequestError):  # ASSIGNED -> ASSIGNED is not a transition
        h.state.apply(TasksAssigned(at=h.now, region="eu", ids=[tid], attempts=[1]))
    assert h.state.statistics(h.now).by_state == before


def test_lease_merges_classes_across_batches(h: Harness) -> None:
    a = h.submit(*(TaskSpec(name="a", priority=p) for p in (9, 1, 5)))
    b = h.submit(*(TaskSpec(name="b", priority=p) for p in (8, 2, 6)))
    h.region()
    got = [t.id for t in h.lease(2)] + [t.id for t in h.lease(10)]
    assert got == [a[0], b[0], b[2], a[2], b[1], a[1]]
    h.check_replay()


def test_lease_ignores_tasks_the_region_cannot_run() -> None:
    """100k READY tasks pinned to a region that does not exist: leasing for a live region
    never pops, scans or re-keys their queue (the master's lease path, reproduced in the core)."""
    st = SchedulerState(Settings(), random.Random(1))
    st.register_region(RegionInfo(name="eu", instance="i", task_types=("job",)), T0)
    for k in range(100):
        st.submit([TaskSpec(name="job", region="nowhere", priority=5)] * 1000, T0 + k)
    pinned = st._book.placement.get(("job", "nowhere", (), None))
    assert pinned is not None
    before = pinned.statistics()
    now = T0 + 200
    for _ in range(300):
        now += 0.01
        (tid,) = st.submit([TaskSpec(name="job")], now)[1]
        _, leased = st.lease("eu", "i", 10, now)
        assert [t.id for t in leased] == [tid]
        st.tick(now)
        st.next_wakeup()
    assert pinned.statistics() == before
    assert st.statistics(now).by_state["ready"] == 100_000


def test_take_pops_only_the_heap_until_remove() -> None:
    q = IndexedPriorityQueue()
    for i, p in enumerate((3, 9, 1, 7)):
        q.push(f"t{i}", p)
    q.remove("t3")
    assert q.take(2) == ["t1", "t0"]
    assert len(q) == 3 and "t1" in q  # still queued until removed
    bound = q.key("t2") - 1
    assert q.take(5, bound) == []
    assert q.remove("t1") and q.remove("t0")
    assert q.ordered() == ["t2"] and q.pop() == "t2"


def test_a_queue_without_times_cannot_age() -> None:
    q = IndexedPriorityQueue(keep_times=False)
    q.push("a", 1, enqueued_at=50.0)
    q.update("a", 4)
    assert q.priority("a") == 4
    with pytest.raises(ValueError):
        q.set_rate(1.0)
    with pytest.raises(ValueError):
        IndexedPriorityQueue(0.5, keep_times=False)


def test_next_many_matches_next() -> None:
    one, many = IdGenerator(), IdGenerator()
    for now, n in ((T0, 3), (T0, 1), (T0 + 0.5, 4), (T0 - 10, 2), (T0 + 1, 0)):
        assert many.next_many(now, n) == [one.next(now) for _ in range(n)]
        assert (many.counter, many.last_ms, many.last_id) == (one.counter, one.last_ms, one.last_id)


def test_check_specs_names_the_failing_index() -> None:
    ok = TaskSpec(name="a")
    with pytest.raises(InvalidRequestError) as err:
        check_specs([ok, ok, TaskSpec(name="a", priority=5000)], "nodes", Settings(), ".spec")
    assert err.value.field == "nodes[2].spec.priority"


def test_a_mixed_batch_keeps_every_counter(h: Harness) -> None:
    """A batch across classes, queues and priority bands (the batched apply groups them) ends in
    the same counters as the same assignments applied one task_assigned at a time."""
    specs = [
        TaskSpec(name=n, priority=p, queue=q, labels=lb)
        for n, p, q, lb in [
            ("a", -5, "default", ()),
            ("a", 0, "other", ()),
            ("b", 7, "default", ("gpu",)),
            ("b", 600, "other", ()),
            ("a", 499, "default", ()),
            ("b", 500, "default", ()),
            ("a", 0, "default", ()),
        ]
    ]
    h.submit(*specs)
    h.region(types=("a", "b"), labels=("gpu",))
    leased = h.lease(5)
    assert len(leased) == 5
    one_by_one = SchedulerState(h.settings, random.Random(0))
    for ev in h.events:
        if isinstance(ev, TasksAssigned):
            for tid, a in zip(ev.ids, ev.attempts, strict=True):
                one_by_one.apply(TaskAssigned(at=ev.at, id=tid, attempt=a, region=ev.region))
        else:
            one_by_one.apply(ev)
    assert one_by_one == h.state
    # Everything but the queue's heap size (a replay never pops the heap, a live lease does).
    live, replayed = h.state.statistics(h.now), one_by_one.statistics(h.now)
    assert msgspec.structs.replace(live, queue=replayed.queue) == replayed
    assert one_by_one.admission_statistics() == h.state.admission_statistics()
    h.check_replay()
    assert [t.id for t in h.lease(10)] == [t.id for t in one_by_one.lease("eu", "i1", 10, h.now)[1]]


def test_a_batch_naming_a_task_twice_is_refused(h: Harness) -> None:
    a, b = h.submit(TaskSpec(name="a"), TaskSpec(name="a"))
    h.region()
    with pytest.raises(InvalidRequestError):
        h.state.apply(TasksAssigned(at=h.now, region="eu", ids=[a, b, a], attempts=[1, 1, 1]))


def test_push_key_and_remove_many_match_push_and_remove() -> None:
    a = IndexedPriorityQueue(keep_times=False)
    b = IndexedPriorityQueue(keep_times=False)
    for seq, p in enumerate((3, -2, 9, 3, 0, 9)):
        a.push(f"t{seq}", p, 0.0, seq)
        b.push_key(f"t{seq}", make_key(p, 0.0, seq, 0.0))
    assert a.ordered() == b.ordered()
    a.remove("t2")
    a.remove("t4")
    b.remove_many(["t2", "t4"])
    assert a.ordered() == b.ordered() and len(a) == len(b) == 4
    assert a.take(4) == b.take(4)
    with pytest.raises(KeyError):
        b.remove_many(["nope"])
    with pytest.raises(ValueError):
        IndexedPriorityQueue().push_key("x", 1)


def test_a_dropped_state_needs_no_cyclic_collection() -> None:
    """No reference cycle inside a state: a master that replaces its state (restore) frees the
    old one at once, and the collector never has to walk a million tasks to find it."""
    gc.collect()
    gc.disable()
    try:
        st = SchedulerState(Settings(), random.Random(1))
        st.register_region(RegionInfo(name="eu", instance="i", task_types=("job",)), T0)
        st.submit([TaskSpec(name="job", priority=p) for p in range(50)], T0)
        st.lease("eu", "i", 20, T0)
        del st
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_task_rekeyed_back_to_its_old_priority_is_leased_once(h: Harness) -> None:
    """Re-keying 1 -> 0 -> 1 pushes the key that is still in the heap (stale) a second time;
    a lease used to hand the task out twice and fail applying its own event (found by the
    property test)."""
    h.submit(*(TaskSpec(name="a") for _ in range(4)))
    (tid,) = h.submit(TaskSpec(name="a", priority=1))
    h.rec(h.state.reprioritize(tid, 0, h.now))
    h.rec(h.state.reprioritize(tid, 1, h.now))
    h.region()
    got = [t.id for t in h.lease(2)]
    assert got[0] == tid and len(set(got)) == 2
    assert len(h.lease(10)) == 3
    h.check_replay()


def test_take_skips_copies_of_a_key() -> None:
    for limit in (1, 2, 5):
        q = IndexedPriorityQueue(keep_times=False)
        for seq, p in enumerate((0, 5, 0)):
            q.push(f"t{seq}", p, 0.0, seq)
        q.update("t1", 0)
        q.update("t1", 5)  # the key from before is live again, and in the heap twice
        first = q.take(limit)
        rest = q.take(10)
        assert first + rest == ["t1", "t0", "t2"]


def test_a_lease_for_some_types_hands_out_only_those(h: Harness) -> None:
    """A region asks for the types of its workers that have room (issue #11): a busier,
    higher-priority type must not take those slots."""
    busy = h.submit(*(TaskSpec(name="busy", priority=9) for _ in range(3)))
    idle = h.submit(*(TaskSpec(name="idle") for _ in range(3)))
    h.region(types=("busy", "idle"))
    evs, leased = h.state.lease("eu", "i1", 2, h.now, types={"idle"})
    h.rec(evs)
    assert [t.id for t in leased] == idle[:2]
    evs, leased = h.state.lease("eu", "i1", 10, h.now, types=None)
    h.rec(evs)
    assert [t.id for t in leased] == [*busy, idle[2]]
    assert h.state.lease("eu", "i1", 10, h.now, types=set())[1] == []
    h.check_replay()
