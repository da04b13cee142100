"""Random command sequences against SchedulerState: no task lost or duplicated, dependencies
respected, attempts monotonic, terminal states absorbing, and replay (from empty and from a
midway snapshot) rebuilding the live state."""

from __future__ import annotations

import contextlib
import random

import msgspec
from core_harness import T0, explain_difference
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tierq.core import (
    TERMINAL_STATES,
    BreakerSettings,
    ErrorSummary,
    Event,
    FailurePolicy,
    Outcome,
    OutcomeKind,
    Progress,
    RegionInfo,
    RetryPolicy,
    SchedulerState,
    Settings,
    Started,
    TasksEvicted,
    TaskSpec,
    TaskState,
    WorkflowNode,
    WorkflowSpec,
)
from tierq.errors import BackpressureError, ConflictError, NotFoundError

SETTINGS = Settings(
    breaker=BreakerSettings(window=6, min_samples=3, failure_rate=0.6, cooldown=15.0),
    retention_seconds=60.0,
    region_lease_seconds=20.0,
)
NAMES = ("a", "b", "c")
RUNNABLE = {TaskState.READY, TaskState.ASSIGNED, TaskState.RUNNING, TaskState.SUCCEEDED}
HELD = {TaskState.ASSIGNED, TaskState.RUNNING}
DECODER = msgspec.msgpack.Decoder(list[Event])

