"""The durable intake applied by the core: client-made ids, refusals, the marker, replay."""

from __future__ import annotations

import contextlib
import random

from core_harness import T0, Harness
from hypothesis import given, settings
from hypothesis import strategies as st

from tierq.core import (
    AdmissionSettings,
    IntakeApplied,
    IntakeItem,
    SchedulerState,
    Settings,
    TaskRefused,
    TaskSpec,
    TaskState,
    TaskSubmitted,
)
from tierq.core.ids import client_id, client_id_ms
from tierq.errors import BackpressureError


def _item(seq: int, spec: TaskSpec | None, at: float = T0, token: str = "") -> IntakeItem:
    return IntakeItem(seq, client_id(at, token or f"k{seq}"), spec)


def test_client_ids_are_checked_and_sort_by_their_millisecond() -> None:
    made = client_id(T0, "abc123")
    assert client_id_ms(made) == int(T0 * 1000)
    for bad in ("", "x", "0197a3f2c1e0", "0197a3f2c1e0-", "0197a3f2c1e0-a.b", 7, "zzzzzzzzzzzz-a"):
        assert client_id_ms(bad) is None
    assert client_id_ms(made + "x" * 40) is None
    h = Harness()
    [master_made] = h.submit(TaskSpec(name="a"))
    assert client_id(T0 - 0.001, "z") < master_made < client_id(T0 + 0.001, "a")


def test_entries_become_tasks_under_the_clients_ids_and_the_marker_moves() -> None:
    h = Harness()
    items = [_item(1, TaskSpec(name="a")), _item(2, TaskSpec(name="b", priority=5))]
    events = h.rec(h.state.apply_intake(items, h.now))
    assert [type(e) for e in events] == [TaskSubmitted, TaskSubmitted, IntakeApplied]
    assert events[-1] == IntakeApplied(at=h.now, upto=2)
    assert h.state.intake_seq == 2
    assert h.state.get(items[1].id).state is TaskState.READY
    assert h.state.get(items[1].id).priority == 5
    h.region()
    assert {t.id for t in h.lease(5)} == {items[0].id, items[1].id}
    h.check_replay()


def test_an_entry_read_again_is_applied_once() -> None:
    h = Harness()
    first = [_item(1, TaskSpec(name="a")), _item(2, TaskSpec(name="a"))]
    h.rec(h.state.apply_intake(first, h.now))
    assert h.state.apply_intake(first, h.now) == []
    again = h.rec(h.state.apply_intake([first[1], _item(3, TaskSpec(name="a"))], h.now))
    assert [type(e) for e in again] == [TaskSubmitted, IntakeApplied]
    assert len(h.state) == 3
    h.check_replay()


def test_a_full_queue_refuses_the_entry_as_a_dead_task_that_a_retry_revives() -> None:
    h = Harness(Settings(admission=AdmissionSettings(max_queued=1, soft_watermark=1.0)))
    items = [_item(1, TaskSpec(name="a")), _item(2, TaskSpec(name="a", args=[1]))]
    events = h.rec(h.state.apply_intake(items, h.now))
    assert [type(e) for e in events] == [TaskSubmitted, TaskRefused, IntakeApplied]
    refused = h.state.get(items[1].id)
    assert refused.state is TaskState.DEAD
    assert refused.reason is not None and refused.reason.startswith("refused: ")
    assert "full" in refused.reason
    assert refused.spec.args == [1]
    assert h.state.statistics(h.now).by_state["dead"] == 1
    h.check_replay()
    h.region()
    h.succeed(h.lease(1)[0].id)
    h.rec(h.state.retry(items[1].id, h.now))
    assert h.state.get(items[1].id).state is TaskState.READY
    h.check_replay()


def test_invalid_specs_unknown_parents_and_bad_ids() -> None:
    h = Harness()
    parent = _item(1, TaskSpec(name="a"))
    items = [
        parent,
        _item(2, TaskSpec(name="a", priority=10**9)),
        _item(3, TaskSpec(name="a", depends_on=("nope",))),
        _item(4, TaskSpec(name="b", depends_on=(parent.id,), args=[{"$result": parent.id}])),
        IntakeItem(5, "not-a-client-id", TaskSpec(name="a")),
        _item(6, None),
        _item(7, TaskSpec(name="a", idempotency_key="k")),
    ]
    items[5] = items[5]._replace(problem="bad msgpack")
    events = h.rec(h.state.apply_intake(items, h.now))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "TaskSubmitted",
        "TaskRefused",
        "TaskRefused",
        "TaskSubmitted",
        "TaskRefused",
        "TaskRefused",
        "IntakeApplied",
    ]
    assert h.state.intake_seq == 7
    assert "not-a-client-id" not in h.state
    assert h.state.get(items[3].id).state is TaskState.PENDING
    reasons = {i.seq: h.state.get(i.id).reason for i in items if i.seq in (2, 3, 6, 7)}
    assert "priority" in str(reasons[2])
    assert "nope" in str(reasons[3])
    assert "bad msgpack" in str(reasons[6])
    assert "idempotency" in str(reasons[7])
    h.check_replay()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(-2000, 2000), st.integers(0, 3)),
        min_size=1,
        max_size=40,
    )
)
def test_replay_equals_live_and_the_order_stays_sorted(ops: list[tuple[bool, int, int]]) -> None:
    """Master-made and client-made ids mixed, client clocks off by up to 2 s either way."""
    h = Harness(Settings(admission=AdmissionSettings(max_queued=25)))
    seq = 0
    for n, (through_intake, skew_ms, priority) in enumerate(ops):
        h.now += 0.0005
        spec = TaskSpec(name="a", priority=priority)
        if through_intake:
            seq += 1
            item = _item(seq, spec, at=h.now + skew_ms / 1000, token=f"t{n}")
            h.rec(h.state.apply_intake([item], h.now))
        else:
            with contextlib.suppress(BackpressureError):  # nothing changed
                h.submit(spec)
    h.check_replay()
    listed: list[str] = []
    cursor = None
    while True:
        page, cursor = h.state.list_tasks(limit=7, cursor=cursor)
        listed += [t.id for t in page]
        if cursor is None:
            break
    assert listed == sorted(listed)
    assert set(listed) == {t.id for t in h.state.list_tasks(limit=1000)[0]}
    newest, _ = h.state.list_tasks(limit=1000, newest_first=True)
    assert [t.id for t in newest] == sorted(listed, reverse=True)
    restored = SchedulerState.restore(h.state.snapshot(), random.Random(0))
    assert restored.intake_seq == h.state.intake_seq == seq
