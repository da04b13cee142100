"""SchedulerState behaviour, one feature per test; most end by checking replay == live."""

from __future__ import annotations

import random

import msgspec
import pytest
from core_harness import T0, Harness

from tierq.core import (
    AdmissionSettings,
    BreakerSettings,
    ErrorSummary,
    Outcome,
    OutcomeKind,
    PriorityRule,
    Progress,
    RegionInfo,
    RetryPolicy,
    SchedulerState,
    Settings,
    Started,
    TaskSpec,
    TaskState,
    event_kind,
)
from tierq.errors import (
    BackpressureError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnknownTaskError,
)


def kinds(events: list) -> list[str]:
    return [event_kind(e) for e in events]


# ----------------------------------------------------------------- placement


@pytest.mark.parametrize(
    ("spec", "types", "labels", "region", "leased"),
    [
        (TaskSpec(name="a"), ("a",), (), "eu", True),
        (TaskSpec(name="a"), ("b",), (), "eu", False),
        (TaskSpec(name="a", labels=("gpu",)), ("a",), (), "eu", False),
        (TaskSpec(name="a", labels=("gpu",)), ("a",), ("gpu", "ssd"), "eu", True),
        (TaskSpec(name="a", region="us"), ("a",), (), "eu", False),
        (TaskSpec(name="a", region="eu"), ("a",), (), "eu", True),
    ],
)
def test_placement(
    h: Harness,
    spec: TaskSpec,
    types: tuple[str, ...],
    labels: tuple[str, ...],
    region: str,
    leased: bool,
) -> None:
    h.submit(spec)
    h.region(region, types=types, labels=labels)
    assert bool(h.lease(region=region)) is leased


def test_priority_and_fifo_across_classes(h: Harness) -> None:
    ids = h.submit(
        TaskSpec(name="a", priority=1),
        TaskSpec(name="b", priority=1),
        TaskSpec(name="a", priority=2, labels=("gpu",)),
        TaskSpec(name="b", priority=1),
        TaskSpec(name="c", priority=9),
    )
    h.region(types=("a", "b"), labels=("gpu",))
    assert [t.id for t in h.lease(3)] == [ids[2], ids[0], ids[1]]
    assert [t.id for t in h.lease(10)] == [ids[3]]  # "c" is not a type this region runs
    h.check_replay()


def test_lease_zero_slots_and_bad_slots(h: Harness) -> None:
    h.submit(TaskSpec(name="a"))
    h.region()
    assert h.lease(0) == []
    with pytest.raises(InvalidRequestError):
        h.state.lease("eu", "i1", -1, h.now)


def test_wrong_instance_must_reregister(h: Harness) -> None:
    h.region()
    with pytest.raises(ConflictError):
        h.state.lease("eu", "other", 1, h.now)


# ---------------------------------------------------------------- submission


def test_idempotency_key(h: Harness) -> None:
    spec = TaskSpec(name="a", idempotency_key="k1")
    (tid,) = h.submit(spec)
    evs, ids = h.state.submit([spec], h.now)
    assert evs == [] and ids == [tid]
    with pytest.raises(ConflictError) as info:
        h.state.submit([TaskSpec(name="a", priority=3, idempotency_key="k1")], h.now)
    assert info.value.ids == (tid,)
    evs, ids = h.state.submit([TaskSpec(name="b", idempotency_key="k2")] * 2, h.now)
    h.rec(evs)
    assert len(evs) == 1 and ids[0] == ids[1]
    h.check_replay()


def test_batch_is_all_or_nothing(h: Harness) -> None:
    h.submit(TaskSpec(name="a"))
    before = h.state.snapshot()
    with pytest.raises(InvalidRequestError) as info:
        h.state.submit([TaskSpec(name="ok"), TaskSpec(name="bad", priority=5000)], h.now)
    assert info.value.field == "specs[1].priority"
    with pytest.raises(UnknownTaskError) as unknown:
        h.state.submit([TaskSpec(name="ok", depends_on=("nope", "nada"))], h.now)
    assert unknown.value.ids == ("nope", "nada")
    assert h.state.snapshot() == before