specs = st.builds(
    TaskSpec,
    name=st.sampled_from(NAMES),
    priority=st.integers(-3, 3),
    retry=st.builds(
        RetryPolicy,
        max_attempts=st.integers(1, 3),
        backoff_base=st.sampled_from([0.0, 1.0, 5.0]),
        jitter=st.sampled_from([0.0, 0.5]),
    ),
    labels=st.sampled_from([(), ("gpu",)]),
    resource=st.sampled_from([None, None, "db"]),
    deadline=st.sampled_from([None, None, T0 + 30.0, T0 + 200.0]),
    region=st.sampled_from([None, None, "us"]),
)


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = SchedulerState(SETTINGS, random.Random(11))
        self.events: list[Event] = []
        self.now = T0
        self.submitted: list[str] = []
        self.evicted: set[str] = set()
        self.instances: dict[str, int] = {}
        self.last_attempt: dict[str, int] = {}
        self.last_state: dict[str, TaskState] = {}
        self.retried: set[str] = set()
        self.midway: tuple[bytes, int] | None = None
        self.steps = 0

    # ---------------------------------------------------------------- helpers

    def rec(self, events: list[Event]) -> None:
        self.events.extend(events)
        for ev in events:
            if isinstance(ev, TasksEvicted):
                self.evicted.update(ev.ids)
        self.steps += 1
        if self.midway is None and self.steps >= 8:
            self.midway = (self.state.snapshot(), len(self.events))

    def tasks(self, *states: TaskState) -> list[str]:
        live = self.state._book.tasks  # the invariants read the index directly, like a replay test
        return sorted(t for t, task in live.items() if not states or task.state in states)

    # ------------------------------------------------------------------ rules

    @rule(batch=st.lists(specs, min_size=1, max_size=4), data=st.data())
    def submit(self, batch: list[TaskSpec], data: st.DataObject) -> None:
        candidates = self.tasks(
            *(set(TaskState) - {TaskState.DEAD, TaskState.CANCELLED, TaskState.SKIPPED})
        )
        if candidates and data.draw(st.booleans()):
            parent = data.draw(st.sampled_from(candidates))
            batch = [msgspec.structs.replace(batch[0], depends_on=(parent,)), *batch[1:]]
        if data.draw(st.booleans()):
            batch[0] = msgspec.structs.replace(batch[0], run_at=self.now + 5.0)
        try:
            evs, ids = self.state.submit(batch, self.now)
        except BackpressureError:  # pragma: no cover - limits are far away here
            return
        self.submitted.extend(ids)
        self.rec(evs)

    @rule(
        n=st.integers(1, 6),
        edges=st.sets(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=8),
        policy=st.sampled_from(list(FailurePolicy)),
        spec=specs,
    )
    def submit_workflow(
        self, n: int, edges: set[tuple[int, int]], policy: FailurePolicy, spec: TaskSpec
    ) -> None:
        nodes = [WorkflowNode(key=f"k{i}", spec=spec) for i in range(n)]
        pairs = [(f"k{p}", f"k{c}") for p, c in sorted(edges) if p < c < n]
        wf = WorkflowSpec(nodes=nodes, edges=pairs, on_failure=policy)
        evs, _, ids = self.state.submit_workflow(wf, self.now)
        self.submitted.extend(ids.values())
        self.rec(evs)

    @rule(region=st.sampled_from(["eu", "us"]), restart=st.booleans(), gpu=st.booleans())
    def register(self, region: str, restart: bool, gpu: bool) -> None:
        n = self.instances.get(region, 0) + (1 if restart or region not in self.instances else 0)
        self.instances[region] = n
        info = RegionInfo(
            name=region, instance=f"{region}-{n}", task_types=NAMES, labels=("gpu",) if gpu else ()
        )
        self.rec(self.state.register_region(info, self.now))

    @rule(region=st.sampled_from(["eu", "us"]), slots=st.integers(0, 6))
    def lease(self, region: str, slots: int) -> None:
        try:
            evs, leased = self.state.lease(
                region, f"{region}-{self.instances.get(region, 0)}", slots, self.now
            )
        except NotFoundError:
            return
        assert len(leased) <= slots
        for t in leased:
            task = self.state._book.tasks[t.id]
            assert task.state is TaskState.ASSIGNED and task.attempt == t.attempt
            for p in task.parents:
                if p in self.state._book.tasks:
                    assert p in t.parent_results
        self.rec(evs)

    @precondition(lambda self: self.tasks(TaskState.ASSIGNED))
    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        tid = data.draw(st.sampled_from(self.tasks(TaskState.ASSIGNED)))
        attempt = self.state._book.tasks[tid].attempt
        self.rec(
            self.state.report_started([Started(task_id=tid, attempt=attempt, worker="w")], self.now)
        )

    @precondition(lambda self: self.submitted)
    @rule(
        data=st.data(),
        kind=st.sampled_from(list(OutcomeKind)),
        stale=st.booleans(),
        etype=st.sampled_from(["ValueError", "IOError"]),
    )
    def report(self, data: st.DataObject, kind: OutcomeKind, stale: bool, etype: str) -> None:
        held = self.tasks(*HELD)
        pool = held if held and not stale else self.submitted
        tid = data.draw(st.sampled_from(pool))
        task = self.state._book.tasks.get(tid)
        attempt = (task.attempt if task else 1) - (1 if stale else 0)
        error = None if kind is OutcomeKind.SUCCEEDED else ErrorSummary(type=etype, message="x")
        before = self.state.snapshot() if stale or tid not in held else None
        evs = self.state.report(
            [Outcome(task_id=tid, attempt=attempt, kind=kind, result=[tid], error=error)],
            self.now,
        )
        if before is not None and evs and type(evs[0]).__name__ == "TaskDuplicateReport":
            assert len(evs) == 1
        self.rec(evs)

    @precondition(lambda self: self.submitted)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        tid = data.draw(st.sampled_from(self.submitted))
        try:
            self.rec(self.state.cancel(tid, self.now))
        except (ConflictError, NotFoundError):
            task = self.state._book.tasks.get(tid)
            assert task is None or task.state in TERMINAL_STATES

    @precondition(lambda self: self.state._book.workflows)
    @rule(data=st.data())
    def cancel_workflow(self, data: st.DataObject) -> None:
        wf_id = data.draw(st.sampled_from(self.state._book.workflows.ids()))
        try:
            self.rec(self.state.cancel_workflow(wf_id, self.now))
        except ConflictError:
            assert self.state._book.workflows[wf_id].state is not None

    @precondition(lambda self: self.submitted)
    @rule(data=st.data(), priority=st.integers(-5, 5))
    def reprioritize(self, data: st.DataObject, priority: int) -> None:
        tid = data.draw(st.sampled_from(self.submitted))
        with contextlib.suppress(ConflictError, NotFoundError):
            self.rec(self.state.reprioritize(tid, priority, self.now))

    @precondition(lambda self: self.tasks(TaskState.DEAD, TaskState.CANCELLED, TaskState.SKIPPED))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        pool = self.tasks(TaskState.DEAD, TaskState.CANCELLED, TaskState.SKIPPED)
        tid = data.draw(st.sampled_from(pool))
        before = self.state.snapshot()
        try:
            evs = self.state.retry(tid, self.now)
        except ConflictError:
            assert self.state.snapshot() == before
            return
        self.retried.update(e.id for e in evs)  # type: ignore[union-attr]
        self.rec(evs)

    @rule(rate=st.sampled_from([0.0, 0.01, 1.0]), boost=st.sampled_from([0, 50]))
    def configure(self, rate: float, boost: int) -> None:
        new = msgspec.structs.replace(SETTINGS, aging_rate=rate, deadline_boost=boost)
        self.rec(self.state.configure(new, self.now))

    @precondition(lambda self: self.tasks(*HELD))
    @rule(data=st.data(), fraction=st.floats(-1.0, 2.0))
    def progress(self, data: st.DataObject, fraction: float) -> None:
        tid = data.draw(st.sampled_from(self.tasks(*HELD)))
        attempt = self.state._book.tasks[tid].attempt
        item = Progress(task_id=tid, attempt=attempt, fraction=fraction)
        self.rec(self.state.report_progress([item], self.now))

    @rule(dt=st.sampled_from([0.5, 3.0, 8.0, 16.0, 40.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        wake = self.state.next_wakeup()
        self.rec(self.state.tick(self.now))
        nxt = self.state.next_wakeup()
        assert nxt is None or nxt > self.now or wake is None or nxt >= wake

    # ------------------------------------------------------------- invariants

    @invariant()
    def every_task_once(self) -> None:
        live = self.state._book.tasks
        assert len(set(self.submitted)) == len(self.submitted)
        assert set(self.submitted) == set(live) | self.evicted
        assert not set(live) & self.evicted
        stats = self.state.statistics(self.now)
        assert sum(stats.by_state.values()) == len(live)
        ready = [t for t in live.values() if t.state is TaskState.READY]
        assert stats.queue.size == len(ready) == stats.queue_depth
        held = sum(v for v in stats.held_by_region.values())
        assert held == sum(
            1 for t in live.values() if t.state in HELD and t.region in self.state._book.regions
        )

    @invariant()
    def dependencies_respected(self) -> None:
        live = self.state._book.tasks
        for task in live.values():
            if task.state not in RUNNABLE:
                continue
            cont = self.state._book.policy(task) is FailurePolicy.CONTINUE
            for p in task.parents:
                parent = live.get(p)
                if parent is None:
                    continue
                ok = parent.state is TaskState.SUCCEEDED or (
                    cont and parent.state in (TaskState.DEAD, TaskState.SKIPPED)
                )
                assert ok, (task.id, task.state, p, parent.state)

    @invariant()
    def attempts_monotonic_and_terminal_absorbing(self) -> None:
        for tid, task in self.state._book.tasks.items():
            assert task.attempt >= self.last_attempt.get(tid, 1)
            old = self.last_state.get(tid)
            if old in TERMINAL_STATES and task.state not in TERMINAL_STATES:
                assert tid in self.retried, (tid, old, task.state)
            self.last_attempt[tid] = task.attempt
            self.last_state[tid] = task.state
        self.retried.clear()

    def teardown(self) -> None:
        live = self.state.snapshot()
        replayed = SchedulerState(SETTINGS, random.Random(0))
        for ev in DECODER.decode(msgspec.msgpack.encode(self.events)):
            replayed.apply(ev)
        assert replayed.snapshot() == live, explain_difference(replayed.snapshot(), live)
        if self.midway is not None:
            data, count = self.midway
            resumed = SchedulerState.restore(data, random.Random(0))
            for ev in DECODER.decode(msgspec.msgpack.encode(self.events[count:])):
                resumed.apply(ev)
            assert resumed == self.state, explain_difference(
                resumed.snapshot(), self.state.snapshot()
            )
            # The restored state also decides like the live one from here on.
            assert resumed.tick(self.now + 100) == self.state.tick(self.now + 100)


TestScheduler = SchedulerMachine.TestCase
TestScheduler.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
