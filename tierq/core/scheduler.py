"""SchedulerState: commands in, events out; ``apply(event)`` is the only mutator.

Every command first validates everything it was given (and raises without changing anything),
then builds events one at a time and applies each before deciding the next, and returns them.
``apply`` is exactly what a replay runs, so a state rebuilt from the log is the live state by
construction (temporal's replayer works the same way).

This module is the front: it holds the scheduler's ``Book`` (``book.py``), owns the handler
table that ``apply`` dispatches on, and the clock (``tick``). The commands and the handlers
live with their concept:

    submission   submit, task_submitted
    workflows    submit_workflow, workflow_submitted / workflow_finished
    leasing      lease, tasks_assigned / task_assigned
    outcomes     report_started, report_progress, report, task_started ... task_dead, breakers
    cascade      cancel, cancel_workflow, retry, task_ready / task_cancelled / task_skipped
    priority     reprioritize, deadline boosts, task_reprioritized / task_deadline_boosted
    regions      register_region, region_heartbeat, region_registered / _heartbeat / _expired
    retention    eviction, tasks_evicted

Queries and statistics are in ``scheduler_queries.py``, the snapshot codec in ``snapshots.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from typing import cast

from ..errors import InvalidRequestError
from . import (
    cascade,
    intake,
    leasing,
    outcomes,
    priority,
    regions,
    retention,
    schedules,
    snapshots,
    submission,
    waiting,
    workflows,
)
from . import scheduler_queries as _q
from .admission import AdmissionStatistics
from .book import Book, Handler
from .events import (
    BreakerClosed,
    BreakerHalfOpen,
    BreakerOpened,
    BreakerScope,
    Event,
    IntakeApplied,
    RegionExpired,
    RegionHeartbeat,
    RegionRegistered,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleFired,
    SchedulePaused,
    ScheduleResumed,
    ScheduleUpdated,
    SettingsChanged,
    TaskAssigned,
    TaskCancelled,
    TaskDead,
    TaskDeadlineBoosted,
    TaskDuplicateReport,
    TaskFailed,
    TaskProgress,
    TaskReady,
    TaskRefused,
    TaskReprioritized,
    TaskRetried,
    TasksAssigned,
    TasksEvicted,
    TaskSkipped,
    TaskStarted,
    TaskSubmitted,
    TaskSucceeded,
    WorkflowFinished,
    WorkflowSubmitted,
)
from .intake import IntakeItem
from .leases import RegionView
from .model import (
    LeasedTask,
    Outcome,
    Progress,
    RegionInfo,
    Started,
    Task,
    TaskSpec,
    TaskState,
    WorkflowSpec,
)
from .records import (
    SchedulerStatistics,
    WorkflowSummary,
    WorkflowView,
)
from .retry import RandomSource
from .schedule_front import ScheduleCommands
from .settings import Settings

__all__ = ["SchedulerState"]


class SchedulerState:
    """The master's whole scheduling state. Commands return the events they caused."""

    __slots__ = ("_book", "_handlers")

    def __init__(self, settings: Settings, rng: RandomSource) -> None:
        #: Unbound functions, so the state holds no reference cycle (bound methods would make
        #: one) and a dropped state is freed at once rather than by the cyclic collector.
        self._handlers = _HANDLERS
        self._book = Book(settings.validate(), rng, _HANDLERS)

    @property
    def settings(self) -> Settings:
        return self._book.settings

    # ------------------------------------------------------------------ apply

    def apply(self, event: Event) -> None:
        """Apply one event: the only way the state changes (live and on replay)."""
        self._handlers[type(event)](self._book, event)

    def apply_all(self, events: Sequence[Event]) -> None:
        handlers = self._handlers
        book = self._book
        for ev in events:
            handlers[type(ev)](book, ev)

    # --------------------------------------------------------------- commands

    def submit(self, specs: Sequence[TaskSpec], now: float) -> tuple[list[Event], list[str]]:
        """Accept tasks; returns the events and one id per spec, in order.

        A spec whose idempotency key is already known returns the existing id (no event) when
        it is equal to the stored one, and raises ConflictError otherwise. The batch is
        all-or-nothing: any invalid spec or an admission refusal raises before any change.
        """
        return submission.submit(self._book, specs, now)

    def apply_intake(self, items: Sequence[IntakeItem], now: float) -> list[Event]:
        """Accept (or record as refused) durable-intake entries after :attr:`intake_seq`, in
        order, ending with ``intake_applied``; see ``intake.py``."""
        return intake.apply_intake(self._book, items, now)

    @property
    def intake_seq(self) -> int:
        """The last durable-intake entry applied."""
        return self._book.intake_seq

    def submit_workflow(
        self, wf: WorkflowSpec, now: float
    ) -> tuple[list[Event], str, dict[str, str]]:
        """Accept a DAG atomically; returns the events, the workflow id and task ids by key.

        Parents come first in the events (topological order), and ids are handed out in that
        order. A node's ``depends_on`` may name other keys or existing task ids.
        """
        return workflows.submit_workflow(self._book, wf, now)

    def register_region(self, info: RegionInfo, now: float) -> list[Event]:
        """Register (or re-register) a region. A new instance of a known name re-queues, as
        lost attempts, everything the old instance held."""
        return regions.register_region(self._book, info, now)

    def region_heartbeat(self, name: str, instance: str, now: float) -> list[Event]:
        """Renew a region's lease; logged only once half the lease has gone (see leases.py)."""
        return regions.region_heartbeat(self._book, name, instance, now)

    def lease(
        self,
        region: str,
        instance: str,
        slots: int,
        now: float,
        types: Collection[str] | None = None,
    ) -> tuple[list[Event], list[LeasedTask]]:
        """Hand up to ``slots`` READY tasks that ``region`` can run, best first; renews its lease.

        With ``types``, only tasks of those names. Classes whose task breaker (for this
        region) or resource breaker is open are skipped: their tasks wait. A half-open breaker
        lets one probe through.
        """
        return leasing.lease(self._book, region, instance, slots, now, types)

    def check_report(
        self,
        started: Sequence[Started],
        outcomes: Sequence[Outcome],
        now: float,
        late: Sequence[tuple[str, int, str]] = (),
    ) -> None:
        """Raise what :meth:`report_started`, :meth:`report` or :meth:`report_late` would
        raise, changing nothing.

        A region's report carries all of them; checking all of it first keeps the report all
        or nothing."""
        _check_report(started, outcomes, late)

    def report_late(self, items: Sequence[tuple[str, int, str]], now: float) -> list[Event]:
        """Reports a region received for attempts it does not hold: each is a duplicate
        (counted, not applied)."""
        return outcomes.report_late(self._book, items, now)

    def report_started(self, items: Sequence[Started], now: float) -> list[Event]:
        """ASSIGNED -> RUNNING. A start for another attempt is counted as a duplicate."""
        return outcomes.report_started(self._book, items, now)

    def report_progress(self, items: Sequence[Progress], now: float) -> list[Event]:
        """Progress of running attempts; reports for other attempts are ignored silently."""
        return outcomes.report_progress(self._book, items, now)

    def report(self, outcomes: Sequence[Outcome], now: float) -> list[Event]:
        """Outcomes of attempts. Only the current attempt of a held task counts; anything else
        is a duplicate (counted, not applied, no error)."""
        return _report(self._book, outcomes, now)

    def cancel(self, task_id: str, now: float) -> list[Event]:
        """Cancel a task and, transitively, its dependents (they become CANCELLED too)."""
        return cascade.cancel(self._book, task_id, now)

    def cancel_workflow(self, workflow_id: str, now: float) -> list[Event]:
        return cascade.cancel_workflow(self._book, workflow_id, now)

    def reprioritize(self, task_id: str, priority: int, now: float) -> list[Event]:
        """Change a task's base priority; O(log n) when it is queued."""
        return _reprioritize(self._book, task_id, priority, now)

    def retry(self, task_id: str, now: float) -> list[Event]:
        """Run a DEAD, CANCELLED or SKIPPED task again with a fresh attempt budget.

        Dependents that were skipped because of it come back as PENDING. Refused when a
        dependent already ran, or while a parent is itself dead, cancelled or skipped.
        """
        return cascade.retry(self._book, task_id, now)

    def configure(self, settings: Settings, now: float) -> list[Event]:
        """Change settings live."""
        now = float(now)
        if not isinstance(settings, Settings):
            raise InvalidRequestError("settings: expected Settings", field="settings")
        settings.validate()
        out: list[Event] = []
        self._book.emit(SettingsChanged(at=now, settings=settings), out)
        return out

    @property
    def schedules(self) -> ScheduleCommands:
        """The schedule commands and queries (``schedule_front.py``); the master computes
        the fire times they are given."""
        return ScheduleCommands(self._book)

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Event]:
        """Do what time makes due: delayed and backed-off tasks become READY, region leases
        expire, open breakers cool to half-open, deadline boosts, retention eviction."""
        now = float(now)
        book = self._book
        out: list[Event] = []
        cascade.release_due(book, now, out)
        regions.expire_regions(book, now, out)
        for scope, region, name in book.breakers.cooled(now, book.settings.breaker):
            ev = BreakerHalfOpen(
                at=now, scope=cast("BreakerScope", scope), region=region, name=name
            )
            book.emit(ev, out)
        priority.boost_deadlines(book, now, out)
        schedules.release_buffered(book, now, out)
        retention.evict(book, now, out)
        workflows.finish_workflows(book, now, out)
        return out

    def next_wakeup(self) -> float | None:
        """Earliest time ``tick`` may have work (possibly early, never late), or None."""
        book = self._book
        s = book.settings
        times: list[float] = []
        if book.timers:
            times.append(book.timers[0][0])
        times.extend(book.regions.expiry_times())
        times.extend(book.breakers.reopen_times(s.breaker.cooldown))
        if book.deadlines and s.deadline_boost:
            times.append(book.deadlines[0][0] - s.deadline_window)
        if book.retention:
            times.append(book.retention[0][0] + s.retention_seconds)
        sched_due = book.schedules.next_due()
        if sched_due is not None:
            times.append(sched_due)
        wf_due = book.workflows.next_due()
        if wf_due is not None:
            times.append(wf_due + s.retention_seconds)
        return min(times) if times else None

    # ---------------------------------------------------------------- queries

    def latency_type(self, task_id: str) -> str | None:
        """The task type whose submit-to-start latency a start of ``task_id`` tells: its
        name, unless it waited on purpose (``run_at``, parents) or is unknown. No copy: the
        master asks on every first start."""
        task = self._book.tasks.get(task_id)
        if task is None or task.parents or task.spec.run_at is not None:
            return None
        return task.spec.name

    def get(self, task_id: str) -> Task:
        """A copy of the task's record (NotFoundError if unknown or evicted)."""
        return _q.copy_task(self._book.task(task_id))

    def explain(self, task_id: str, now: float) -> Task:
        """Like :meth:`get`; a READY task's ``reason`` says what holds it, if anything does
        (no live worker for its type, open breakers). Not part of the state."""
        task = self.get(task_id)
        reason = waiting.waiting_reason(self._book, task, float(now))
        if reason is not None:
            task.reason = reason
        return task

    def unserved(self, specs: Sequence[TaskSpec]) -> list[str]:
        """Warnings for specs that no live region can run now (see ``waiting``)."""
        return waiting.unserved_warnings(self._book, specs)

    def list_tasks(
        self,
        *,
        state: TaskState | None = None,
        name: str | None = None,
        queue: str | None = None,
        region: str | None = None,
        workflow_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> tuple[list[Task], str | None]:
        """Tasks in id (= creation) order after ``cursor`` (``newest_first``: the reverse,
        before it); returns the page and the next cursor (None at the end). Stable while
        tasks are added: new ids sort last. One call examines at most 100,000 tasks, so with
        a selective filter a page can be short, even empty, and still have a next cursor."""
        return _q.list_tasks(
            self._book, state, name, queue, region, workflow_id, limit, cursor, newest_first
        )

    def list_workflows(
        self, *, state: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[WorkflowSummary], str | None]:
        """Workflows newest first (``state``: running, succeeded, failed or cancelled); returns
        the page and the next cursor (None at the end)."""
        return _q.list_workflows(self._book, state, limit, cursor)

    def workflow(
        self, workflow_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> WorkflowView:
        """The workflow and its nodes: all of them, or a page (``limit``) from ``cursor``."""
        return _q.workflow_view(self._book, workflow_id, cursor, limit)

    def regions(self) -> list[RegionView]:
        return _q.region_views(self._book)

    def held_attempts(self, region: str, instance: str) -> list[tuple[str, int, float | None]]:
        """``(task id, attempt, assigned at)`` of every task ``region`` holds, by id; empty
        unless ``instance`` is the registered one (see ``reconcile.py``)."""
        tasks = self._book.tasks
        out: list[tuple[str, int, float | None]] = []
        for tid in self._book.regions.held(region, instance):
            task = tasks.get(tid)
            if task is not None:
                out.append((tid, task.attempt, task.timestamps.get("assigned")))
        return out

    def statistics(self, now: float) -> SchedulerStatistics:
        return _q.statistics(self._book, now)

    def admission_statistics(self) -> AdmissionStatistics:
        return _q.admission_statistics(self._book)

    def waiting_in(self, queue: str) -> int:
        """Waiting (admission-counted) tasks of one queue."""
        return self._book.waiting_by_queue.get(queue, 0)

    # ---------------------------------------------------------- persistence

    def snapshot(self) -> bytes:
        """The logical state as MessagePack (SCHEMA_VERSION inside); see ``restore``."""
        return snapshots.encode_snapshot(self._book)

    @classmethod
    def restore(cls, data: bytes, rng: RandomSource) -> SchedulerState:
        """Rebuild a state from ``snapshot()`` bytes; the queue pops in exactly the same order."""
        snap = snapshots.decode_snapshot(data)
        state = cls(snap.settings, rng)
        snapshots.restore_book(state._book, snap)
        return state

    def fingerprint(self) -> str:
        """Digest of the logical state: equal for a live state and its replay."""
        return hashlib.sha256(self.snapshot()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SchedulerState):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self._book.tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._book.tasks


# The command functions, bound once: a method that delegates pays one global lookup (not a
# module attribute lookup too) on the per-call paths.
_check_report = outcomes.check_report
_report = outcomes.report
_reprioritize = priority.reprioritize


def _on_settings(book: Book, ev: SettingsChanged) -> None:
    old = book.settings
    new = ev.settings
    book.settings = new
    book.rules = new.rule_boosts()
    if new.aging_rate != old.aging_rate:
        book.aging = new.aging_rate != 0.0
        priority.rebuild_queue(book, new.aging_rate)
    if new.breaker.window != old.breaker.window:
        book.breakers.resize(new.breaker.window)


#: Event type -> the function that applies it.
_HANDLERS: dict[type, Handler] = {
    TaskSubmitted: cast("Handler", submission.on_submitted),
    WorkflowSubmitted: cast("Handler", workflows.on_workflow_submitted),
    TaskReady: cast("Handler", cascade.on_ready),
    TaskAssigned: cast("Handler", leasing.on_assigned),
    TasksAssigned: cast("Handler", leasing.on_tasks_assigned),
    TaskStarted: cast("Handler", outcomes.on_started),
    TaskProgress: cast("Handler", outcomes.on_progress),
    TaskSucceeded: cast("Handler", outcomes.on_succeeded),
    TaskFailed: cast("Handler", outcomes.on_failed),
    TaskDead: cast("Handler", outcomes.on_dead),
    TaskCancelled: cast("Handler", cascade.on_cancelled),
    TaskSkipped: cast("Handler", cascade.on_skipped),
    TaskReprioritized: cast("Handler", priority.on_reprioritized),
    TaskDeadlineBoosted: cast("Handler", priority.on_boosted),
    TaskRetried: cast("Handler", cascade.on_retried),
    TaskDuplicateReport: cast("Handler", outcomes.on_duplicate),
    TasksEvicted: cast("Handler", retention.on_evicted),
    RegionRegistered: cast("Handler", regions.on_region_registered),
    RegionHeartbeat: cast("Handler", regions.on_region_heartbeat),
    RegionExpired: cast("Handler", regions.on_region_expired),
    BreakerOpened: cast("Handler", outcomes.on_breaker_opened),
    BreakerHalfOpen: cast("Handler", outcomes.on_breaker_half_open),
    BreakerClosed: cast("Handler", outcomes.on_breaker_closed),
    SettingsChanged: cast("Handler", _on_settings),
    TaskRefused: cast("Handler", intake.on_refused),
    IntakeApplied: cast("Handler", intake.on_intake_applied),
    WorkflowFinished: cast("Handler", workflows.on_workflow_finished),
    ScheduleCreated: cast("Handler", schedules.on_created),
    ScheduleUpdated: cast("Handler", schedules.on_updated),
    ScheduleDeleted: cast("Handler", schedules.on_deleted),
    SchedulePaused: cast("Handler", schedules.on_paused),
    ScheduleResumed: cast("Handler", schedules.on_resumed),
    ScheduleFired: cast("Handler", schedules.on_fired),
}
