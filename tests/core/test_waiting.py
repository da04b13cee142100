"""Why a ready task waits: no live region runs its type, or breakers hold it (issue 15)."""

from __future__ import annotations

from core_harness import T0, Harness

from tierq.core import BreakerSettings, RetryPolicy, Settings, TaskSpec, TaskState


def test_a_name_no_region_runs_is_warned_about_and_explained() -> None:
    h = Harness()
    h.region(types=("a",))
    specs = [TaskSpec(name="a"), TaskSpec(name="nope"), TaskSpec(name="nope")]
    warnings = h.state.unserved(specs)
    assert len(warnings) == 1  # one per distinct placement
    assert "no live worker runs task type 'nope'" in warnings[0]
    assert "live regions: eu" in warnings[0]
    (tid,) = h.submit(TaskSpec(name="nope"))
    task = h.state.explain(tid, h.now)
    assert task.state is TaskState.READY and task.reason == warnings[0]
    assert h.state.get(tid).reason is None  # an explanation, not state
    (ok,) = h.submit(TaskSpec(name="a"))
    assert h.state.explain(ok, h.now).reason is None  # it only waits for a slot


def test_placement_is_part_of_the_explanation() -> None:
    h = Harness()
    h.region(types=("a",), labels=("cpu",))
    (elsewhere,) = h.state.unserved([TaskSpec(name="a", region="us")])
    assert "region 'us'" in elsewhere
    (gpu,) = h.state.unserved([TaskSpec(name="a", labels=("gpu",))])
    assert "labels gpu" in gpu
    assert h.state.unserved([TaskSpec(name="a", labels=("cpu",))]) == []


def test_an_open_breaker_is_named_with_its_half_open_time() -> None:
    b = BreakerSettings(window=4, min_samples=2, failure_rate=0.5, cooldown=30.0)
    h = Harness(Settings(breaker=b))
    once = RetryPolicy(max_attempts=1)
    ids = h.submit(*[TaskSpec(name="a", retry=once)] * 3)
    h.region()
    h.lease(2)
    h.fail(ids[0])
    h.fail(ids[1])
    reason = h.state.explain(ids[2], T0 + 5).reason
    assert reason is not None
    assert reason.startswith("circuit breaker task:eu:a is open since 2023-11-14T22:13:20Z")
    assert "half-opens at 2023-11-14T22:13:50Z (in 25 s)" in reason
    assert h.state.unserved([TaskSpec(name="a")]) == []  # a worker exists: no warning


def test_times_are_iso_utc() -> None:
    import datetime as dt
    import random

    from tierq.core.waiting import _iso

    rng = random.Random(3)
    for at in [0.0, 951_782_400.0, 4_107_542_399.0, *(rng.uniform(0, 4e9) for _ in range(500))]:
        want = dt.datetime.fromtimestamp(int(at), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert _iso(at) == want


def test_declared_options_fill_what_a_submission_by_name_leaves_out() -> None:
    """Issue 15, item 1: ``@app.task(timeout=2, retries=0, priority=5)`` applied to a
    submission by name; explicit values win; replay gives the same specs."""
    import random

    import pytest

    from tierq.core import RegionInfo, SchedulerState
    from tierq.errors import InvalidRequestError

    h = Harness()
    declared = TaskSpec(name="a", timeout=2.0, retry=RetryPolicy(max_attempts=1), priority=5)
    info = RegionInfo(name="eu", instance="i1", task_types=("a", "b"), declared={"a": declared})
    h.rec(h.state.register_region(info, h.now))
    bare, explicit, other = h.submit(
        TaskSpec(name="a"), TaskSpec(name="a", timeout=9.0, priority=7), TaskSpec(name="b")
    )
    spec = h.state.get(bare).spec
    assert (spec.timeout, spec.retry.max_attempts, spec.priority) == (2.0, 1, 5)
    spec = h.state.get(explicit).spec
    assert (spec.timeout, spec.retry.max_attempts, spec.priority) == (9.0, 1, 7)
    assert h.state.get(other).spec == TaskSpec(name="b")
    h.check_replay()
    restored = SchedulerState.restore(h.state.snapshot(), random.Random(1))
    evs, _ = restored.submit([TaskSpec(name="a")], h.now)
    assert evs[0].spec.timeout == 2.0  # type: ignore[attr-defined]
    wrong = RegionInfo(name="us", instance="i1", task_types=("a",), declared={"z": declared})
    with pytest.raises(InvalidRequestError, match="declared"):
        h.state.register_region(wrong, h.now)
    # Its region gone, a declaration no longer applies.
    h.tick(T0 + 11)
    (later,) = h.submit(TaskSpec(name="a"), now=T0 + 11)
    assert h.state.get(later).spec.timeout is None


def test_task_lists_page_newest_first_as_the_reverse_of_oldest_first() -> None:
    h = Harness()
    ids = h.submit(*(TaskSpec(name="a" if i % 3 else "b") for i in range(25)))
    for name in (None, "a", "b"):
        for limit in (1, 4, 7, 100):
            seen: list[str] = []
            cursor: str | None = None
            while True:
                page, cursor = h.state.list_tasks(
                    name=name, limit=limit, cursor=cursor, newest_first=True
                )
                seen += [t.id for t in page]
                if cursor is None:
                    break
            oldest, _ = h.state.list_tasks(name=name, limit=100)
            assert seen == [t.id for t in reversed(oldest)], (name, limit)
    assert h.state.list_tasks(limit=1, newest_first=True)[0][0].id == ids[-1]
