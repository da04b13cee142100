"""Read-only views of a SchedulerState, its statistics, and the snapshot codec.

Kept apart from ``scheduler.py`` so that file holds only what changes state. These functions
read the state's private indexes; nothing here mutates a live state (``decode_snapshot`` builds a
new one).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from heapq import heapify
from typing import TYPE_CHECKING

import msgspec

from ..errors import InvalidRequestError, NotFoundError
from .admission import AdmissionLevel, AdmissionStatistics, admission_level
from .dag import topological_levels
from .ids import IdGenerator
from .leases import RegionRecord, RegionView
from .model import SCHEMA_VERSION, Task, TaskState
from .pqueue import QueueStatistics
from .records import (
    BreakerSnapshot,
    RegionSnapshot,
    SchedulerStatistics,
    Snapshot,
    WorkflowNodeView,
    WorkflowSummary,
    WorkflowView,
    assignment_record,
    ready_at,
    stamps,
)
from .retry import RandomSource
from .states import TERMINAL_STATES, WAITING_STATES, band
from .validate import result_refs

if TYPE_CHECKING:
    from .scheduler import SchedulerState

MAX_PAGE = 1000
#: Tasks one ``list_tasks`` call examines at most (see there).
MAX_SCAN = 100_000
_HELD = (TaskState.ASSIGNED, TaskState.RUNNING)


def copy_task(task: Task) -> Task:
    """A copy callers may keep or change without touching the scheduler's record."""
    history = [msgspec.structs.replace(h) for h in task.history]
    if task.state in _HELD and not (history and history[-1].attempt == task.attempt):
        # The scheduler makes the current attempt's record on first need; show it anyway.
        history.append(assignment_record(task))
    return msgspec.structs.replace(task, ready_key=None, timestamps=stamps(task), history=history)


def list_tasks(
    st: SchedulerState,
    state: TaskState | None,
    name: str | None,
    queue: str | None,
    region: str | None,
    workflow_id: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Task], str | None]:
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be in [1, {MAX_PAGE}], got {limit!r}", field="limit")
    if cursor is not None and (not isinstance(cursor, str) or len(cursor) > 64):
        raise InvalidRequestError("cursor: not a cursor returned by list_tasks", field="cursor")
    tasks = st._tasks
    order = st._order
    ids: list[str] | tuple[str, ...] = order
    start = 0 if cursor is None else bisect_right(order, cursor)
    if workflow_id is not None:
        wf = st._workflows.get(workflow_id)
        if wf is None:
            return [], None
        ids = sorted(wf.nodes.values())
        start = 0 if cursor is None else bisect_right(ids, cursor)
    page: list[Task] = []
    # Bounded work per call: a selective filter over millions of tasks would otherwise hold
    # the master's loop for as long as the scan takes. The page then comes back short (even
    # empty) with a cursor after the last task examined; callers follow it until None.
    stop = min(len(ids), start + MAX_SCAN)
    for i in range(start, stop):
        task = tasks.get(ids[i])
        if task is None:
            continue
        if state is not None and task.state is not state:
            continue
        spec = task.spec
        if name is not None and spec.name != name:
            continue
        if queue is not None and spec.queue != queue:
            continue
        if region is not None and task.region != region:
            continue
        page.append(copy_task(task))
        if len(page) == limit:
            more = i + 1 < len(ids)
            return page, (task.id if more else None)
    return page, (ids[stop - 1] if stop < len(ids) else None)


#: Workflow list filters: a finished state, or "running" for those still going.
WORKFLOW_STATES = ("running", "succeeded", "failed", "cancelled")


