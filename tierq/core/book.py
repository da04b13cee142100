"""The scheduler's book: task records, the indexes derived from them, and their bookkeeping.

``Book`` is the one record every part of the scheduler reads and writes through ``apply``:
``submission``, ``workflows``, ``leasing``, ``outcomes``, ``cascade``, ``priority`` and
``retention`` are functions over it, and ``SchedulerState`` (``scheduler.py``) is the front that
holds one. Its fields are public on purpose: they are the shared data model of those modules,
the way a ``Task`` record's are, and the hot paths read them without a call in between.
Workflows, regions and breakers are components that own their state (``WorkflowBook``,
``RegionBook``, ``BreakerBoard``) and are changed only through their methods.

Derived indexes (children, unresolved parent counts, timers, per-state counters) are kept up to
date by ``enter``/``leave`` and rebuilt from the task records by ``rebuild_indexes`` on restore;
only logical state goes into a snapshot.
"""

from __future__ import annotations

import sys
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from heapq import heapify, heappush
from operator import attrgetter
from typing import cast

import msgspec

from ..errors import NotFoundError
from .breaker import BreakerBoard
from .events import Event
from .ids import IdGenerator
from .leases import RegionBook
from .live import NO_HISTORY, NO_STAMPS, LiveTask
from .model import AttemptRecord, ErrorSummary, FailurePolicy, JSONValue, TaskSpec, TaskState
from .placement import ClassKey, PlacementIndex
from .pqueue import SCALE, SPAN
from .records import Totals, WorkflowBook, stamp
from .retry import RandomSource
from .schedule_records import ScheduleBook
from .settings import PriorityRule, Settings
from .states import TERMINAL_STATES, TRANSITIONS, WAITING_STATES, band, check_transition
from .validate import result_refs

__all__ = ["Book", "Handler", "attempt_record", "end_attempt", "share_restored", "share_spec"]

PENDING, READY, ASSIGNED, RUNNING = (
    TaskState.PENDING,
    TaskState.READY,
    TaskState.ASSIGNED,
    TaskState.RUNNING,
)
SUCCEEDED, FAILED, DEAD = TaskState.SUCCEEDED, TaskState.FAILED, TaskState.DEAD
CANCELLED, SKIPPED = TaskState.CANCELLED, TaskState.SKIPPED
HELD_STATES = frozenset({ASSIGNED, RUNNING})
#: States in which a parent still holds its children back, whatever the failure policy.
UNFINISHED = frozenset({PENDING, READY, ASSIGNED, RUNNING})

#: The empty ``args`` and ``kwargs`` of every kept spec that has none (see share_spec).
NO_ARGS: list[JSONValue] = []
NO_KWARGS: dict[str, JSONValue] = {}
_force_setattr = msgspec.structs.force_setattr
_intern = sys.intern


def share_spec(spec: TaskSpec) -> None:
    """Make a spec the book keeps share what many specs hold equal: its task name and queue
    (interned) and an empty ``args``/``kwargs`` (one shared object each, as NO_STAMPS).

    A decoded spec otherwise holds its own copy of each: about 180 bytes of a queued task's
    ~800. Values are unchanged (a spec is frozen and nothing mutates its containers), so
    encodings, snapshots and fingerprints are too.
    """
    name = spec.name
    shared = _intern(name)
    if shared is not name:
        _force_setattr(spec, "name", shared)
    queue = spec.queue
    shared = _intern(queue)
    if shared is not queue:
        _force_setattr(spec, "queue", shared)
    if not spec.args and spec.args is not NO_ARGS:
        _force_setattr(spec, "args", NO_ARGS)
    if not spec.kwargs and spec.kwargs is not NO_KWARGS:
        _force_setattr(spec, "kwargs", NO_KWARGS)


def share_restored(task: LiveTask) -> None:
    """``share_spec`` for a task decoded from a snapshot, and its empty timestamps and history
    replaced by the shared ones a live submit gives (nothing writes to an empty one)."""
    share_spec(task.spec)
    if not task.timestamps:
        task.timestamps = NO_STAMPS
    if not task.history:
        task.history = NO_HISTORY


