"""SchedulerState: commands in, events out; ``apply(event)`` is the only mutator.

Every command first validates everything it was given (and raises without changing anything),
then builds events one at a time and applies each before deciding the next, and returns them.
``apply`` is exactly what a replay runs, so a state rebuilt from the log is the live state by
construction (temporal's replayer works the same way). Derived indexes (children, unresolved
parent counts, timers, per-state counters) are updated inside ``apply`` and rebuilt from tasks on
``restore``; only logical state goes into a snapshot.

Queries, statistics and the snapshot codec live in ``scheduler_queries.py``.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from heapq import heapify, heappop, heappush
from operator import attrgetter, itemgetter
from typing import cast

import msgspec

from ..errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnknownTaskError,
)
from . import scheduler_queries as _q
from .admission import AdmissionStatistics, check_admission
from .breaker import BreakerState, CircuitBreaker
from .dag import WorkflowPlan, plan_workflow
from .events import (
    BreakerClosed,
    BreakerHalfOpen,
    BreakerOpened,
    BreakerScope,
    Event,
    RegionExpired,
    RegionHeartbeat,
    RegionRegistered,
    SettingsChanged,
    TaskAssigned,
    TaskCancelled,
    TaskDead,
    TaskDeadlineBoosted,
    TaskDuplicateReport,
    TaskFailed,
    TaskProgress,
    TaskReady,
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
from .ids import WORKFLOW_PREFIX, IdGenerator
from .leases import RegionRecord, RegionView
from .model import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    AttemptRecord,
    ErrorSummary,
    FailurePolicy,
    LeasedTask,
    Outcome,
    OutcomeKind,
    Progress,
    RegionInfo,
    Started,
    Task,
    TaskSpec,
    TaskState,
    WorkflowSpec,
)
from .placement import ClassKey, PlacementIndex
from .pqueue import SCALE, SPAN
from .records import (
    SchedulerStatistics,
    Totals,
    WorkflowRecord,
    WorkflowSummary,
    WorkflowView,
    assignment_record,
    ready_at,
    stamp,
)
from .retry import RandomSource, backoff_delay, retry_decision
from .settings import Settings
from .states import TERMINAL_STATES, TRANSITIONS, WAITING_STATES, band, check_transition
from .validate import (
    RESULT_REF,
    check_json,
    check_labels,
    check_name,
    check_priority,
    check_specs,
    check_text,
    check_token,
    result_refs,
)

__all__ = ["SchedulerState"]

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
_UNFINISHED = frozenset({PENDING, READY, ASSIGNED, RUNNING})

#: The history of every task that was never assigned: one shared empty list, replaced on the
#: first assignment (copy-on-write). Saves a tracked list per queued task; nothing appends to it.
NO_HISTORY: list[AttemptRecord] = []
#: The timestamps of a task READY since submission: one shared empty dict (see records.stamp).
NO_STAMPS: dict[str, float] = {}

_STATE = attrgetter("state")
_ID = attrgetter("id")
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_IDEM_KEY = attrgetter("idempotency_key")
_DEPENDS = attrgetter("depends_on")
_NAME = attrgetter("name")
_ATTEMPT = attrgetter("attempt")
_SPEC = attrgetter("spec")
_PRIORITY = attrgetter("priority")
_QUEUE = attrgetter("queue")
#: A spec's placement class (see placement.py), built in C.
_CLASS = cast("Callable[[TaskSpec], ClassKey]", attrgetter("name", "region", "labels", "resource"))
_ONLY_READY = frozenset({TaskState.READY})
#: One priority point in heap-key units (pqueue.make_key with rate 0).
_PRIORITY_UNIT = SCALE * SPAN

#: TaskState -> its value; Enum.value is a Python-level property and this is the hot path.
SV: dict[TaskState, str] = {state: state.value for state in TaskState}

#: (scope, region, name): ("task", region, task name) or ("resource", None, resource).
BreakerKey = tuple[str, str | None, str]

#: Results that need no JSON walk (a float still does: it may be NaN).
_PLAIN_RESULTS = frozenset({bool, str})
_BLOCKED, _PROBE, _FLOW = 0, 1, 2
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MAX_MESSAGE = 4096
_MAX_TRACEBACK = 65_536
_MAX_WORKER = 256
#: Task names a lease may hand out (None: any the region registered).
_Types = Collection[str] | None
_OUTCOME_KINDS = frozenset(kind.value for kind in OutcomeKind)
_EVICT_BATCH = 10_000


def _digest(wf: WorkflowSpec) -> str:
    return hashlib.blake2b(msgspec.msgpack.encode(wf), digest_size=16).hexdigest()


class SchedulerState:
    """The master's whole scheduling state. Commands return the events they caused."""

    __slots__ = (
        "_aging",
        "_breakers",
        "_by_state",
        "_children",
        "_deadlines",
        "_handlers",
        "_idem",
        "_ids",
        "_order",
        "_order_holes",
        "_placement",
        "_ready_by_name",
        "_refs",
        "_regions",
        "_rejected",
        "_retention",
        "_rng",
        "_rules",
        "_seq",
        "_settings",
        "_tasks",
        "_timers",
        "_totals",
        "_unresolved",
        "_waiting",
        "_waiting_by_band",
        "_waiting_by_queue",
        "_wf_done",
        "_wf_idem",
        "_wf_levels",
        "_wf_open",
        "_wf_retention",
        "_workflows",
    )

    def __init__(self, settings: Settings, rng: RandomSource) -> None:
        self._settings = settings.validate()
        self._rng = rng
        self._ids = IdGenerator()
        self._seq = 0
        self._totals = Totals()
        self._tasks: dict[str, Task] = {}
        #: Task ids in creation (= id) order, for cursor pagination; may hold evicted ids.
        self._order: list[str] = []
        self._order_holes = 0
        self._children: dict[str, list[str]] = {}
        #: PENDING tasks -> number of parents not yet resolved for them.
        self._unresolved: dict[str, int] = {}
        #: Tasks whose args use {"$result": parent}.
        self._refs: set[str] = set()
        self._idem: dict[str, str] = {}
        self._wf_idem: dict[str, str] = {}
        self._workflows: dict[str, WorkflowRecord] = {}
        self._wf_open: dict[str, int] = {}
        #: Topological level of each node, by workflow: a cache for views (a workflow's graph
        #: never changes), filled on first view; not part of the state or its snapshot.
        self._wf_levels: dict[str, list[int]] = {}
        self._wf_done: set[str] = set()
        self._placement = PlacementIndex(settings.aging_rate)
        #: Whether the queues age (keep enqueue times); see _on_submitted.
        self._aging = settings.aging_rate != 0.0
        self._ready_by_name: dict[str, int] = {}
        self._rules = settings.rule_boosts()
        #: (time, task id): PENDING tasks waiting for run_at, FAILED ones for their retry.
        self._timers: list[tuple[float, str]] = []
        #: (deadline, task id) of tasks not boosted yet.
        self._deadlines: list[tuple[float, str]] = []
        #: (time, task id): when a task (or a child of it) finished; eviction candidates.
        self._retention: list[tuple[float, str]] = []
        self._wf_retention: list[tuple[float, str]] = []
        self._regions: dict[str, RegionRecord] = {}
        self._breakers: dict[BreakerKey, CircuitBreaker] = {}
        self._by_state: dict[TaskState, int] = dict.fromkeys(TaskState, 0)
        self._waiting = 0
        self._waiting_by_queue: dict[str, int] = {}
        self._waiting_by_band: dict[str, int] = {}
        self._rejected = 0
        #: Unbound functions, so the state holds no reference cycle (bound methods would make
        #: one) and a dropped state is freed at once rather than by the cyclic collector.
        self._handlers = _HANDLERS

    @property
    def settings(self) -> Settings:
        return self._settings

    # ------------------------------------------------------------------ apply

    def apply(self, event: Event) -> None:
        """Apply one event: the only way the state changes (live and on replay)."""
        self._handlers[type(event)](self, event)

    def apply_all(self, events: Sequence[Event]) -> None:
        handlers = self._handlers
        for ev in events:
            handlers[type(ev)](self, ev)

    def _emit(self, ev: Event, out: list[Event]) -> None:
        self._handlers[type(ev)](self, ev)
        out.append(ev)

    # ------------------------------------------------------------ bookkeeping

    def _policy(self, task: Task) -> FailurePolicy:
        wf_id = task.workflow_id
        if wf_id is None:
            return FailurePolicy.SKIP_DEPENDENTS
        wf = self._workflows.get(wf_id)
        return FailurePolicy.SKIP_DEPENDENTS if wf is None else wf.policy

    def _resolves(self, parent_state: TaskState, child: Task) -> bool:
        """Whether a parent in ``parent_state`` no longer holds ``child`` back."""
        if parent_state is SUCCEEDED:
            return True
        if parent_state is DEAD or parent_state is SKIPPED:
            return self._policy(child) is FailurePolicy.CONTINUE
        return False

    def _count_unresolved(self, task: Task) -> int:
        n = 0
        tasks = self._tasks
        for p in task.parents:
            parent = tasks.get(p)
            # An evicted parent was terminal and had resolved its children before it went.
            if parent is not None and not self._resolves(parent.state, task):
                n += 1
        return n

    def _push_ready(self, task: Task, at: float) -> None:
        spec = task.spec
        seq = self._seq
        self._seq = seq + 1
        queue = self._placement.queue_of(spec)
        if self._aging:
            queue.push(task, task.priority + task.boost, at, seq)
        else:
            # A task becomes READY only from a state outside the queue, so it is not queued.
            p = task.priority + task.boost
            queue.push_key(task, seq - p * _PRIORITY_UNIT, seq << 16 | p & 0xFFFF)
        name = spec.name
        self._ready_by_name[name] = self._ready_by_name.get(name, 0) + 1

    def _leave(self, task: Task) -> None:
        """Undo the indexes of the task's current state."""
        st = task.state
        self._by_state[st] -= 1
        if st in WAITING_STATES:
            self._waiting -= 1
            q = task.spec.queue
            self._waiting_by_queue[q] -= 1
            self._waiting_by_band[band(task.priority)] -= 1
        if st is READY:
            spec = task.spec
            self._placement.queue_of(spec).remove(task)
            self._ready_by_name[spec.name] -= 1
        elif st in HELD_STATES:
            rec = self._regions.get(task.region or "")
            if rec is not None:
                rec.held.discard(task.id)
        elif st in TERMINAL_STATES:
            wf_id = task.workflow_id
            if wf_id is not None and wf_id in self._wf_open:
                self._wf_open[wf_id] += 1
                self._wf_done.discard(wf_id)
                wf = self._workflows[wf_id]
                wf.state = None
                wf.finished_at = None

    def _enter(self, task: Task, at: float) -> None:
        """Index the task under its (new) state."""
        st = task.state
        self._by_state[st] += 1
        stamp(task, SV[st], at)
        if st in WAITING_STATES:
            self._waiting += 1
            q = task.spec.queue
            self._waiting_by_queue[q] = self._waiting_by_queue.get(q, 0) + 1
            b = band(task.priority)
            self._waiting_by_band[b] = self._waiting_by_band.get(b, 0) + 1
        if st is READY:
            self._push_ready(task, at)
        elif st in HELD_STATES:
            rec = self._regions.get(task.region or "")
            if rec is not None:
                rec.held.add(task.id)
        elif st in TERMINAL_STATES:
            self._entered_terminal(task, st, at)

    def _entered_terminal(self, task: Task, st: TaskState, at: float) -> None:
        tid = task.id
        self._unresolved.pop(tid, None)
        wf_id = task.workflow_id
        if wf_id is not None and wf_id in self._wf_open:
            left = self._wf_open[wf_id] - 1
            self._wf_open[wf_id] = left
            if left == 0:
                self._wf_done.add(wf_id)
        if wf_id is None:
            # Workflow tasks get theirs when the workflow finishes.
            heappush(self._retention, (at, tid))
        tasks = self._tasks
        kids = self._children.get(tid)
        if not kids:
            return
        unresolved = self._unresolved
        for c in kids:
            n = unresolved.get(c)
            if n is None:
                continue
            child = tasks.get(c)
            if (
                child is None
                or child.state is not PENDING
                or (st is not SUCCEEDED and not self._resolves(st, child))
            ):
                continue
            if n > 1:
                unresolved[c] = n - 1
                continue
            del unresolved[c]
            nb = child.not_before
            if nb is not None and nb > at:
                heappush(self._timers, (nb, c))

    def _move(self, task: Task, new: TaskState, at: float) -> None:
        if new not in TRANSITIONS[task.state]:
            check_transition(task.id, task.state, new)
        self._leave(task)
        task.state = new
        self._enter(task, at)

    def _task(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id!r}", ids=(task_id,))
        return task

    def _breaker_keys(self, task: Task) -> list[BreakerKey]:
        keys: list[BreakerKey] = [("task", task.region, task.spec.name)]
        if task.spec.resource is not None:
            keys.append(("resource", None, task.spec.resource))
        return keys

    def _breaker(self, key: BreakerKey) -> CircuitBreaker:
        b = self._breakers.get(key)
        if b is None:
            scope, region, name = key
            label = f"task:{region}:{name}" if scope == "task" else f"resource:{name}"
            b = self._breakers[key] = CircuitBreaker(label, self._settings.breaker.window)
        return b

    def _record_outcome(self, task: Task, failed: bool) -> None:
        breakers = self._breakers
        key: BreakerKey = ("task", task.region, task.spec.name)
        b = breakers.get(key)
        if b is None:
            b = self._breaker(key)
        b.record(failed)
        resource = task.spec.resource
        if resource is not None:
            self._breaker(("resource", None, resource)).record(failed)

    def _release_probe(self, task: Task) -> None:
        if not self._breakers:
            return
        for key in self._breaker_keys(task):
            b = self._breakers.get(key)
            if b is not None and b.probe == task.id:
                b.probe = None

    # ----------------------------------------------------------- apply: tasks

    def _on_submitted(self, ev: TaskSubmitted) -> None:
        spec = ev.spec
        tid = ev.id
        at = ev.at
        state = ev.state
        if state is not READY and state is not PENDING:
            check_transition(tid, PENDING, state)
        ids = self._ids
        last = ids.last_id
        if tid != last and (tid > last or len(tid) != len(last)):
            ids.observe(tid)
        priority = spec.priority
        task = Task(
            id=tid,
            spec=spec,
            state=state,
            submitted_at=at,
            workflow_id=ev.workflow_id,
            parents=ev.parents,
            priority=priority,
            not_before=ev.not_before,
            # READY at submission: the "ready" time is submitted_at (see records.stamp).
            timestamps=NO_STAMPS if state is READY else {SV[state]: at},
            history=NO_HISTORY,
        )
        self._tasks[tid] = task
        self._order.append(tid)
        self._totals.submitted += 1
        if spec.idempotency_key is not None and ev.workflow_id is None:
            self._idem[spec.idempotency_key] = tid
        if ev.uses_results:
            self._refs.add(tid)
        if ev.parents:
            self._link_parents(task, ev.parents)
        if spec.deadline is not None:
            heappush(self._deadlines, (spec.deadline, tid))
        # _enter(), inlined: this runs once per submitted task.
        self._by_state[state] += 1
        self._waiting += 1
        q = spec.queue
        wq = self._waiting_by_queue
        wq[q] = wq.get(q, 0) + 1
        b = "normal" if priority == 0 else band(priority)
        wb = self._waiting_by_band
        wb[b] = wb.get(b, 0) + 1
        if state is READY:
            seq = self._seq
            self._seq = seq + 1
            name = spec.name
            queue = self._placement.queue_of(spec)
            if self._aging:
                queue.push(task, priority, at, seq)
            else:
                # make_key() for a non-aging queue, inlined; the task is new, so not queued.
                # readyq.token(), inlined too.
                queue.push_key(task, seq - priority * _PRIORITY_UNIT, seq << 16 | priority & 0xFFFF)
            rn = self._ready_by_name
            rn[name] = rn.get(name, 0) + 1
        elif ev.not_before is not None and tid not in self._unresolved:
            heappush(self._timers, (ev.not_before, tid))

    def _apply_submitted(self, evs: list[TaskSubmitted]) -> None:
        """``_on_submitted`` for each of ``evs``, events this state just made (live submit):
        the same changes, with the lookups hoisted out of the loop, the counters added once
        per batch and the queue pushes made per class. Anything but a plain READY task (no
        parents, deadline, idempotency key or aging) takes ``_on_submitted`` in its turn."""
        tasks = self._tasks
        order_append = self._order.append
        no_history = NO_HISTORY
        no_stamps = NO_STAMPS
        plain: list[Task] = []
        seqs: list[int] = []
        seq = self._seq
        general = self._aging
        for ev in evs:
            spec = ev.spec
            if (
                general
                or ev.state is not READY
                or ev.parents
                or ev.uses_results
                or ev.workflow_id is not None
                or spec.deadline is not None
                or spec.idempotency_key is not None
            ):
                self._seq = seq
                self._on_submitted(ev)
                seq = self._seq
                continue
            tid = ev.id
            at = ev.at
            task = Task(
                id=tid,
                spec=spec,
                state=READY,
                submitted_at=at,
                priority=spec.priority,
                # An empty dict: READY since submission (see records.stamp).
                timestamps=no_stamps,
                history=no_history,
            )
            tasks[tid] = task
            order_append(tid)
            plain.append(task)
            seqs.append(seq)
            seq += 1
        self._seq = seq
        if not plain:
            return
        n = len(plain)
        self._totals.submitted += n
        self._by_state[READY] += n
        self._waiting += n
        specs = list(map(_SPEC, plain))
        _count_into(self._waiting_by_queue, map(_QUEUE, specs))
        _count_into(self._ready_by_name, map(_NAME, specs))
        self._count_bands(plain, 1)
        classes = list(map(_CLASS, specs))
        placement = self._placement
        first = classes[0]
        if classes.count(first) == n:
            placement.queue(first).push_new(plain, seqs)
            return
        groups: dict[ClassKey, tuple[list[Task], list[int]]] = {}
        for key, task, task_seq in zip(classes, plain, seqs, strict=True):
            group = groups.get(key)
            if group is None:
                groups[key] = ([task], [task_seq])
            else:
                group[0].append(task)
                group[1].append(task_seq)
        for key, (members, member_seqs) in groups.items():
            placement.queue(key).push_new(members, member_seqs)

    def _link_parents(self, task: Task, parents: tuple[str, ...]) -> None:
        """Register a new task as a child of its parents and count those still pending."""
        tid = task.id
        children = self._children
        tasks = self._tasks
        n = 0
        for p in parents:
            kids = children.get(p)
            if kids is None:
                children[p] = [tid]
            else:
                kids.append(tid)
            parent = tasks.get(p)
            # An evicted parent was terminal and had resolved its children before it went.
            if parent is None:
                continue
            pst = parent.state
            # _resolves(), short-cut for the states a parent is usually in here.
            if pst in _UNFINISHED or (pst is not SUCCEEDED and not self._resolves(pst, task)):
                n += 1
        if n:
            self._unresolved[tid] = n

    def _on_workflow_submitted(self, ev: WorkflowSubmitted) -> None:
        self._ids.observe(ev.id)
        wf = WorkflowRecord(
            id=ev.id,
            name=ev.name,
            policy=ev.policy,
            nodes=dict(ev.nodes),
            edges=list(ev.edges),
            submitted_at=ev.at,
            idempotency_key=ev.idempotency_key,
            digest=ev.digest,
        )
        self._workflows[ev.id] = wf
        self._wf_open[ev.id] = len(ev.nodes)
        if ev.idempotency_key is not None:
            self._wf_idem[ev.idempotency_key] = ev.id

    def _on_ready(self, ev: TaskReady) -> None:
        task = self._tasks[ev.id]
        task.attempt = ev.attempt
        task.not_before = None
        old = task.state
        if old is not PENDING and old is not FAILED:
            self._move(task, READY, ev.at)
            return
        # PENDING/FAILED -> READY, inlined (a released workflow task takes this path): both
        # are waiting states, so only the state counters, the timestamp and the queue change.
        at = ev.at
        by_state = self._by_state
        by_state[old] -= 1
        by_state[READY] += 1
        task.state = READY
        stamp(task, "ready", at)
        self._push_ready(task, at)

    def _on_assigned(self, ev: TaskAssigned) -> None:
        task = self._tasks[ev.id]
        if task.state is not READY:
            check_transition(task.id, task.state, ASSIGNED)
        at = ev.at
        region = ev.region
        task.region = region
        if task.worker is not None or task.progress:
            task.worker = None
            task.progress = 0.0
            task.progress_message = None
        # _leave(READY) + _enter(ASSIGNED), inlined: this runs once per leased task.
        spec = task.spec
        by_state = self._by_state
        by_state[READY] -= 1
        by_state[ASSIGNED] += 1
        self._waiting -= 1
        self._waiting_by_queue[spec.queue] -= 1
        p = task.priority
        self._waiting_by_band["normal" if p == 0 else band(p)] -= 1
        self._placement.queue_of(spec).remove(task)
        self._ready_by_name[spec.name] -= 1
        task.state = ASSIGNED
        stamp(task, "assigned", at)
        held = self._regions.get(region)
        if held is not None:
            held.held.add(task.id)
        if self._breakers:
            self._claim_probe(task)

    def _on_tasks_assigned(self, ev: TasksAssigned) -> None:
        # The per-task steps of _on_assigned, once per lease call: this is the lease hot path.
        # Everything that does not depend on the single task (queue removal, the counters, the
        # held set) is done per batch with C-level maps; a batch that is not plainly READY
        # tasks, each once, or that may claim a breaker probe, goes task by task.
        if len(ev.attempts) != len(ev.ids):
            raise InvalidRequestError(
                "tasks_assigned: ids and attempts differ in length", field="attempts"
            )
        self._assign_batch(ev, list(map(self._tasks.__getitem__, ev.ids)))

    def _assign_batch(
        self,
        ev: TasksAssigned,
        picked: list[Task],
        runs: list[tuple[ClassKey, list[Task]]] | None = None,
    ) -> None:
        """Apply ``ev`` to ``picked``, its tasks in order. A replay looks them up; a lease
        passes the records it took from the queues, grouped in ``runs`` by class, which also
        vouches that they are distinct READY tasks."""
        ids = ev.ids
        probes = bool(self._breakers) and any(
            b.state is BreakerState.HALF_OPEN and b.probe is None for b in self._breakers.values()
        )
        if probes or (
            runs is None and (set(map(_STATE, picked)) != _ONLY_READY or len(set(ids)) != len(ids))
        ):
            self._assign_each(ev, picked, probes)
            return
        specs = list(map(_SPEC, picked))
        placement = self._placement
        rn = self._ready_by_name
        # The tasks leave their queues here (counts) and in _assign_rest (each ready_key).
        if runs is not None:
            for key, members in runs:
                placement.queue(key).dropped(len(members))
                rn[key[0]] -= len(members)
            self._assign_rest(ev, picked, specs)
            return
        classes = list(map(_CLASS, specs))
        first = classes[0]
        if classes.count(first) == len(classes):
            placement.queue(first).dropped(len(ids))
            rn[first[0]] -= len(ids)
        else:
            groups: dict[ClassKey, list[Task]] = {}
            for key, task in zip(classes, picked, strict=True):
                group = groups.get(key)
                if group is None:
                    groups[key] = [task]
                else:
                    group.append(task)
            for key, members in groups.items():
                placement.queue(key).dropped(len(members))
                rn[key[0]] -= len(members)
        self._assign_rest(ev, picked, specs)

    def _assign_rest(self, ev: TasksAssigned, picked: list[Task], specs: list[TaskSpec]) -> None:
        """``_assign_batch`` once the tasks have left their queues."""
        at = ev.at
        region = ev.region
        done = len(picked)
        self._unwait_batch(specs, picked)
        # The attempt's record is made when first needed (see _attempt_record).
        for task in picked:
            task.ready_key = None
            task.region = region
            task.state = ASSIGNED
            # stamp(), inlined: a task READY since submission gets its first dict here, which
            # is cheaper than writing to one made at submit and gone cold since.
            ts = task.timestamps
            if ts:
                ts["assigned"] = at
            else:
                task.timestamps = {"ready": task.submitted_at, "assigned": at}
            if task.worker is not None or task.progress:
                task.worker = None
                task.progress = 0.0
                task.progress_message = None
        rec = self._regions.get(region)
        if rec is not None:
            rec.held.update(ev.ids)
        by_state = self._by_state
        by_state[READY] -= done
        by_state[ASSIGNED] += done
        self._waiting -= done

    def _unwait_batch(self, specs: list[TaskSpec], picked: list[Task]) -> None:
        """Take a batch of READY tasks off the per-queue and per-band waiting counters."""
        done = len(picked)
        wq = self._waiting_by_queue
        queues = list(map(_QUEUE, specs))
        if queues.count(queues[0]) == done:
            wq[queues[0]] -= done
        else:
            for q, n in Counter(queues).items():
                wq[q] -= n
        self._count_bands(picked, -1)

    def _count_bands(self, tasks: list[Task], sign: int) -> None:
        """Add ``sign`` per task to the waiting-by-band counters, by bisecting the sorted
        priorities (see states.band for the bounds) instead of one lookup per task."""
        prios = sorted(map(_PRIORITY, tasks))
        done = len(prios)
        low = bisect_left(prios, 0)
        normal = bisect_right(prios, 0, low)
        high = bisect_left(prios, 500, normal)
        wb = self._waiting_by_band
        for b, n in (
            ("low", low),
            ("normal", normal - low),
            ("high", high - normal),
            ("critical", done - high),
        ):
            if n:
                wb[b] = wb.get(b, 0) + sign * n

    def _assign_each(self, ev: TasksAssigned, picked: list[Task], probes: bool) -> None:
        """``_on_tasks_assigned`` task by task: checks each transition, claims probes."""
        at = ev.at
        region = ev.region
        rec = self._regions.get(region)
        held = rec.held if rec is not None else None
        queue_of = self._placement.queue_of
        wq = self._waiting_by_queue
        wb = self._waiting_by_band
        rn = self._ready_by_name
        done = 0
        try:
            for tid, task in zip(ev.ids, picked, strict=True):
                if task.state is not READY:
                    check_transition(tid, task.state, ASSIGNED)
                task.region = region
                if task.worker is not None or task.progress:
                    task.worker = None
                    task.progress = 0.0
                    task.progress_message = None
                spec = task.spec
                queue_of(spec).remove(task)
                wq[spec.queue] -= 1
                p = task.priority
                wb["normal" if p == 0 else band(p)] -= 1
                rn[spec.name] -= 1
                task.state = ASSIGNED
                stamp(task, "assigned", at)
                if held is not None:
                    held.add(tid)
                if probes:
                    self._claim_probe(task)
                done += 1
        finally:
            # The state counters in one step (and still right if a corrupt log raised above).
            by_state = self._by_state
            by_state[READY] -= done
            by_state[ASSIGNED] += done
            self._waiting -= done

    def _claim_probe(self, task: Task) -> None:
        """A half-open breaker with no probe out takes this assignment as its probe."""
        for key in self._breaker_keys(task):
            b = self._breakers.get(key)
            if b is not None and b.state is BreakerState.HALF_OPEN and b.probe is None:
                b.probe = task.id

    def _attempt_record(self, task: Task) -> AttemptRecord:
        """The record of a held task's current attempt, made on first need: an assignment
        only sets ``region`` and ``timestamps["assigned"]``, which saves an allocation and a
        collector-tracked list per leased task. Every assignment has its own attempt number
        (a task returns to READY only with a new one), so the number tells whether it exists."""
        history = task.history
        if history and history[-1].attempt == task.attempt:
            return history[-1]
        rec = assignment_record(task)
        if history is NO_HISTORY:
            task.history = [rec]
        else:
            history.append(rec)
        return rec

    def _on_started(self, ev: TaskStarted) -> None:
        task = self._tasks[ev.id]
        task.worker = ev.worker
        if task.state in HELD_STATES:
            rec = self._attempt_record(task)
            rec.worker = ev.worker
            rec.started_at = ev.at
        self._move(task, RUNNING, ev.at)

    def _on_progress(self, ev: TaskProgress) -> None:
        task = self._tasks[ev.id]
        task.progress = ev.fraction
        task.progress_message = ev.message

    def _end_attempt(self, task: Task, at: float, outcome: str, error: ErrorSummary | None) -> None:
        if task.state in HELD_STATES or task.history:
            rec = self._attempt_record(task) if task.state in HELD_STATES else task.history[-1]
            if rec.ended_at is None:
                rec.ended_at = at
                rec.outcome = outcome
                rec.error = error

    def _on_succeeded(self, ev: TaskSucceeded) -> None:
        task = self._tasks[ev.id]
        old = task.state
        if old is not ASSIGNED and old is not RUNNING:
            check_transition(task.id, old, SUCCEEDED)
        at = ev.at
        task.result = ev.result
        if ev.worker is not None:
            task.worker = ev.worker
        task.progress = 1.0
        rec = self._attempt_record(task)
        if rec.ended_at is None:
            rec.ended_at = at
            rec.outcome = "succeeded"
        self._record_outcome(task, False)
        self._totals.succeeded += 1
        # _leave(held) + _enter(SUCCEEDED), inlined.
        by_state = self._by_state
        by_state[old] -= 1
        by_state[SUCCEEDED] += 1
        region = self._regions.get(task.region or "")
        if region is not None:
            region.held.discard(task.id)
        task.state = SUCCEEDED
        stamp(task, "succeeded", at)
        self._entered_terminal(task, SUCCEEDED, at)

    def _on_failed(self, ev: TaskFailed) -> None:
        task = self._tasks[ev.id]
        task.error = ev.error
        if ev.worker is not None:
            task.worker = ev.worker
        self._end_attempt(task, ev.at, "lost" if ev.error.lost else "failed", ev.error)
        if ev.error.lost:
            self._release_probe(task)
        else:
            self._record_outcome(task, True)
        task.not_before = ev.retry_at
        self._move(task, FAILED, ev.at)
        if ev.retry_at is not None:
            heappush(self._timers, (ev.retry_at, ev.id))

    def _on_dead(self, ev: TaskDead) -> None:
        task = self._tasks[ev.id]
        task.reason = ev.reason
        task.not_before = None
        self._totals.dead += 1
        self._move(task, DEAD, ev.at)

    def _on_cancelled(self, ev: TaskCancelled) -> None:
        task = self._tasks[ev.id]
        task.reason = ev.reason
        task.not_before = None
        if task.state in HELD_STATES:
            self._end_attempt(task, ev.at, "cancelled", None)
            self._release_probe(task)
        self._totals.cancelled += 1
        self._move(task, CANCELLED, ev.at)

    def _on_skipped(self, ev: TaskSkipped) -> None:
        task = self._tasks[ev.id]
        task.reason = ev.reason
        task.not_before = None
        self._totals.skipped += 1
        self._move(task, SKIPPED, ev.at)

    def _on_reprioritized(self, ev: TaskReprioritized) -> None:
        task = self._tasks[ev.id]
        new = ev.new
        state = task.state
        if state in WAITING_STATES:
            wb = self._waiting_by_band
            p = task.priority
            wb["normal" if p == 0 else band(p)] -= 1
            b = "normal" if new == 0 else band(new)
            wb[b] = wb.get(b, 0) + 1
        task.priority = new
        if state is READY:
            # _rekey(), inlined: reprioritising a queued task is this event's common case.
            # The enqueue time matters only to an aging queue (and costs a cold dict read).
            self._placement.queue_of(task.spec).update(
                task, new + task.boost, ready_at(task) if self._aging else 0.0
            )

    def _on_boosted(self, ev: TaskDeadlineBoosted) -> None:
        task = self._tasks[ev.id]
        task.boost = ev.boost
        self._rekey(task)

    def _rekey(self, task: Task) -> None:
        if task.state is READY:
            self._placement.queue_of(task.spec).update(
                task, task.priority + task.boost, ready_at(task)
            )

    def _on_retried(self, ev: TaskRetried) -> None:
        task = self._tasks[ev.id]
        task.attempt = ev.attempt
        task.retry_base = ev.attempt - 1
        task.reason = None
        task.not_before = None
        task.result = None
        if ev.state is PENDING:
            n = self._count_unresolved(task)
            if n:
                self._unresolved[task.id] = n
        if task.spec.deadline is not None and task.boost == 0:
            # Its entry may have been dropped while it was terminal.
            heappush(self._deadlines, (task.spec.deadline, task.id))
        self._move(task, ev.state, ev.at)

    def _on_duplicate(self, ev: TaskDuplicateReport) -> None:
        self._totals.duplicate_reports += 1

    def _on_evicted(self, ev: TasksEvicted) -> None:
        tasks = self._tasks
        for tid in ev.ids:
            task = tasks.pop(tid, None)
            if task is None:
                continue
            self._order_holes += 1
            self._by_state[task.state] -= 1
            self._totals.evicted += 1
            key = task.spec.idempotency_key
            if key is not None and self._idem.get(key) == tid:
                del self._idem[key]
            self._children.pop(tid, None)
            self._refs.discard(tid)
        for wf_id in ev.workflows:
            wf = self._workflows.pop(wf_id, None)
            self._wf_open.pop(wf_id, None)
            self._wf_levels.pop(wf_id, None)
            key = wf.idempotency_key if wf is not None else None
            if key is not None and self._wf_idem.get(key) == wf_id:
                del self._wf_idem[key]
        if self._order_holes > 1024 and self._order_holes * 2 > len(self._order):
            self._order = [tid for tid in self._order if tid in tasks]
            self._order_holes = 0

    # ------------------------------------------------- apply: regions, others

    def _on_region_registered(self, ev: RegionRegistered) -> None:
        info = ev.info
        lease = self._settings.region_lease_seconds
        old = self._regions.get(info.name)
        rec = RegionRecord(info, ev.at, lease)
        if old is not None and old.instance == info.instance:
            rec.held = old.held
        self._regions[info.name] = rec
        self._placement.forget_region(info.name)

    def _on_region_heartbeat(self, ev: RegionHeartbeat) -> None:
        rec = self._regions.get(ev.name)
        if rec is not None and rec.instance == ev.instance:
            rec.renew(ev.at, self._settings.region_lease_seconds)

    def _on_region_expired(self, ev: RegionExpired) -> None:
        rec = self._regions.get(ev.name)
        if rec is not None and rec.instance == ev.instance:
            del self._regions[ev.name]
            self._placement.forget_region(ev.name)

    def _on_breaker_opened(self, ev: BreakerOpened) -> None:
        self._breaker((ev.scope, ev.region, ev.name)).open(ev.at)

    def _on_breaker_half_open(self, ev: BreakerHalfOpen) -> None:
        self._breaker((ev.scope, ev.region, ev.name)).half_open()

    def _on_breaker_closed(self, ev: BreakerClosed) -> None:
        self._breaker((ev.scope, ev.region, ev.name)).close()

    def _on_settings(self, ev: SettingsChanged) -> None:
        old = self._settings
        new = ev.settings
        self._settings = new
        self._rules = new.rule_boosts()
        if new.aging_rate != old.aging_rate:
            self._aging = new.aging_rate != 0.0
            self._rebuild_queue(new.aging_rate)
        if new.breaker.window != old.breaker.window:
            for b in self._breakers.values():
                b.resize(new.breaker.window)

    def _rebuild_queue(self, rate: float) -> None:
        """Every key depends on the aging rate: re-push all READY tasks (O(n log n))."""
        old = self._placement
        entries = sorted(
            ((seq, tid) for _, q in old.items() for tid, seq in q.entries()), key=_first
        )
        self._placement = PlacementIndex(rate)
        tasks = self._tasks
        for seq, tid in entries:
            task = tasks[tid]
            spec = task.spec
            key = (spec.name, spec.region, spec.labels, spec.resource)
            self._placement.queue(key).push(task, task.priority + task.boost, ready_at(task), seq)

    def _on_workflow_finished(self, ev: WorkflowFinished) -> None:
        wf = self._workflows[ev.id]
        wf.state = ev.state
        wf.finished_at = ev.at
        self._wf_done.discard(ev.id)
        heappush(self._wf_retention, (ev.at, ev.id))

    # --------------------------------------------------------------- commands

    def submit(self, specs: Sequence[TaskSpec], now: float) -> tuple[list[Event], list[str]]:
        """Accept tasks; returns the events and one id per spec, in order.

        A spec whose idempotency key is already known returns the existing id (no event) when
        it is equal to the stored one, and raises ConflictError otherwise. The batch is
        all-or-nothing: any invalid spec or an admission refusal raises before any change.
        """
        now = float(now)
        checked = check_specs(specs, "specs", self._settings)
        plain = list(map(_FIRST, checked))
        if not (
            any(map(_IDEM_KEY, plain)) or any(map(_DEPENDS, plain)) or any(map(_SECOND, checked))
        ):
            return self._submit_plain(plain, now)
        ids: list[str | None] = [None] * len(specs)
        accepted: list[tuple[int, TaskSpec, tuple[str, ...], bool]] = []
        batch_keys: dict[str, int] = {}
        for i, (spec, refs) in enumerate(checked):
            parents: tuple[str, ...] = ()
            if spec.idempotency_key is not None or spec.depends_on or refs:
                prepared = self._prepare(i, spec, refs, specs, batch_keys)
                if isinstance(prepared, str):
                    ids[i] = prepared
                    continue
                if prepared is None:
                    continue
                parents = prepared
            accepted.append((i, spec, parents, refs))
        self._admit_specs([a[1] for a in accepted])

        out: list[Event] = []
        append = out.append
        tasks = self._tasks
        tids = self._ids.next_many(now, len(accepted))
        for (i, spec, parents, refs), tid in zip(accepted, tids, strict=True):
            run_at = spec.run_at
            not_before = run_at if run_at is not None and run_at > now else None
            state = READY
            if not_before is not None:
                state = PENDING
            elif parents:
                for p in parents:
                    if tasks[p].state is not SUCCEEDED:
                        state = PENDING
                        break
            append(
                TaskSubmitted(
                    at=now,
                    id=tid,
                    spec=spec,
                    state=state,
                    parents=parents,
                    not_before=not_before,
                    uses_results=refs,
                )
            )
            ids[i] = tid
        # The tasks' parents exist before this batch, so applying after building is the same.
        self._apply_submitted(cast("list[TaskSubmitted]", out))
        if len(accepted) == len(specs):
            return out, tids
        result: list[str] = []
        for i, maybe in enumerate(ids):
            if maybe is None:  # a repeat of an idempotency key inside this batch
                key = specs[i].idempotency_key
                assert key is not None
                maybe = self._idem[key]
            result.append(maybe)
        return out, result

    def _submit_plain(self, specs: list[TaskSpec], now: float) -> tuple[list[Event], list[str]]:
        """``submit`` of checked specs without idempotency keys, dependencies or result
        references (the common batch): nothing to look up per spec, admission by C-level
        counting, and the events built in one loop."""
        queues = list(map(_QUEUE, specs))
        if specs and queues.count(queues[0]) == len(queues):
            self._admit({queues[0]: (len(specs), min(map(_PRIORITY, specs)))})
        else:
            self._admit_specs(specs)
        tids = self._ids.next_many(now, len(specs))
        out: list[Event] = [
            TaskSubmitted(
                at=now,
                id=tid,
                spec=spec,
                state=READY if (run_at := spec.run_at) is None or run_at <= now else PENDING,
                not_before=run_at if run_at is not None and run_at > now else None,
            )
            for spec, tid in zip(specs, tids, strict=True)
        ]
        self._apply_submitted(cast("list[TaskSubmitted]", out))
        return out, tids

    def _prepare(
        self,
        i: int,
        spec: TaskSpec,
        refs: bool,
        specs: Sequence[TaskSpec],
        batch_keys: dict[str, int],
    ) -> tuple[str, ...] | str | None:
        """The rest of one checked spec's validation: its parents to accept it, an existing id
        for a known idempotency key, or None for a repeat of a key earlier in the same batch."""
        field = f"specs[{i}]"
        key = spec.idempotency_key
        if key is not None:
            existing = self._idem.get(key)
            if existing is not None:
                if self._tasks[existing].spec != spec:
                    raise ConflictError(
                        f"{field}.idempotency_key {key!r} was used for task {existing} "
                        "with a different spec",
                        ids=(existing,),
                    )
                return existing
            first = batch_keys.get(key)
            if first is not None:
                if specs[first] != specs[i]:
                    raise ConflictError(
                        f"{field}.idempotency_key {key!r} appears twice in the batch "
                        "with different specs"
                    )
                return None
            batch_keys[key] = i
        parents: tuple[str, ...] = ()
        if spec.depends_on:
            parents = tuple(dict.fromkeys(spec.depends_on))
            self._check_parents(parents, f"{field}.depends_on")
        if refs:
            self._check_refs(spec, parents, {}, field)
        return parents

    def _check_parents(self, parents: Sequence[str], field: str) -> None:
        tasks = self._tasks
        missing = [p for p in parents if p not in tasks]
        if missing:
            raise UnknownTaskError(
                f"{field}: unknown task ids {', '.join(missing[:10])}",
                field=field,
                ids=tuple(missing[:100]),
            )
        # A dependency on a task that can no longer succeed would wait forever.
        gone = [p for p in parents if tasks[p].state in (DEAD, CANCELLED, SKIPPED)]
        if gone:
            raise ConflictError(
                f"{field}: tasks {', '.join(gone[:10])} are dead, cancelled or skipped; "
                "retry them first",
                ids=tuple(gone[:100]),
            )

    def _check_refs(
        self, spec: TaskSpec, parents: Sequence[str], keys: dict[str, str], field: str
    ) -> None:
        allowed = set(parents) | set(keys)
        bad = [r for r in result_refs([spec.args, spec.kwargs]) if r not in allowed]
        if bad:
            raise InvalidRequestError(
                f"{field}.args: {RESULT_REF} names {', '.join(bad[:10])}, which are not "
                "parents of this task",
                field=f"{field}.args",
                ids=tuple(bad[:100]),
            )

    def _admit_specs(self, specs: Sequence[TaskSpec]) -> None:
        """Admission for a batch: how many per queue, and the lowest priority of each."""
        counts: dict[str, int] = {}
        lows: dict[str, int] = {}
        for spec in specs:
            q = spec.queue
            p = spec.priority
            n = counts.get(q)
            if n is None:
                counts[q] = 1
                lows[q] = p
            else:
                counts[q] = n + 1
                if p < lows[q]:
                    lows[q] = p
        self._admit({q: (n, lows[q]) for q, n in counts.items()})

    def _admit(self, batch: dict[str, tuple[int, int]]) -> None:
        try:
            check_admission(self._settings.admission, self._waiting, self._waiting_by_queue, batch)
        except Exception:
            self._rejected += 1
            raise

    def submit_workflow(
        self, wf: WorkflowSpec, now: float
    ) -> tuple[list[Event], str, dict[str, str]]:
        """Accept a DAG atomically; returns the events, the workflow id and task ids by key.

        Parents come first in the events (topological order), and ids are handed out in that
        order. A node's ``depends_on`` may name other keys or existing task ids.
        """
        now = float(now)
        if not isinstance(wf, WorkflowSpec):
            raise InvalidRequestError("workflow: expected a workflow spec", field="workflow")
        check_name(wf.name, "name")
        if not isinstance(wf.on_failure, FailurePolicy):
            raise InvalidRequestError("on_failure: unknown failure policy", field="on_failure")
        digest = None
        if wf.idempotency_key is not None:
            check_text(wf.idempotency_key, "idempotency_key", 256)
            digest = _digest(wf)
            existing = self._wf_idem.get(wf.idempotency_key)
            if existing is not None:
                rec = self._workflows[existing]
                if rec.digest != digest:
                    raise ConflictError(
                        f"idempotency_key {wf.idempotency_key!r} was used for workflow "
                        f"{existing} with a different spec",
                        ids=(existing,),
                    )
                return [], existing, dict(rec.nodes)
        if not isinstance(wf.nodes, list) or not isinstance(wf.edges, list):
            raise InvalidRequestError("nodes/edges must be lists", field="nodes")
        settings = self._settings
        plan = plan_workflow(
            wf, settings.max_workflow_nodes, settings.max_workflow_edges, self._tasks.__contains__
        )
        specs, uses = self._check_nodes(wf, plan)

        nodes = wf.nodes
        wf_id = self._ids.next(now, WORKFLOW_PREFIX)
        node_ids: list[str] = [""] * len(nodes)
        for i, tid in zip(plan.order, self._ids.next_many(now, len(plan.order)), strict=True):
            node_ids[i] = tid
        by_key = {nodes[i].key: node_ids[i] for i in plan.order}
        out: list[Event] = []
        self._emit(
            WorkflowSubmitted(
                at=now,
                id=wf_id,
                name=wf.name,
                policy=wf.on_failure,
                nodes=by_key,
                # Straight from the parent lists: plan.edges would build the int pairs first.
                edges=[
                    (node_ids[p], cid)
                    for cid, ps in zip(node_ids, plan.parents, strict=True)
                    for p in ps
                ],
                idempotency_key=wf.idempotency_key,
                digest=digest,
            ),
            out,
        )
        tasks = self._tasks
        local_parents = plan.parents
        external = plan.external
        apply = self._on_submitted
        append = out.append
        for i in plan.order:
            spec = specs[i]
            local = local_parents[i]
            ext = external[i]
            parents: tuple[str, ...] = tuple([node_ids[p] for p in local]) if local else ()
            if ext:
                parents += ext
            run_at = spec.run_at
            not_before = run_at if run_at is not None and run_at > now else None
            waiting = not_before is not None or bool(local)
            if not waiting and ext:
                waiting = any(tasks[p].state is not SUCCEEDED for p in ext)
            ev = TaskSubmitted(
                at=now,
                id=node_ids[i],
                spec=spec,
                state=PENDING if waiting else READY,
                workflow_id=wf_id,
                parents=parents,
                not_before=not_before,
                uses_results=uses[i],
            )
            apply(ev)
            append(ev)
        return out, wf_id, by_key

    def _check_nodes(
        self, wf: WorkflowSpec, plan: WorkflowPlan
    ) -> tuple[list[TaskSpec], list[bool]]:
        """Validate every node's spec and admission; return the normalised specs."""
        nodes = wf.nodes
        checked = check_specs([node.spec for node in nodes], "nodes", self._settings, ".spec")
        specs: list[TaskSpec] = []
        uses: list[bool] = []
        external = plan.external
        for i, (spec, refs) in enumerate(checked):
            if spec.idempotency_key is not None or external[i] or refs:
                field = f"nodes[{i}].spec"
                if spec.idempotency_key is not None:
                    raise InvalidRequestError(
                        f"{field}.idempotency_key: give the workflow an idempotency_key instead",
                        field=f"{field}.idempotency_key",
                    )
                if external[i]:
                    self._check_parents(external[i], f"{field}.depends_on")
                if refs:
                    local = {nodes[p].key: nodes[p].key for p in plan.parents[i]}
                    self._check_refs(spec, external[i], local, field)
            specs.append(spec)
            uses.append(refs)
        self._admit_specs(specs)
        return specs, uses

    # ---------------------------------------------------------------- regions

    def register_region(self, info: RegionInfo, now: float) -> list[Event]:
        """Register (or re-register) a region. A new instance of a known name re-queues, as
        lost attempts, everything the old instance held."""
        now = float(now)
        if not isinstance(info, RegionInfo):
            raise InvalidRequestError("info: expected region info", field="info")
        check_token(info.name, "name", region=True)
        check_text(info.instance, "instance", 128)
        labels = check_labels(info.labels, "labels")
        if not isinstance(info.task_types, tuple | list) or len(info.task_types) > 10_000:
            raise InvalidRequestError("task_types: at most 10000 task names", field="task_types")
        for i, name in enumerate(info.task_types):
            check_name(name, f"task_types[{i}]")
        types = tuple(info.task_types)
        if labels is not info.labels or types is not info.task_types:
            info = msgspec.structs.replace(info, labels=labels, task_types=types)
        out: list[Event] = []
        old = self._regions.get(info.name)
        if old is not None and old.instance != info.instance:
            self._lose_held(
                old, f"region {info.name} restarted (instance {old.instance} replaced)", now, out
            )
        self._emit(RegionRegistered(at=now, info=info), out)
        self._finish_workflows(now, out)
        return out

    def region_heartbeat(self, name: str, instance: str, now: float) -> list[Event]:
        """Renew a region's lease; logged only once half the lease has gone (see leases.py)."""
        now = float(now)
        rec = self._region(name, instance)
        out: list[Event] = []
        if rec.needs_renewal(now, self._settings.region_lease_seconds):
            self._emit(RegionHeartbeat(at=now, name=name, instance=instance), out)
        return out

    def _region(self, name: str, instance: str) -> RegionRecord:
        rec = self._regions.get(name)
        if rec is None:
            raise NotFoundError(f"region {name!r} is not registered", ids=(name,))
        if rec.instance != instance:
            raise ConflictError(
                f"region {name!r} is registered with instance {rec.instance!r}, not "
                f"{instance!r}; register again",
                ids=(name,),
            )
        return rec

    def _lose_held(self, rec: RegionRecord, why: str, now: float, out: list[Event]) -> None:
        tasks = self._tasks
        for tid in sorted(rec.held):
            task = tasks[tid]
            if task.state not in HELD_STATES:  # cancelled by an earlier one's failure policy
                continue
            error = ErrorSummary(type="Lost", message=why, lost=True)
            self._fail(task, error, None, now, out)

    def lease(
        self, region: str, instance: str, slots: int, now: float, types: _Types = None
    ) -> tuple[list[Event], list[LeasedTask]]:
        """Hand up to ``slots`` READY tasks that ``region`` can run, best first; renews its lease.

        With ``types``, only tasks of those names. Classes whose task breaker (for this
        region) or resource breaker is open are skipped: their tasks wait. A half-open breaker
        lets one probe through.
        """
        now = float(now)
        rec = self._region(region, instance)
        if type(slots) is not int or slots < 0:
            raise InvalidRequestError(f"slots must be a count >= 0, got {slots!r}", field="slots")
        slots = min(slots, self._settings.max_lease_batch)
        out: list[Event] = []
        if rec.needs_renewal(now, self._settings.region_lease_seconds):
            self._emit(RegionHeartbeat(at=now, name=region, instance=instance), out)
        leased: list[LeasedTask] = []
        if slots == 0:
            return out, leased
        heads, probing = self._lease_heads(rec, types)
        if not heads:
            return out, leased
        placement = self._placement
        chosen: list[Task] = []
        runs: list[tuple[ClassKey, list[Task]]] = []
        while heads and len(chosen) < slots:
            _, i, key, offset = heappop(heads)
            queue = placement.get(key)
            assert queue is not None
            # Take a run from this class while its head still beats the best other head: with
            # one eligible class (the common case) the merge heap is never touched again.
            # ``take`` only pops the heap; the tasks leave the queue when the event is applied.
            probe = i in probing
            got = queue.take(
                1 if probe else slots - len(chosen),
                heads[0][0] + offset if heads else None,
            )
            if got:
                chosen += got
                runs.append((key, got))
            # A class behind a half-open breaker gives one probe, then drops out.
            if len(chosen) < slots and not (probe and got):
                head = queue.head_key()
                if head is not None:
                    heappush(heads, (head - offset, i, key, offset))
        if not chosen:
            return out, leased
        picked = chosen
        ev = TasksAssigned(
            at=now, region=region, ids=list(map(_ID, picked)), attempts=list(map(_ATTEMPT, picked))
        )
        self._assign_batch(ev, picked, runs)
        out.append(ev)
        # _leased(), inlined for tasks without parents (nothing to look up or substitute).
        make = self._leased
        leased = [
            make(task)
            if task.parents
            else LeasedTask(
                id=task.id,
                attempt=task.attempt,
                name=(spec := task.spec).name,
                args=spec.args,
                kwargs=spec.kwargs,
                priority=task.priority,
                timeout=spec.timeout,
                deadline=spec.deadline,
                labels=spec.labels,
                resource=spec.resource,
                queue=spec.queue,
                workflow_id=task.workflow_id,
                submitted_at=task.submitted_at,
            )
            for task in picked
        ]
        return out, leased

    def _lease_heads(
        self, rec: RegionRecord, types: _Types = None
    ) -> tuple[list[tuple[int, int, ClassKey, int]], set[int]]:
        """The merge heap of the classes ``rec`` may take from now, and which of them are
        behind a half-open breaker (they give one probe, then stop)."""
        placement = self._placement
        check_breakers = bool(self._breakers)
        region = rec.name
        # (key - rule offset, class index, class, offset); keys are unique across classes
        # (the sequence number is global), so ties never reach the class tuple.
        heads: list[tuple[int, int, ClassKey, int]] = []
        probing: set[int] = set()
        for i, key in enumerate(placement.eligible(rec.info)):
            queue = placement.get(key)
            if not queue or (types is not None and key[0] not in types):
                continue
            if check_breakers:
                gate = self._gate(region, key)
                if gate == _BLOCKED:
                    continue
                if gate == _PROBE:
                    probing.add(i)
            head = queue.head_key()
            assert head is not None
            offset = self._rule_offset(key[0])
            heads.append((head - offset, i, key, offset))
        heapify(heads)
        return heads, probing

    def _gate(self, region: str, key: ClassKey) -> int:
        """What the class's breakers let through now: nothing, one probe, or everything."""
        gate = _FLOW
        for b in (
            self._breakers.get(("task", region, key[0])),
            self._breakers.get(("resource", None, key[3])) if key[3] is not None else None,
        ):
            if b is None or b.state is BreakerState.CLOSED:
                continue
            if not b.allows():
                return _BLOCKED
            gate = _PROBE
        return gate

    def _rule_offset(self, name: str) -> int:
        """Priority points rules add to every READY task of ``name`` now, in key units."""
        rules = self._rules.get(name)
        if not rules:
            return 0
        depth = self._ready_by_name.get(name, 0)
        return sum(r.boost for r in rules if depth > r.min_queue_depth) * SCALE * SPAN

    def _parent_value(self, parent_id: str) -> object:
        parent = self._tasks.get(parent_id)
        if parent is None:
            return None
        if parent.state is SUCCEEDED:
            return parent.result
        err = parent.error
        return {
            "$error": {
                "state": parent.state.value,
                "type": err.type if err is not None else None,
                "message": err.message if err is not None else parent.reason,
            }
        }

    def _leased(self, task: Task) -> LeasedTask:
        spec = task.spec
        args: list[object] = spec.args
        kwargs: dict[str, object] = spec.kwargs
        results: dict[str, object] = {}
        tasks = self._tasks
        for p in task.parents:
            parent = tasks.get(p)
            if parent is not None and parent.state is SUCCEEDED:
                results[p] = parent.result
            else:
                results[p] = self._parent_value(p)
        if task.id in self._refs:
            nodes: dict[str, str] = {}
            if task.workflow_id is not None:
                wf = self._workflows.get(task.workflow_id)
                if wf is not None:
                    nodes = wf.nodes

            def value(ref: str) -> object:
                return results.get(nodes.get(ref, ref))

            args = cast("list[object]", _substitute(args, value))
            kwargs = cast("dict[str, object]", _substitute(kwargs, value))
        return LeasedTask(
            id=task.id,
            attempt=task.attempt,
            name=spec.name,
            args=args,
            kwargs=kwargs,
            priority=task.priority,
            timeout=spec.timeout,
            deadline=spec.deadline,
            labels=spec.labels,
            resource=spec.resource,
            queue=spec.queue,
            workflow_id=task.workflow_id,
            parent_results=results,
            submitted_at=task.submitted_at,
        )

    # ---------------------------------------------------------------- reports

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
        _check_started(started)
        _check_outcomes(outcomes)
        _check_late(late)

    def report_started(self, items: Sequence[Started], now: float) -> list[Event]:
        """ASSIGNED -> RUNNING. A start for another attempt is counted as a duplicate."""
        now = float(now)
        _check_started(items)
        out: list[Event] = []
        tasks = self._tasks
        for item in items:
            task = tasks.get(item.task_id)
            if task is None or task.attempt != item.attempt or task.state is not ASSIGNED:
                self._emit(
                    TaskDuplicateReport(
                        at=now, id=item.task_id, attempt=item.attempt, what="started"
                    ),
                    out,
                )
                continue
            self._emit(
                TaskStarted(at=now, id=task.id, attempt=item.attempt, worker=item.worker), out
            )
        return out

    def report_late(self, items: Sequence[tuple[str, int, str]], now: float) -> list[Event]:
        """Reports a region received for attempts it does not hold: each is a duplicate
        (counted, not applied)."""
        now = float(now)
        _check_late(items)
        out: list[Event] = []
        for task_id, attempt, what in items:
            self._emit(TaskDuplicateReport(at=now, id=task_id, attempt=attempt, what=what), out)
        return out

    def report_progress(self, items: Sequence[Progress], now: float) -> list[Event]:
        """Progress of running attempts; reports for other attempts are ignored silently."""
        now = float(now)
        out: list[Event] = []
        tasks = self._tasks
        for item in items:
            if not isinstance(item, Progress):
                continue
            task = tasks.get(item.task_id)
            if task is None or task.attempt != item.attempt or task.state not in HELD_STATES:
                continue
            frac = item.fraction
            if isinstance(frac, bool) or not isinstance(frac, int | float) or frac != frac:
                continue
            frac = min(max(float(frac), 0.0), 1.0)
            message = item.message
            if message is not None:
                message = str(message)[:_MAX_MESSAGE]
            self._emit(
                TaskProgress(
                    at=now, id=task.id, attempt=item.attempt, fraction=frac, message=message
                ),
                out,
            )
        return out

    def report(self, outcomes: Sequence[Outcome], now: float) -> list[Event]:
        """Outcomes of attempts. Only the current attempt of a held task counts; anything else
        is a duplicate (counted, not applied, no error)."""
        now = float(now)
        _check_outcomes(outcomes)
        out: list[Event] = []
        tasks = self._tasks
        settings = self._settings
        for o in outcomes:
            task = tasks.get(o.task_id)
            if task is None or task.attempt != o.attempt or task.state not in HELD_STATES:
                self._emit(
                    TaskDuplicateReport(at=now, id=o.task_id, attempt=o.attempt, what=o.kind.value),
                    out,
                )
                continue
            if o.kind is OutcomeKind.SUCCEEDED:
                bad = None
                result = o.result
                if (
                    result is not None
                    and type(result) not in _PLAIN_RESULTS
                    and not (type(result) is int and _INT64_MIN <= result <= _INT64_MAX)
                ):
                    try:
                        check_json(
                            result, "result", settings.max_json_depth, settings.max_payload_bytes
                        )
                    except InvalidRequestError as exc:
                        bad = exc.message
                if bad is None:
                    ev = TaskSucceeded(
                        at=now, id=task.id, attempt=o.attempt, result=result, worker=o.worker
                    )
                    self._on_succeeded(ev)
                    out.append(ev)
                    self._check_breakers(task, False, now, out)
                    self._after_terminal(task, now, out)
                    continue
                error = ErrorSummary(type="InvalidResult", message=bad)
            else:
                error = _clean_error(o.error, o.kind is OutcomeKind.LOST)
            self._fail(task, error, o.worker, now, out)
        self._finish_workflows(now, out)
        return out

    def _fail(
        self, task: Task, error: ErrorSummary, worker: str | None, now: float, out: list[Event]
    ) -> None:
        """End the current attempt as failed (or lost): retry, or dead-letter and cascade."""
        policy = task.spec.retry
        used = task.attempt - task.retry_base
        reason = retry_decision(policy, used, error)
        attempt = task.attempt
        if reason is None:
            retry_at = now if error.lost else now + backoff_delay(policy, used, self._rng)
            self._emit(
                TaskFailed(
                    at=now,
                    id=task.id,
                    attempt=attempt,
                    error=error,
                    retry_at=retry_at,
                    worker=worker,
                ),
                out,
            )
            if not error.lost:
                self._check_breakers(task, True, now, out)
            if retry_at <= now:
                self._emit(TaskReady(at=now, id=task.id, attempt=attempt + 1), out)
            return
        self._emit(TaskFailed(at=now, id=task.id, attempt=attempt, error=error, worker=worker), out)
        if not error.lost:
            self._check_breakers(task, True, now, out)
        self._emit(TaskDead(at=now, id=task.id, attempt=attempt, reason=reason), out)
        wf_id = task.workflow_id
        if wf_id is not None and self._policy(task) is FailurePolicy.FAIL_WORKFLOW:
            wf = self._workflows[wf_id]
            why = f"workflow {wf_id} failed: task {task.id} is dead"
            for tid in wf.nodes.values():
                other = self._tasks.get(tid)
                if other is not None and other.state not in TERMINAL_STATES:
                    self._cancel_one(other, why, now, out)
                    self._after_terminal(other, now, out)
        self._after_terminal(task, now, out)

    def _check_breakers(self, task: Task, failed: bool, now: float, out: list[Event]) -> None:
        settings = self._settings.breaker
        breakers = self._breakers
        if task.spec.resource is None:
            # The common case, without building the key list: one task breaker, closed and
            # without failures (it cannot open on this outcome).
            b = breakers.get(("task", task.region, task.spec.name))
            if b is None or (b.state is BreakerState.CLOSED and b.failures == 0):
                return
        for key in self._breaker_keys(task):
            b = breakers.get(key)
            if b is None or (
                b.state is BreakerState.CLOSED
                and (b.failures == 0 or len(b.window) < settings.min_samples)
            ):
                continue
            scope = cast("BreakerScope", key[0])
            if b.state is BreakerState.HALF_OPEN and b.probe == task.id:
                if failed:
                    ev: Event = BreakerOpened(
                        at=now,
                        scope=scope,
                        region=key[1],
                        name=key[2],
                        failures=b.failures,
                        samples=len(b.window),
                    )
                else:
                    ev = BreakerClosed(at=now, scope=scope, region=key[1], name=key[2])
                self._emit(ev, out)
            elif b.should_open(settings):
                self._emit(
                    BreakerOpened(
                        at=now,
                        scope=scope,
                        region=key[1],
                        name=key[2],
                        failures=b.failures,
                        samples=len(b.window),
                    ),
                    out,
                )

    def _cancel_one(self, task: Task, reason: str, now: float, out: list[Event]) -> None:
        held = task.region if task.state in HELD_STATES else None
        self._emit(
            TaskCancelled(at=now, id=task.id, reason=reason, attempt=task.attempt, region=held),
            out,
        )

    def _after_terminal(self, root: Task, now: float, out: list[Event]) -> None:
        """Release, skip or cancel the PENDING dependents of a task that just became terminal,
        transitively, without recursion."""
        stack = [root]
        tasks = self._tasks
        unresolved = self._unresolved
        while stack:
            parent = stack.pop()
            kids = self._children.get(parent.id)
            if not kids:
                continue
            pst = parent.state
            for c in kids:
                child = tasks.get(c)
                if child is None or child.state is not PENDING:
                    continue
                if pst is SUCCEEDED or self._resolves(pst, child):
                    nb = child.not_before
                    if c not in unresolved and (nb is None or nb <= now):
                        ev = TaskReady(at=now, id=c, attempt=child.attempt)
                        self._on_ready(ev)
                        out.append(ev)
                elif pst is CANCELLED:
                    self._cancel_one(child, f"parent {parent.id} was cancelled", now, out)
                    stack.append(child)
                else:
                    self._emit(
                        TaskSkipped(
                            at=now,
                            id=c,
                            reason=f"parent {parent.id} is {pst.value}",
                            parent=parent.id,
                        ),
                        out,
                    )
                    stack.append(child)

    def _finish_workflows(self, now: float, out: list[Event], cancelled: str | None = None) -> None:
        if not self._wf_done:
            return
        tasks = self._tasks
        for wf_id in sorted(self._wf_done):
            wf = self._workflows[wf_id]
            states = {tasks[t].state for t in wf.nodes.values() if t in tasks}
            if states <= {SUCCEEDED}:
                state = "succeeded"
            elif wf_id == cancelled:
                state = "cancelled"
            elif DEAD in states or SKIPPED in states:
                state = "failed"
            else:
                state = "cancelled"
            self._emit(WorkflowFinished(at=now, id=wf_id, state=state), out)

    # ------------------------------------------------------ user interventions

    def cancel(self, task_id: str, now: float) -> list[Event]:
        """Cancel a task and, transitively, its dependents (they become CANCELLED too)."""
        now = float(now)
        task = self._task(task_id)
        if task.state in TERMINAL_STATES:
            raise ConflictError(f"task {task_id} is already {task.state.value}", ids=(task_id,))
        out: list[Event] = []
        self._cancel_one(task, "cancelled by request", now, out)
        self._after_terminal(task, now, out)
        self._finish_workflows(now, out)
        return out

    def cancel_workflow(self, workflow_id: str, now: float) -> list[Event]:
        now = float(now)
        wf = self._workflows.get(workflow_id)
        if wf is None:
            raise NotFoundError(f"no workflow {workflow_id!r}", ids=(workflow_id,))
        if wf.state is not None:
            raise ConflictError(
                f"workflow {workflow_id} already finished ({wf.state})", ids=(workflow_id,)
            )
        out: list[Event] = []
        why = f"workflow {workflow_id} cancelled by request"
        for tid in wf.nodes.values():
            task = self._tasks.get(tid)
            if task is not None and task.state not in TERMINAL_STATES:
                self._cancel_one(task, why, now, out)
                self._after_terminal(task, now, out)
        self._finish_workflows(now, out, cancelled=workflow_id)
        return out

    def reprioritize(self, task_id: str, priority: int, now: float) -> list[Event]:
        """Change a task's base priority; O(log n) when it is queued."""
        if type(priority) is not int or not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            check_priority(priority, "priority")
        task = self._tasks.get(task_id)
        if task is None:
            task = self._task(task_id)
        if task.state in TERMINAL_STATES:
            raise ConflictError(f"task {task_id} is already {task.state.value}", ids=(task_id,))
        old = task.priority
        if old == priority:
            return []
        ev = TaskReprioritized(at=float(now), id=task_id, old=old, new=priority)
        self._on_reprioritized(ev)
        return [ev]

    def retry(self, task_id: str, now: float) -> list[Event]:
        """Run a DEAD, CANCELLED or SKIPPED task again with a fresh attempt budget.

        Dependents that were skipped because of it come back as PENDING. Refused when a
        dependent already ran, or while a parent is itself dead, cancelled or skipped.
        """
        now = float(now)
        task = self._task(task_id)
        if task.state not in (DEAD, CANCELLED, SKIPPED):
            raise ConflictError(
                f"task {task_id} is {task.state.value}; only dead, cancelled or skipped tasks "
                "can be retried",
                ids=(task_id,),
            )
        tasks = self._tasks
        blocked = [
            p
            for p in task.parents
            if p in tasks
            and tasks[p].state in (DEAD, CANCELLED, SKIPPED)
            and not self._resolves(tasks[p].state, task)
        ]
        if blocked:
            raise ConflictError(
                f"task {task_id}: parents {', '.join(blocked[:10])} must be retried first",
                ids=tuple(blocked[:100]),
            )
        ran = [
            c
            for c in self._children.get(task_id, ())
            if c in tasks and tasks[c].state not in (PENDING, SKIPPED, CANCELLED)
        ]
        if ran:
            raise ConflictError(
                f"task {task_id}: dependents {', '.join(ran[:10])} already ran",
                ids=tuple(ran[:100]),
            )
        out: list[Event] = []
        state = PENDING if self._count_unresolved(task) else READY
        self._emit(TaskRetried(at=now, id=task_id, attempt=task.attempt + 1, state=state), out)
        # Bring back the dependents this task's failure skipped.
        stack = [task_id]
        while stack:
            for c in self._children.get(stack.pop(), ()):
                child = tasks.get(c)
                if child is not None and child.state is SKIPPED:
                    self._emit(TaskRetried(at=now, id=c, attempt=child.attempt, state=PENDING), out)
                    stack.append(c)
        return out

    def configure(self, settings: Settings, now: float) -> list[Event]:
        """Change settings live."""
        now = float(now)
        if not isinstance(settings, Settings):
            raise InvalidRequestError("settings: expected Settings", field="settings")
        settings.validate()
        out: list[Event] = []
        self._emit(SettingsChanged(at=now, settings=settings), out)
        return out

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Event]:
        """Do what time makes due: delayed and backed-off tasks become READY, region leases
        expire, open breakers cool to half-open, deadline boosts, retention eviction."""
        now = float(now)
        out: list[Event] = []
        tasks = self._tasks
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, tid = heappop(timers)
            task = tasks.get(tid)
            if task is None or task.not_before != at:
                continue
            if task.state is PENDING and tid not in self._unresolved:
                self._emit(TaskReady(at=now, id=tid, attempt=task.attempt), out)
            elif task.state is FAILED:
                self._emit(TaskReady(at=now, id=tid, attempt=task.attempt + 1), out)
        for name in sorted(self._regions):
            rec = self._regions[name]
            if rec.expires_at <= now:
                self._lose_held(rec, f"region {name} lease expired", now, out)
                self._emit(RegionExpired(at=now, name=name, instance=rec.instance), out)
        settings = self._settings
        for key in sorted(self._breakers, key=_breaker_sort):
            b = self._breakers[key]
            if b.cooled(now, settings.breaker):
                scope = cast("BreakerScope", key[0])
                self._emit(BreakerHalfOpen(at=now, scope=scope, region=key[1], name=key[2]), out)
        if settings.deadline_boost:
            deadlines = self._deadlines
            horizon = now + settings.deadline_window
            while deadlines and deadlines[0][0] <= horizon:
                _, tid = heappop(deadlines)
                task = tasks.get(tid)
                if task is not None and task.boost == 0 and task.state not in TERMINAL_STATES:
                    self._emit(
                        TaskDeadlineBoosted(at=now, id=tid, boost=settings.deadline_boost), out
                    )
        self._evict(now, out)
        self._finish_workflows(now, out)
        return out

    def _evictable(self, task: Task, now: float, gone: set[str]) -> bool:
        """Terminal for ``retention_seconds``, its workflow (if any) finished as long ago, and
        every dependent already evicted (a dependent may still need its result)."""
        if task.state not in TERMINAL_STATES:
            return False
        tasks = self._tasks
        for c in self._children.get(task.id, ()):
            if c in tasks and c not in gone:
                return False
        t = task.timestamps[SV[task.state]]
        if task.workflow_id is not None:
            wf = self._workflows.get(task.workflow_id)
            if wf is not None:
                if wf.finished_at is None:
                    return False
                t = max(t, wf.finished_at)
        return t + self._settings.retention_seconds <= now

    def _evict(self, now: float, out: list[Event]) -> None:
        """Drop what retention allows. Leaves go first and each eviction re-checks the parents
        in the same pass, so a finished chain goes in one tick. Every decision reads only the
        logical state, so a restored state (whose heaps hold more stale entries) decides alike."""
        limit = now - self._settings.retention_seconds
        tasks = self._tasks
        todo: list[str] = []
        retention = self._retention
        while retention and retention[0][0] <= limit:
            todo.append(heappop(retention)[1])
        wf_due: list[str] = []
        wf_ret = self._wf_retention
        while wf_ret and wf_ret[0][0] <= limit:
            wf_id = heappop(wf_ret)[1]
            wf = self._workflows.get(wf_id)
            if wf is not None and wf.finished_at is not None:
                wf_due.append(wf_id)
                todo.extend(wf.nodes.values())
        if not todo and not wf_due:
            return
        gone: set[str] = set()
        while todo:
            tid = todo.pop()
            task = tasks.get(tid)
            if task is None or tid in gone or not self._evictable(task, now, gone):
                continue
            gone.add(tid)
            todo.extend(task.parents)
            if task.workflow_id is not None:
                wf_due.append(task.workflow_id)
        wfs = sorted(
            {
                wf_id
                for wf_id in wf_due
                if (wf := self._workflows.get(wf_id)) is not None
                and wf.finished_at is not None
                and wf.finished_at <= limit
                and all(t not in tasks or t in gone for t in wf.nodes.values())
            }
        )
        # Sorted, so the event does not depend on the heaps' history.
        ids = sorted(gone)
        for start in range(0, max(len(ids), 1 if wfs else 0), _EVICT_BATCH):
            chunk = ids[start : start + _EVICT_BATCH]
            self._emit(TasksEvicted(at=now, ids=chunk, workflows=wfs if start == 0 else []), out)

    def next_wakeup(self) -> float | None:
        """Earliest time ``tick`` may have work (possibly early, never late), or None."""
        times: list[float] = []
        if self._timers:
            times.append(self._timers[0][0])
        times.extend(rec.expires_at for rec in self._regions.values())
        s = self._settings
        for b in self._breakers.values():
            if b.state is BreakerState.OPEN and b.opened_at is not None:
                times.append(b.opened_at + s.breaker.cooldown)
        if self._deadlines and s.deadline_boost:
            times.append(self._deadlines[0][0] - s.deadline_window)
        if self._retention:
            times.append(self._retention[0][0] + s.retention_seconds)
        if self._wf_retention:
            times.append(self._wf_retention[0][0] + s.retention_seconds)
        return min(times) if times else None

    # ---------------------------------------------------------------- queries

    def get(self, task_id: str) -> Task:
        """A copy of the task's record (NotFoundError if unknown or evicted)."""
        return _q.copy_task(self._task(task_id))

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
    ) -> tuple[list[Task], str | None]:
        """Tasks in id (= creation) order after ``cursor``; returns the page and the next
        cursor (None at the end). Stable while tasks are added: new ids sort last. One call
        examines at most 100,000 tasks, so with a selective filter a page can be short, even
        empty, and still have a next cursor."""
        return _q.list_tasks(self, state, name, queue, region, workflow_id, limit, cursor)

    def list_workflows(
        self, *, state: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[WorkflowSummary], str | None]:
        """Workflows newest first (``state``: running, succeeded, failed or cancelled); returns
        the page and the next cursor (None at the end)."""
        return _q.list_workflows(self, state, limit, cursor)

    def workflow(
        self, workflow_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> WorkflowView:
        """The workflow and its nodes: all of them, or a page (``limit``) from ``cursor``."""
        return _q.workflow_view(self, workflow_id, cursor, limit)

    def regions(self) -> list[RegionView]:
        return _q.region_views(self)

    def statistics(self, now: float) -> SchedulerStatistics:
        return _q.statistics(self, now)

    def admission_statistics(self) -> AdmissionStatistics:
        return _q.admission_statistics(self)

    def snapshot(self) -> bytes:
        """The logical state as MessagePack (SCHEMA_VERSION inside); see ``restore``."""
        return _q.encode_snapshot(self)

    @classmethod
    def restore(cls, data: bytes, rng: RandomSource) -> SchedulerState:
        """Rebuild a state from ``snapshot()`` bytes; the queue pops in exactly the same order."""
        return _q.decode_snapshot(cls, data, rng)

    def fingerprint(self) -> str:
        """Digest of the logical state: equal for a live state and its replay."""
        return hashlib.sha256(self.snapshot()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SchedulerState):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks


#: Event type -> the SchedulerState method that applies it.
_Handler = Callable[[SchedulerState, Event], None]
_HANDLERS: dict[type, _Handler] = {
    TaskSubmitted: cast("_Handler", SchedulerState._on_submitted),
    WorkflowSubmitted: cast("_Handler", SchedulerState._on_workflow_submitted),
    TaskReady: cast("_Handler", SchedulerState._on_ready),
    TaskAssigned: cast("_Handler", SchedulerState._on_assigned),
    TasksAssigned: cast("_Handler", SchedulerState._on_tasks_assigned),
    TaskStarted: cast("_Handler", SchedulerState._on_started),
    TaskProgress: cast("_Handler", SchedulerState._on_progress),
    TaskSucceeded: cast("_Handler", SchedulerState._on_succeeded),
    TaskFailed: cast("_Handler", SchedulerState._on_failed),
    TaskDead: cast("_Handler", SchedulerState._on_dead),
    TaskCancelled: cast("_Handler", SchedulerState._on_cancelled),
    TaskSkipped: cast("_Handler", SchedulerState._on_skipped),
    TaskReprioritized: cast("_Handler", SchedulerState._on_reprioritized),
    TaskDeadlineBoosted: cast("_Handler", SchedulerState._on_boosted),
    TaskRetried: cast("_Handler", SchedulerState._on_retried),
    TaskDuplicateReport: cast("_Handler", SchedulerState._on_duplicate),
    TasksEvicted: cast("_Handler", SchedulerState._on_evicted),
    RegionRegistered: cast("_Handler", SchedulerState._on_region_registered),
    RegionHeartbeat: cast("_Handler", SchedulerState._on_region_heartbeat),
    RegionExpired: cast("_Handler", SchedulerState._on_region_expired),
    BreakerOpened: cast("_Handler", SchedulerState._on_breaker_opened),
    BreakerHalfOpen: cast("_Handler", SchedulerState._on_breaker_half_open),
    BreakerClosed: cast("_Handler", SchedulerState._on_breaker_closed),
    SettingsChanged: cast("_Handler", SchedulerState._on_settings),
    WorkflowFinished: cast("_Handler", SchedulerState._on_workflow_finished),
}


def _first(item: tuple[int, str]) -> int:
    return item[0]


def _breaker_sort(key: BreakerKey) -> tuple[str, str, str]:
    return (key[0], key[1] or "", key[2])


def _clean_error(error: ErrorSummary | None, lost: bool) -> ErrorSummary:
    if error is None:
        return ErrorSummary(
            type="Lost" if lost else "Error",
            message="attempt lost" if lost else "no error details",
            lost=lost,
        )
    etype = str(error.type)[:200] or "Error"
    message = str(error.message)[:_MAX_MESSAGE]
    tb = error.traceback
    if tb is not None:
        tb = str(tb)[:_MAX_TRACEBACK]
    if (
        etype == error.type
        and message == error.message
        and tb == error.traceback
        and error.lost == lost
    ):
        return error
    return ErrorSummary(
        type=etype, message=message, traceback=tb, lost=lost or error.lost, timeout=error.timeout
    )


def _substitute(value: object, lookup: Callable[[str], object]) -> object:
    """A copy of ``value`` with every {"$result": ref} replaced by ``lookup(ref)``."""
    if type(value) is dict:
        assert isinstance(value, dict)
        if len(value) == 1 and RESULT_REF in value and isinstance(value[RESULT_REF], str):
            return lookup(value[RESULT_REF])
        return {k: _substitute(v, lookup) for k, v in value.items()}
    if type(value) is list:
        assert isinstance(value, list)
        return [_substitute(v, lookup) for v in value]
    return value


def _count_into(counts: dict[str, int], values: Iterable[str]) -> None:
    """Add one to ``counts`` per value (C-level counting, then one update per distinct)."""
    for value, n in Counter(values).items():
        counts[value] = counts.get(value, 0) + n


def _check_started(items: Sequence[Started]) -> None:
    for i, item in enumerate(items):
        if not isinstance(item, Started):
            raise InvalidRequestError(f"items[{i}]: expected Started", field=f"items[{i}]")
        check_text(item.worker, f"items[{i}].worker", _MAX_WORKER)


def _check_late(items: Sequence[tuple[str, int, str]]) -> None:
    for i, item in enumerate(items):
        if (
            len(item) != 3
            or not isinstance(item[0], str)
            or type(item[1]) is not int
            or item[2] not in _OUTCOME_KINDS
        ):
            raise InvalidRequestError(
                f"late[{i}]: expected (task id, attempt, kind)", field=f"late[{i}]"
            )
        check_text(item[0], f"late[{i}].task_id", _MAX_WORKER)


def _check_outcomes(outcomes: Sequence[Outcome]) -> None:
    for i, o in enumerate(outcomes):
        if not isinstance(o, Outcome) or not isinstance(o.kind, OutcomeKind):
            raise InvalidRequestError(f"outcomes[{i}]: expected Outcome", field=f"outcomes[{i}]")
        if o.worker is not None:
            check_text(o.worker, f"outcomes[{i}].worker", _MAX_WORKER)