def list_workflows(
    st: SchedulerState, state: str | None, limit: int, cursor: str | None
) -> tuple[list[WorkflowSummary], str | None]:
    """Workflows newest first, after ``cursor`` (the last id of the previous page)."""
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be in [1, {MAX_PAGE}], got {limit!r}", field="limit")
    if state is not None and state not in WORKFLOW_STATES:
        raise InvalidRequestError(
            f"state must be one of {', '.join(WORKFLOW_STATES)}, got {state[:40]!r}", field="state"
        )
    workflows = st._workflows
    # Insertion order is id order (ids are time-ordered and made in order, also on replay).
    ids = list(workflows)
    end = len(ids)
    if cursor is not None:
        if not isinstance(cursor, str) or not cursor.startswith("wf_") or len(cursor) > 64:
            raise InvalidRequestError(
                "cursor: not a cursor returned by list_workflows", field="cursor"
            )
        end = bisect_left(ids, cursor)
    want = None if state == "running" else state
    page: list[WorkflowSummary] = []
    i = end - 1
    while i >= 0 and len(page) < limit:
        wf = workflows[ids[i]]
        i -= 1
        if state is not None and wf.state != want:
            continue
        total = len(wf.nodes)
        page.append(
            WorkflowSummary(
                id=wf.id,
                name=wf.name,
                policy=wf.policy,
                submitted_at=wf.submitted_at,
                total=total,
                done=total - st._wf_open.get(wf.id, 0),
                state=wf.state,
                finished_at=wf.finished_at,
            )
        )
    more = (
        len(page) == limit
        and i >= 0
        and (state is None or any(workflows[ids[j]].state == want for j in range(i, -1, -1)))
    )
    return page, (page[-1].id if more else None)


def workflow_view(
    st: SchedulerState, workflow_id: str, cursor: str | None = None, limit: int | None = None
) -> WorkflowView:
    """The workflow with the nodes from ``cursor`` (an offset in topological order, as
    ``next_cursor`` gives it) on, at most ``limit`` of them (all when None)."""
    wf = st._workflows.get(workflow_id)
    if wf is None:
        raise NotFoundError(f"no workflow {workflow_id!r}", ids=(workflow_id,))
    total = len(wf.nodes)
    start = _workflow_cursor(cursor, total)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise InvalidRequestError(f"limit must be a count >= 1, got {limit!r}", field="limit")
    end = total if limit is None else min(total, start + limit)
    ids = list(wf.nodes.values())
    levels = st._wf_levels.get(wf.id)
    if levels is None:
        # Once per workflow, not once per page: 0.6 s of the master's loop at 100,000 nodes.
        parents: dict[str, list[str]] = {}
        for p, c in wf.edges:
            parents.setdefault(c, []).append(p)
        levels = st._wf_levels[wf.id] = topological_levels(ids, lambda tid: parents.get(tid, ()))
    tasks = st._tasks
    counts: dict[str, int] = {}
    done = 0
    for tid in ids:
        task = tasks.get(tid)
        if task is not None:
            state = task.state
            counts[state.value] = counts.get(state.value, 0) + 1
            done += state in TERMINAL_STATES
    nodes: list[WorkflowNodeView] = []
    keys = list(wf.nodes)
    for i in range(start, end):
        tid = ids[i]
        task = tasks.get(tid)
        nodes.append(
            WorkflowNodeView(
                key=keys[i],
                task_id=tid,
                name=task.spec.name if task is not None else "",
                state=task.state if task is not None else None,
                level=levels[i],
            )
        )
    if start == 0 and end == total:
        edges = list(wf.edges)
    else:
        page = set(ids[start:end])
        edges = [e for e in wf.edges if e[1] in page]
    return WorkflowView(
        id=wf.id,
        name=wf.name,
        policy=wf.policy,
        submitted_at=wf.submitted_at,
        nodes=nodes,
        edges=edges,
        counts=counts,
        total=total,
        done=done,
        state=wf.state,
        finished_at=wf.finished_at,
        next_cursor=str(end) if end < total else None,
    )


def _workflow_cursor(cursor: str | None, total: int) -> int:
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > total:
        raise InvalidRequestError(
            f"cursor {cursor[:40]!r} is not a cursor of this workflow", field="cursor"
        )
    return int(cursor)


def region_views(st: SchedulerState) -> list[RegionView]:
    return [
        RegionView(
            name=rec.name,
            instance=rec.instance,
            labels=rec.info.labels,
            task_types=rec.info.task_types,
            lease_expires_at=rec.expires_at,
            held=len(rec.held),
        )
        for rec in sorted(st._regions.values(), key=lambda r: r.name)
    ]