def test_dependency_on_a_dead_task_is_refused(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a", retry=RetryPolicy(max_attempts=1)))
    h.region()
    h.lease()
    h.fail(tid)
    with pytest.raises(ConflictError) as info:
        h.state.submit([TaskSpec(name="b", depends_on=(tid,))], h.now)
    assert info.value.ids == (tid,)


def test_run_at_delays_until_tick(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a", run_at=T0 + 30))
    assert h.state.get(tid).state is TaskState.PENDING
    assert h.state.next_wakeup() == T0 + 30
    assert h.tick(T0 + 29) == []
    assert kinds(h.tick(T0 + 30)) == ["task_ready"]
    h.check_replay()


def test_admission_backpressure() -> None:
    h = Harness(Settings(admission=AdmissionSettings(max_queued=4, max_queued_per_queue=4)))
    h.submit(*[TaskSpec(name="a")] * 3)
    with pytest.raises(BackpressureError) as info:
        h.state.submit([TaskSpec(name="a")], h.now)  # soft watermark (0.8 * 4): priority 0
    assert info.value.retry_after >= 1.0
    h.submit(TaskSpec(name="a", priority=5))
    with pytest.raises(BackpressureError):
        h.state.submit([TaskSpec(name="a", priority=5)], h.now)
    stats = h.state.statistics(h.now)
    assert stats.admission.rejected == 2 and stats.admission.waiting == 4


# -------------------------------------------------------------------- reports


def test_started_progress_and_duplicates(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a"))
    h.region()
    h.lease()
    evs = h.rec(h.state.report_started([Started(task_id=tid, attempt=1, worker="w1")], h.now))
    assert kinds(evs) == ["task_started"]
    evs = h.rec(h.state.report_started([Started(task_id=tid, attempt=1, worker="w1")], h.now))
    assert kinds(evs) == ["task_duplicate_report"]
    prog = [Progress(task_id=tid, attempt=1, fraction=2.0, message="x" * 10_000)]
    evs = h.rec(h.state.report_progress(prog, h.now))
    task = h.state.get(tid)
    assert task.progress == 1.0 and task.progress_message is not None
    assert len(task.progress_message) == 4096
    assert h.state.report_progress([Progress(task_id=tid, attempt=9, fraction=0.5)], h.now) == []
    assert task.worker == "w1" and task.history[0].started_at == h.now
    h.check_replay()


def test_stale_attempt_report_is_a_duplicate(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a"))
    h.region()
    h.lease()
    h.rec(h.state.report([Outcome(task_id=tid, attempt=1, kind=OutcomeKind.LOST)], h.now))
    before = h.state.get(tid)
    evs = h.succeed(tid, attempt=1)  # the lost attempt turns up late
    assert kinds(evs) == ["task_duplicate_report"]
    assert h.state.get(tid).state is before.state is TaskState.READY
    assert kinds(h.succeed("no-such-task")) == ["task_duplicate_report"]


def test_result_that_is_not_json_fails_the_attempt(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a", retry=RetryPolicy(max_attempts=1)))
    h.region()
    h.lease()
    evs = h.succeed(tid, result={"x": float("nan")})
    assert kinds(evs) == ["task_failed", "task_dead"]
    assert h.state.get(tid).error.type == "InvalidResult"  # type: ignore[union-attr]


def test_retry_on_filters_error_types(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a", retry=RetryPolicy(retry_on=("IOError",))))
    h.region()
    h.lease()
    assert kinds(h.fail(tid, etype="KeyError")) == ["task_failed", "task_dead"]
    assert "retry_on" in (h.state.get(tid).reason or "")


def test_backoff_uses_the_rng_and_attempts_grow(h: Harness) -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base=10.0, jitter=0.5)
    (tid,) = h.submit(TaskSpec(name="a", retry=policy))
    h.region()
    h.lease()
    (ev,) = h.fail(tid)
    assert 5.0 <= ev.retry_at - h.now <= 10.0  # type: ignore[union-attr]
    h.tick(ev.retry_at)  # type: ignore[union-attr]
    h.region()
    (t,) = h.lease()
    assert t.attempt == 2
    (ev,) = h.fail(tid, attempt=2)
    assert 10.0 <= ev.retry_at - h.now <= 20.0  # type: ignore[union-attr]
    h.check_replay()


# ------------------------------------------------------------------- regions


def test_new_instance_requeues_what_the_old_one_held(h: Harness) -> None:
    ids = h.submit(TaskSpec(name="a"), TaskSpec(name="a"))
    h.region()
    h.lease()
    assert h.state.regions()[0].held == 2
    evs = h.region(instance="i2")
    assert kinds(evs) == ["task_failed", "task_ready"] * 2 + ["region_registered"]
    for tid in ids:
        t = h.state.get(tid)
        assert t.state is TaskState.READY and t.attempt == 2
        assert t.history[0].outcome == "lost"
    assert kinds(h.region(instance="i2")) == ["region_registered"]  # same instance: harmless
    h.check_replay()


def test_region_lease_expiry(h: Harness) -> None:
    (_tid,) = h.submit(TaskSpec(name="a", retry=RetryPolicy(max_attempts=1)))
    h.region()
    h.lease()
    assert h.state.next_wakeup() == T0 + 10
    evs = h.tick(T0 + 10)
    assert kinds(evs) == ["task_failed", "task_dead", "region_expired"]
    assert h.state.regions() == []
    with pytest.raises(NotFoundError):
        h.state.lease("eu", "i1", 1, h.now)
    h.check_replay()


def test_heartbeat_is_logged_only_when_due(h: Harness) -> None:
    h.region()  # lease 10 s: a renewal is logged once 0.5 s have gone since the last one
    assert h.state.region_heartbeat("eu", "i1", T0 + 0.4) == []
    evs = h.rec(h.state.region_heartbeat("eu", "i1", T0 + 0.5))
    assert kinds(evs) == ["region_heartbeat"]
    assert h.state.regions()[0].lease_expires_at == T0 + 10.5
    assert h.state.region_heartbeat("eu", "i1", T0 + 0.9) == []
    h.check_replay()


def _lost(tid: str, attempt: int, etype: str) -> Outcome:
    error = ErrorSummary(type=etype, message="gone", lost=True)
    return Outcome(task_id=tid, attempt=attempt, kind=OutcomeKind.LOST, error=error)


def test_a_task_handed_back_unstarted_keeps_its_attempts(h: Harness) -> None:
    """A region gives back (``NoWorker``) a task no worker started: not a spent attempt, even
    with ``max_attempts=1``; a started one, or any other loss, is spent as before."""
    once = RetryPolicy(max_attempts=1)
    a, b, c = h.submit(*(TaskSpec(name="a", retry=once) for _ in range(3)))
    h.region()
    h.lease()
    h.rec(h.state.report_started([Started(task_id=c, attempt=1, worker="w1")], h.now))
    h.rec(h.state.report([_lost(a, 1, "NoWorker"), _lost(b, 1, "Lost")], h.now))
    h.rec(h.state.report([_lost(c, 1, "NoWorker")], h.now))
    task = h.state.get(a)
    assert task.state is TaskState.READY and task.attempt == 2 and task.retry_base == 1
    assert task.history[0].outcome == "lost" and task.history[0].error is not None
    assert task.history[0].error.type == "NoWorker"
    assert h.state.get(b).state is TaskState.DEAD
    assert h.state.get(c).state is TaskState.DEAD  # it had started: the attempt was spent
    h.lease()
    h.succeed(a, attempt=2)
    assert h.state.get(a).state is TaskState.SUCCEEDED
    h.check_replay()


@pytest.mark.parametrize("seed", range(50))
def test_a_dead_region_expires_within_015_lease_of_its_full_lease(seed: int) -> None:
    """The stated bound: a region that reports every tenth of its lease (as the region
    service does when idle, sooner when busy) and then dies loses its lease between 0.85 and
    1.0 lease after its death, whatever the timing of its reports: its last report came at
    most a tenth of a lease before its death, and the last logged renewal at most a twentieth
    before that."""
    rng = random.Random(seed)
    lease = rng.choice([2.0, 10.0, 30.0])
    h = Harness(Settings(region_lease_seconds=lease))
    h.region()
    t = T0
    death = T0 + rng.uniform(0, 20) * lease / 10
    while True:
        step = rng.uniform(0.01, 1.0) * lease / 10
        if t + step > death:
            break
        t += step
        h.rec(h.state.region_heartbeat("eu", "i1", t))
    expires = h.state.next_wakeup()
    assert expires is not None
    assert death + 0.85 * lease - 1e-9 <= expires <= death + lease + 1e-9
    assert kinds(h.tick(expires)) == ["region_expired"]
    h.check_replay()


# ------------------------------------------------------------ interventions


def test_cancel_running_then_late_report(h: Harness) -> None:
    ids = h.submit(TaskSpec(name="a"))
    child = h.submit(TaskSpec(name="b", depends_on=(ids[0],)))
    grandchild = h.submit(TaskSpec(name="c", depends_on=(child[0],)))
    h.region()
    h.lease()
    evs = h.rec(h.state.cancel(ids[0], h.now))
    assert kinds(evs) == ["task_cancelled"] * 3
    assert evs[0].region == "eu"  # type: ignore[union-attr]
    assert h.state.get(grandchild[0]).state is TaskState.CANCELLED
    assert kinds(h.succeed(ids[0])) == ["task_duplicate_report"]
    with pytest.raises(ConflictError):
        h.state.cancel(ids[0], h.now)
    with pytest.raises(NotFoundError):
        h.state.cancel("nope", h.now)
    assert h.state.regions()[0].held == 0
    h.check_replay()


def test_reprioritize_changes_order(h: Harness) -> None:
    ids = h.submit(TaskSpec(name="a", priority=1), TaskSpec(name="a", priority=2))
    h.rec(h.state.reprioritize(ids[0], 5, h.now))
    assert h.state.reprioritize(ids[0], 5, h.now) == []
    h.region()
    assert [t.id for t in h.lease(1)] == [ids[0]]
    with pytest.raises(InvalidRequestError):
        h.state.reprioritize(ids[1], 10_000, h.now)
    h.succeed(ids[0])
    with pytest.raises(ConflictError):
        h.state.reprioritize(ids[0], 1, h.now)
    assert h.state.get(ids[0]).priority == 5
    h.check_replay()


def test_manual_retry_of_dead_task_revives_skipped_dependents(h: Harness) -> None:
    (p,) = h.submit(TaskSpec(name="a", retry=RetryPolicy(max_attempts=1)))
    (c,) = h.submit(TaskSpec(name="b", depends_on=(p,)))
    h.region()
    h.lease()
    assert kinds(h.fail(p)) == ["task_failed", "task_dead", "task_skipped"]
    with pytest.raises(ConflictError):
        h.state.retry(c, h.now)  # its parent is still dead
    evs = h.rec(h.state.retry(p, h.now))
    assert kinds(evs) == ["task_retried", "task_retried"]
    assert h.state.get(p).state is TaskState.READY and h.state.get(p).attempt == 2
    assert h.state.get(c).state is TaskState.PENDING
    (t,) = h.lease()
    assert t.attempt == 2
    assert kinds(h.succeed(p, attempt=2)) == ["task_succeeded", "task_ready"]
    with pytest.raises(ConflictError):
        h.state.retry(p, h.now)
    h.check_replay()


def test_configure_live(h: Harness) -> None:
    ids = h.submit(TaskSpec(name="a", priority=1), now=T0)
    ids += h.submit(TaskSpec(name="a", priority=2), now=T0 + 200)
    evs = h.rec(h.state.configure(Settings(aging_rate=0.01), h.now))
    assert kinds(evs) == ["settings_changed"]
    h.region()
    # 200 s older at 0.01/s is worth 2 points: the older, lower task now leads.
    assert [t.id for t in h.lease(2)] == ids
    with pytest.raises(InvalidRequestError):
        h.state.configure(Settings(aging_rate=-1.0), h.now)
    h.check_replay()


def test_deadline_boost(h: Harness) -> None:
    ids = h.submit(TaskSpec(name="a", priority=5), TaskSpec(name="a", deadline=T0 + 100))
    assert h.state.next_wakeup() == T0 + 40  # deadline - 60 s window
    evs = h.tick(T0 + 40)
    assert kinds(evs) == ["task_deadline_boosted"]
    assert h.tick(T0 + 41) == []  # boosted once
    h.region()
    assert [t.id for t in h.lease(2)] == [ids[1], ids[0]]
    h.check_replay()


def test_rule_boost_while_backlog_is_deep() -> None:
    rule = PriorityRule(task_name="b", min_queue_depth=2, boost=10)
    h = Harness(Settings(priority_rules=(rule,)))
    ids = h.submit(
        TaskSpec(name="a", priority=5), TaskSpec(name="b"), TaskSpec(name="b"), TaskSpec(name="b")
    )
    h.region()
    assert [t.id for t in h.lease(1)] == [ids[1]]  # 3 "b" waiting > 2: +10 beats 5
    assert [t.id for t in h.lease(1)] == [ids[0]]  # 2 left, not deeper than 2: no boost


# ------------------------------------------------------------------- breakers


def breaker_harness() -> Harness:
    b = BreakerSettings(window=4, min_samples=2, failure_rate=0.5, cooldown=30.0)
    return Harness(Settings(breaker=b))


def test_breaker_parks_tasks_and_probes() -> None:
    h = breaker_harness()
    ids = h.submit(*[TaskSpec(name="a", retry=RetryPolicy(max_attempts=1))] * 5)
    h.region()
    h.lease(2)
    h.fail(ids[0])
    evs = h.fail(ids[1])
    assert "breaker_opened" in kinds(evs)
    assert h.lease(5) == []  # open: tasks wait, they do not fail
    assert h.state.get(ids[2]).state is TaskState.READY
    h.region()  # keep the region lease alive across the cool-down
    assert kinds(h.tick(T0 + 30)) == ["region_expired", "breaker_half_open"]
    h.region()
    probe = h.lease(5)
    assert len(probe) == 1  # one probe at a time
    assert h.lease(5) == []
    evs = h.succeed(probe[0].id)
    assert kinds(evs) == ["task_succeeded", "breaker_closed"]
    assert len(h.lease(5)) == 2
    stats = h.state.statistics(h.now).breakers
    assert [(b.key, b.state.value) for b in stats] == [("task:eu:a", "closed")]
    h.check_replay()


def test_a_permanent_failure_is_not_retried_and_opens_no_breaker() -> None:
    """Issue 15: wrong arguments or a result that is not JSON cannot succeed on a retry."""
    h = breaker_harness()
    ids = h.submit(*[TaskSpec(name="a")] * 4)  # the default policy: 3 attempts
    h.region()
    h.lease(4)
    wrong = ErrorSummary(type="TypeError", message="missing an argument", permanent=True)
    for tid in ids[:3]:
        o = Outcome(task_id=tid, attempt=1, kind=OutcomeKind.FAILED, error=wrong)
        evs = h.rec(h.state.report([o], h.now))
        assert kinds(evs) == ["task_failed", "task_dead"], kinds(evs)
        assert "not retried" in (h.state.get(tid).reason or "")
    assert [b.state.value for b in h.state.statistics(h.now).breakers] in ([], ["closed"])
    h.fail(ids[3])  # an ordinary failure is still retried (after its backoff)
    task = h.state.get(ids[3])
    assert task.state is TaskState.FAILED and task.not_before is not None
    h.check_replay()


def test_resource_breaker_spans_regions() -> None:
    h = breaker_harness()
    spec = TaskSpec(name="a", resource="db:1", retry=RetryPolicy(max_attempts=1))
    ids = h.submit(*[spec] * 3, TaskSpec(name="a"))
    h.region("eu")
    h.region("us")
    (t1,) = h.lease(1, region="eu")
    (t2,) = h.lease(1, region="us")
    h.fail(t1.id)
    h.fail(t2.id)
    kinds_open = [b.key for b in h.state.statistics(h.now).breakers if b.state.value == "open"]
    assert kinds_open == ["resource:db:1"]
    assert [t.id for t in h.lease(5, region="eu")] == [ids[3]]  # only the task without it
    h.check_replay()


# ------------------------------------------------------------------ queries


def test_list_tasks_pagination_is_stable(h: Harness) -> None:
    ids = h.submit(*[TaskSpec(name="a", queue=f"q{i % 2}") for i in range(7)])
    page, cursor = h.state.list_tasks(limit=3)
    assert [t.id for t in page] == ids[:3] and cursor == ids[2]
    h.submit(TaskSpec(name="a"))  # added while paging: shows up last
    page, cursor = h.state.list_tasks(limit=3, cursor=cursor)
    assert [t.id for t in page] == ids[3:6]
    page, cursor = h.state.list_tasks(limit=3, cursor=cursor)
    assert len(page) == 2 and cursor is None
    q1, _ = h.state.list_tasks(queue="q1", limit=100)
    assert [t.id for t in q1] == ids[1::2]
    ready, _ = h.state.list_tasks(state=TaskState.READY, name="a", limit=100)
    assert len(ready) == 8
    with pytest.raises(InvalidRequestError):
        h.state.list_tasks(limit=0)
    with pytest.raises(NotFoundError):
        h.state.get("missing")


def test_list_tasks_bounds_the_work_of_one_call(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tierq.core import scheduler_queries

    monkeypatch.setattr(scheduler_queries, "MAX_SCAN", 10)
    ids = h.submit(*[TaskSpec(name="a", queue="rare" if i in (3, 25) else "q") for i in range(30)])
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page, cursor = h.state.list_tasks(queue="rare", limit=5, cursor=cursor)
        pages += 1
        seen += [t.id for t in page]
        if cursor is None:
            break
    # 30 tasks, 10 examined per call: three calls, one of them an empty page with a cursor.
    assert seen == [ids[3], ids[25]] and pages == 3


def test_get_returns_a_copy(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a"))
    copy = h.state.get(tid)
    copy.timestamps["ready"] = 0.0
    copy.state = TaskState.DEAD
    assert h.state.get(tid).state is TaskState.READY
    assert h.state.get(tid).timestamps["ready"] == T0


def test_statistics(h: Harness) -> None:
    h.submit(TaskSpec(name="a", priority=-3), TaskSpec(name="a", priority=700, queue="hi"))
    h.region()
    h.lease(1)
    s = h.state.statistics(h.now)
    assert s.by_state["ready"] == 1 and s.by_state["assigned"] == 1
    assert s.queue_depth == 1 and s.waiting_by_queue == {"default": 1}
    assert s.waiting_by_band == {"low": 1} and s.held_by_region == {"eu": 1}
    assert s.totals.submitted == 2 and s.ready_by_name == {"a": 1}
    assert s.queue.size == 1 and s.admission.level.value == "open"


def test_eviction_after_retention() -> None:
    h = Harness(Settings(retention_seconds=100.0))
    (p,) = h.submit(TaskSpec(name="a"))
    (c,) = h.submit(TaskSpec(name="b", depends_on=(p,)))
    h.region()
    h.lease()
    h.succeed(p)
    h.now = T0 + 50
    h.region()
    h.lease()
    h.succeed(c)
    evs = h.tick(T0 + 120)  # p finished 120 s ago but its child only 70 s ago
    assert [e for e in evs if event_kind(e) == "tasks_evicted"] == []
    evs = h.tick(T0 + 150)
    evicted = [e for e in evs if event_kind(e) == "tasks_evicted"]
    assert evicted and sorted(evicted[0].ids) == sorted([p, c])  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        h.state.get(p)
    assert h.state.statistics(h.now).totals.evicted == 2
    h.check_replay()


# ------------------------------------------------------------------ snapshots


def test_restore_pops_in_the_same_order(h: Harness) -> None:
    h.submit(*[TaskSpec(name="a", priority=i % 3) for i in range(50)])
    restored = SchedulerState.restore(h.state.snapshot(), random.Random(3))
    h.region()
    restored.register_region(RegionInfo(name="eu", instance="i1", task_types=("a",)), h.now)
    live = [t.id for t in h.lease(50)]
    _, again = restored.lease("eu", "i1", 50, h.now)
    assert live == [t.id for t in again]


def test_restore_refuses_other_schema() -> None:
    with pytest.raises(InvalidRequestError):
        SchedulerState.restore(msgspec.msgpack.encode({"schema_version": 99}), random.Random())
    with pytest.raises(InvalidRequestError):
        SchedulerState.restore(b"\xc1garbage", random.Random())


def test_error_summary_is_truncated(h: Harness) -> None:
    (tid,) = h.submit(TaskSpec(name="a"))
    h.region()
    h.lease()
    err = ErrorSummary(type="E" * 500, message="m" * 10_000, traceback="t" * 100_000)
    o = Outcome(task_id=tid, attempt=1, kind=OutcomeKind.FAILED, error=err)
    h.rec(h.state.report([o], h.now))
    stored = h.state.get(tid).error
    assert stored is not None and len(stored.type) == 200 and len(stored.message) == 4096
    h.check_replay()