#: TaskState -> its value; Enum.value is a Python-level property and this is the hot path.
SV: dict[TaskState, str] = {state: state.value for state in TaskState}

#: One priority point in heap-key units (pqueue.make_key with rate 0).
PRIORITY_UNIT = SCALE * SPAN

SPEC = attrgetter("spec")
QUEUE = attrgetter("queue")
NAME = attrgetter("name")
PRIORITY = attrgetter("priority")
#: A spec's placement class (see placement.py), built in C.
CLASS = cast("Callable[[TaskSpec], ClassKey]", attrgetter("name", "region", "labels", "resource"))

#: An event handler: applies one event to the book.
Handler = Callable[["Book", Event], None]


class Book:
    """Everything the scheduler knows, as the modules that decide and apply share it."""

    __slots__ = (
        "aging",
        "breakers",
        "by_state",
        "children",
        "deadlines",
        "handlers",
        "idem",
        "ids",
        "intake_seq",
        "order",
        "order_holes",
        "placement",
        "ready_by_name",
        "refs",
        "regions",
        "rejected",
        "retention",
        "rng",
        "rules",
        "schedules",
        "seq",
        "settings",
        "tasks",
        "timers",
        "totals",
        "unresolved",
        "waiting",
        "waiting_by_band",
        "waiting_by_queue",
        "workflows",
    )

    def __init__(
        self, settings: Settings, rng: RandomSource, handlers: dict[type, Handler]
    ) -> None:
        self.settings = settings
        self.rng = rng
        #: Event type -> the function that applies it (the table lives in scheduler.py).
        self.handlers = handlers
        self.ids = IdGenerator()
        #: The last durable-intake entry applied (see intake.py).
        self.intake_seq = 0
        #: The next queue sequence number: global, so ties across classes go FIFO.
        self.seq = 0
        self.totals = Totals()
        self.tasks: dict[str, LiveTask] = {}
        #: Task ids in creation (= id) order, for cursor pagination; may hold evicted ids.
        self.order: list[str] = []
        self.order_holes = 0
        self.children: dict[str, list[str]] = {}
        #: PENDING tasks -> number of parents not yet resolved for them.
        self.unresolved: dict[str, int] = {}
        #: Tasks whose args use {"$result": parent}.
        self.refs: set[str] = set()
        self.idem: dict[str, str] = {}
        self.workflows = WorkflowBook()
        self.placement = PlacementIndex(settings.aging_rate)
        #: Whether the queues age (keep enqueue times); see submission.on_submitted.
        self.aging = settings.aging_rate != 0.0
        self.ready_by_name: dict[str, int] = {}
        self.rules: dict[str, tuple[PriorityRule, ...]] = settings.rule_boosts()
        #: (time, task id): PENDING tasks waiting for run_at, FAILED ones for their retry.
        self.timers: list[tuple[float, str]] = []
        #: (deadline, task id) of tasks not boosted yet.
        self.deadlines: list[tuple[float, str]] = []
        #: (time, task id): when a task (or a child of it) finished; eviction candidates.
        self.retention: list[tuple[float, str]] = []
        self.regions = RegionBook()
        self.breakers = BreakerBoard(settings.breaker.window)
        self.schedules = ScheduleBook()
        self.by_state: dict[TaskState, int] = dict.fromkeys(TaskState, 0)
        self.waiting = 0
        self.waiting_by_queue: dict[str, int] = {}
        self.waiting_by_band: dict[str, int] = {}
        self.rejected = 0

    def emit(self, ev: Event, out: list[Event]) -> None:
        """Apply ``ev`` and add it to the command's events."""
        self.handlers[type(ev)](self, ev)
        out.append(ev)

    def task(self, task_id: str) -> LiveTask:
        task = self.tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id!r}", ids=(task_id,))
        return task

    # ------------------------------------------------------------ dependencies

    def policy(self, task: LiveTask) -> FailurePolicy:
        wf_id = task.workflow_id
        if wf_id is None:
            return FailurePolicy.SKIP_DEPENDENTS
        return self.workflows.policy(wf_id)

    def resolves(self, parent_state: TaskState, child: LiveTask) -> bool:
        """Whether a parent in ``parent_state`` no longer holds ``child`` back."""
        if parent_state is SUCCEEDED:
            return True
        if parent_state is DEAD or parent_state is SKIPPED:
            return self.policy(child) is FailurePolicy.CONTINUE
        return False

    def count_unresolved(self, task: LiveTask) -> int:
        n = 0
        tasks = self.tasks
        for p in task.parents:
            parent = tasks.get(p)
            # An evicted parent was terminal and had resolved its children before it went.
            if parent is not None and not self.resolves(parent.state, task):
                n += 1
        return n

    # ----------------------------------------------------------- the indexes

    def push_ready(self, task: LiveTask, at: float) -> None:
        spec = task.spec
        seq = self.seq
        self.seq = seq + 1
        queue = self.placement.queue_of(spec)
        x = task.extra  # task.boost, without the property call
        p = task.priority if x is None else task.priority + x.boost
        if self.aging:
            queue.push(task, p, at, seq)
        else:
            # A task becomes READY only from a state outside the queue, so it is not queued.
            queue.push_key(task, seq - p * PRIORITY_UNIT, seq << 16 | p & 0xFFFF)
        name = spec.name
        self.ready_by_name[name] = self.ready_by_name.get(name, 0) + 1

    def leave(self, task: LiveTask) -> None:
        """Undo the indexes of the task's current state."""
        st = task.state
        self.by_state[st] -= 1
        if st in WAITING_STATES:
            self.waiting -= 1
            self.waiting_by_queue[task.spec.queue] -= 1
            self.waiting_by_band[band(task.priority)] -= 1
        if st is READY:
            spec = task.spec
            self.placement.queue_of(spec).remove(task)
            self.ready_by_name[spec.name] -= 1
        elif st in HELD_STATES:
            self.regions.release(task.region, task.id)
        elif st in TERMINAL_STATES and task.workflow_id is not None:
            self.workflows.task_reopened(task.workflow_id)

    def enter(self, task: LiveTask, at: float) -> None:
        """Index the task under its (new) state."""
        st = task.state
        self.by_state[st] += 1
        stamp(task, SV[st], at)
        if st in WAITING_STATES:
            self.waiting += 1
            q = task.spec.queue
            self.waiting_by_queue[q] = self.waiting_by_queue.get(q, 0) + 1
            b = band(task.priority)
            self.waiting_by_band[b] = self.waiting_by_band.get(b, 0) + 1
        if st is READY:
            self.push_ready(task, at)
        elif st in HELD_STATES:
            self.regions.hold(task.region, task.id)
        elif st in TERMINAL_STATES:
            self.entered_terminal(task, st, at)

    def entered_terminal(self, task: LiveTask, st: TaskState, at: float) -> None:
        """Count the task out of its workflow and release the children it held back."""
        tid = task.id
        self.unresolved.pop(tid, None)
        wf_id = task.workflow_id
        if wf_id is not None:
            self.workflows.task_ended(wf_id)
        else:
            # Workflow tasks get theirs when the workflow finishes.
            heappush(self.retention, (at, tid))
        kids = self.children.get(tid)
        if not kids:
            return
        tasks = self.tasks
        unresolved = self.unresolved
        for c in kids:
            n = unresolved.get(c)
            if n is None:
                continue
            child = tasks.get(c)
            if (
                child is None
                or child.state is not PENDING
                or (st is not SUCCEEDED and not self.resolves(st, child))
            ):
                continue
            if n > 1:
                unresolved[c] = n - 1
                continue
            del unresolved[c]
            x = child.extra  # child.not_before, without the property call
            nb = None if x is None else x.not_before
            if nb is not None and nb > at:
                heappush(self.timers, (nb, c))

    def move(self, task: LiveTask, new: TaskState, at: float) -> None:
        if new not in TRANSITIONS[task.state]:
            check_transition(task.id, task.state, new)
        self.leave(task)
        task.state = new
        self.enter(task, at)

    def count_bands(self, tasks: list[LiveTask], sign: int) -> None:
        """Add ``sign`` per task to the waiting-by-band counters, by bisecting the sorted
        priorities (see states.band for the bounds) instead of one lookup per task."""
        prios = sorted(map(PRIORITY, tasks))
        done = len(prios)
        low = bisect_left(prios, 0)
        normal = bisect_right(prios, 0, low)
        high = bisect_left(prios, 500, normal)
        wb = self.waiting_by_band
        for b, n in (
            ("low", low),
            ("normal", normal - low),
            ("high", high - normal),
            ("critical", done - high),
        ):
            if n:
                wb[b] = wb.get(b, 0) + sign * n

    # --------------------------------------------------------------- restore

    def rebuild_indexes(self) -> None:
        """Derive every index ``apply`` maintains from the task and workflow records."""
        timers: list[tuple[float, str]] = []
        deadlines: list[tuple[float, str]] = []
        retention: list[tuple[float, str]] = []
        workflows = self.workflows
        for task in self.tasks.values():
            tid = task.id
            state = task.state
            self._count(task)
            wf_id = task.workflow_id
            if wf_id is not None and state not in TERMINAL_STATES:
                workflows.count_open(wf_id)
            if task.spec.deadline is not None and task.boost == 0 and state not in TERMINAL_STATES:
                deadlines.append((task.spec.deadline, tid))
            if state is FAILED and task.not_before is not None:
                timers.append((task.not_before, tid))
            if state in TERMINAL_STATES and wf_id is None:
                retention.append((task.timestamps[state.value], tid))
        for task in self.tasks.values():
            if task.state is PENDING:
                n = self.count_unresolved(task)
                if n:
                    self.unresolved[task.id] = n
                elif task.not_before is not None:
                    timers.append((task.not_before, task.id))
        workflows.restored()
        heapify(timers)
        heapify(deadlines)
        heapify(retention)
        self.timers = timers
        self.deadlines = deadlines
        self.retention = retention

    def _count(self, task: LiveTask) -> None:
        state = task.state
        spec = task.spec
        self.by_state[state] += 1
        if state in WAITING_STATES:
            self.waiting += 1
            self.waiting_by_queue[spec.queue] = self.waiting_by_queue.get(spec.queue, 0) + 1
            b = band(task.priority)
            self.waiting_by_band[b] = self.waiting_by_band.get(b, 0) + 1
        if spec.idempotency_key is not None and task.workflow_id is None:
            self.idem[spec.idempotency_key] = task.id
        if (spec.args or spec.kwargs) and result_refs([spec.args, spec.kwargs]):
            self.refs.add(task.id)
        for p in task.parents:
            self.children.setdefault(p, []).append(task.id)


def attempt_record(task: LiveTask) -> AttemptRecord:
    """The record of a held task's current attempt, made on first need: an assignment only
    sets ``region`` and ``timestamps["assigned"]``, which saves an allocation and a
    collector-tracked list per leased task. Every assignment has its own attempt number (a
    task returns to READY only with a new one), so the number tells whether it exists."""
    # A held task has its extra record (the assignment set its region): read it directly.
    x = task.more()
    history = x.history
    attempt = task.attempt
    if history and history[-1].attempt == attempt:
        return history[-1]
    rec = AttemptRecord(attempt=attempt, region=x.region, assigned_at=x.timestamps.get("assigned"))
    if history is NO_HISTORY:
        x.history = [rec]
    else:
        history.append(rec)
    return rec


def end_attempt(task: LiveTask, at: float, outcome: str, error: ErrorSummary | None) -> None:
    """Close the record of the task's current attempt (if it has one) with ``outcome``."""
    if task.state in HELD_STATES or task.history:
        rec = attempt_record(task) if task.state in HELD_STATES else task.history[-1]
        if rec.ended_at is None:
            rec.ended_at = at
            rec.outcome = outcome
            rec.error = error