def admission_statistics(st: SchedulerState) -> AdmissionStatistics:
    a = st._settings.admission
    queues: dict[str, AdmissionLevel] = {}
    for q, n in st._waiting_by_queue.items():
        level = admission_level(n, a.max_queued_per_queue, a)
        if level is not AdmissionLevel.OPEN:
            queues[q] = level
    return AdmissionStatistics(
        level=admission_level(st._waiting, a.max_queued, a),
        waiting=st._waiting,
        max_queued=a.max_queued,
        queues=dict(sorted(queues.items())),
        rejected=st._rejected,
    )


def _queue_statistics(st: SchedulerState) -> QueueStatistics:
    parts = [q.statistics() for _, q in st._placement.items()]
    return QueueStatistics(
        size=sum(p.size for p in parts),
        heap_entries=sum(p.heap_entries for p in parts),
        pushes=sum(p.pushes for p in parts),
        pops=sum(p.pops for p in parts),
        updates=sum(p.updates for p in parts),
        removes=sum(p.removes for p in parts),
        compactions=sum(p.compactions for p in parts),
    )


def statistics(st: SchedulerState, now: float) -> SchedulerStatistics:
    t = st._totals
    return SchedulerStatistics(
        now=now,
        tasks=len(st._tasks),
        by_state={s.value: n for s, n in st._by_state.items()},
        waiting_by_queue={q: n for q, n in sorted(st._waiting_by_queue.items()) if n},
        waiting_by_band={b: n for b, n in sorted(st._waiting_by_band.items()) if n},
        held_by_region={name: len(rec.held) for name, rec in sorted(st._regions.items())},
        queue_depth=st._by_state[TaskState.READY],
        ready_by_name={k: n for k, n in sorted(st._ready_by_name.items()) if n},
        workflows=len(st._workflows),
        regions=len(st._regions),
        admission=admission_statistics(st),
        breakers=[st._breakers[k].statistics() for k in sorted(st._breakers, key=_bkey)],
        queue=_queue_statistics(st),
        totals=msgspec.structs.replace(t),
    )


def _bkey(key: tuple[str, str | None, str]) -> tuple[str, str, str]:
    return (key[0], key[1] or "", key[2])


# ------------------------------------------------------------------ snapshots

_encoder = msgspec.msgpack.Encoder()


def encode_snapshot(st: SchedulerState) -> bytes:
    queue: list[tuple[str, int]] = []
    for _, q in st._placement.items():
        queue.extend(q.entries())
    queue.sort(key=lambda item: item[1])
    snap = Snapshot(
        schema_version=SCHEMA_VERSION,
        settings=st._settings,
        id_last_ms=st._ids.last_ms,
        id_counter=st._ids.counter,
        seq=st._seq,
        totals=st._totals,
        tasks=list(st._tasks.values()),
        queue=queue,
        workflows=list(st._workflows.values()),
        regions=[
            RegionSnapshot(info=r.info, expires_at=r.expires_at, last_renewed=r.last_renewed)
            for r in sorted(st._regions.values(), key=lambda r: r.name)
        ],
        breakers=[
            BreakerSnapshot(
                scope=k[0],
                region=k[1],
                name=k[2],
                state=st._breakers[k].state,
                window=list(st._breakers[k].window),
                opened_at=st._breakers[k].opened_at,
                probe=st._breakers[k].probe,
            )
            for k in sorted(st._breakers, key=_bkey)
        ],
    )
    return _encoder.encode(snap)


def decode_snapshot(cls: type[SchedulerState], data: bytes, rng: RandomSource) -> SchedulerState:
    try:
        snap = msgspec.msgpack.decode(data, type=Snapshot)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"snapshot: cannot decode: {exc}", field="snapshot") from exc
    if snap.schema_version != SCHEMA_VERSION:
        raise InvalidRequestError(
            f"snapshot: schema version {snap.schema_version}, this build reads {SCHEMA_VERSION}",
            field="schema_version",
        )
    st = cls(snap.settings, rng)
    st._ids = IdGenerator(last_ms=snap.id_last_ms, counter=snap.id_counter)
    st._totals = snap.totals
    for wf in snap.workflows:
        st._workflows[wf.id] = wf
        if wf.idempotency_key is not None:
            st._wf_idem[wf.idempotency_key] = wf.id
        st._wf_open[wf.id] = 0
    tasks = st._tasks
    for task in snap.tasks:
        tasks[task.id] = task
        st._order.append(task.id)
    _rebuild_indexes(st)
    for tid, seq in snap.queue:
        task = tasks[tid]
        spec = task.spec
        key = (spec.name, spec.region, spec.labels, spec.resource)
        st._placement.queue(key).push(task, task.priority + task.boost, ready_at(task), seq)
        st._ready_by_name[spec.name] = st._ready_by_name.get(spec.name, 0) + 1
    st._seq = snap.seq
    lease = snap.settings.region_lease_seconds
    for r in snap.regions:
        rec = RegionRecord(r.info, r.last_renewed, lease)
        rec.expires_at = r.expires_at
        st._regions[r.info.name] = rec
    for task in tasks.values():
        if task.state in _HELD and task.region in st._regions:
            st._regions[task.region].held.add(task.id)
    for b in snap.breakers:
        breaker = st._breaker((b.scope, b.region, b.name))
        breaker.window = deque(b.window, maxlen=snap.settings.breaker.window)
        breaker.resize(snap.settings.breaker.window)
        breaker.state = b.state
        breaker.opened_at = b.opened_at
        breaker.probe = b.probe
    return st


def _rebuild_indexes(st: SchedulerState) -> None:
    """Derive every index ``apply`` maintains from the task records."""
    tasks = st._tasks
    timers: list[tuple[float, str]] = []
    deadlines: list[tuple[float, str]] = []
    retention: list[tuple[float, str]] = []
    for task in tasks.values():
        tid = task.id
        state = task.state
        spec = task.spec
        _count(st, task)
        wf_id = task.workflow_id
        if wf_id is not None and wf_id in st._wf_open and state not in TERMINAL_STATES:
            st._wf_open[wf_id] += 1
        if spec.deadline is not None and task.boost == 0 and state not in TERMINAL_STATES:
            deadlines.append((spec.deadline, tid))
        if state is TaskState.FAILED and task.not_before is not None:
            timers.append((task.not_before, tid))
        if state in TERMINAL_STATES and task.workflow_id is None:
            retention.append((task.timestamps[state.value], tid))
    _rebuild_pending(st, timers)
    for wf_id, wf in st._workflows.items():
        if wf.state is None and st._wf_open[wf_id] == 0:
            st._wf_done.add(wf_id)
        if wf.finished_at is not None:
            st._wf_retention.append((wf.finished_at, wf_id))
    heapify(timers)
    heapify(deadlines)
    heapify(retention)
    heapify(st._wf_retention)
    st._timers = timers
    st._deadlines = deadlines
    st._retention = retention


def _count(st: SchedulerState, task: Task) -> None:
    state = task.state
    spec = task.spec
    st._by_state[state] += 1
    if state in WAITING_STATES:
        st._waiting += 1
        st._waiting_by_queue[spec.queue] = st._waiting_by_queue.get(spec.queue, 0) + 1
        b = band(task.priority)
        st._waiting_by_band[b] = st._waiting_by_band.get(b, 0) + 1
    if spec.idempotency_key is not None and task.workflow_id is None:
        st._idem[spec.idempotency_key] = task.id
    if (spec.args or spec.kwargs) and result_refs([spec.args, spec.kwargs]):
        st._refs.add(task.id)
    for p in task.parents:
        st._children.setdefault(p, []).append(task.id)


def _rebuild_pending(st: SchedulerState, timers: list[tuple[float, str]]) -> None:
    for task in st._tasks.values():
        if task.state is TaskState.PENDING:
            n = st._count_unresolved(task)
            if n:
                st._unresolved[task.id] = n
            elif task.not_before is not None:
                timers.append((task.not_before, task.id))


__all__ = [
    "copy_task",
    "decode_snapshot",
    "encode_snapshot",
    "list_tasks",
    "region_views",
    "statistics",
    "workflow_view",
]
