"""Read-only views of the scheduler's book: tasks, workflows, regions and statistics.

``SchedulerState``'s queries call these with its ``Book``. They read the book's public fields
and ask the region and breaker components through their read methods; nothing here changes
the state (the workflow level cache aside, which is not part of it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import msgspec

from ..errors import InvalidRequestError, NotFoundError
from .admission import AdmissionLevel, AdmissionStatistics, admission_level
from .book import Book
from .dag import topological_levels
from .leases import RegionView
from .live import LiveTask, to_task
from .model import Task, TaskState
from .pqueue import QueueStatistics
from .records import (
    SchedulerStatistics,
    WorkflowNodeView,
    WorkflowSummary,
    WorkflowView,
    assignment_record,
    stamps,
)
from .states import TERMINAL_STATES

MAX_PAGE = 1000
#: Tasks one ``list_tasks`` call examines at most (see there).
MAX_SCAN = 100_000
_HELD = (TaskState.ASSIGNED, TaskState.RUNNING)


def copy_task(task: LiveTask) -> Task:
    """The full ``Task`` of a record, which callers may keep or change without touching it."""
    history = [msgspec.structs.replace(h) for h in task.history]
    if task.state in _HELD and not (history and history[-1].attempt == task.attempt):
        # The scheduler makes the current attempt's record on first need; show it anyway.
        history.append(assignment_record(task))
    return to_task(task, stamps(task), history)


def list_tasks(
    book: Book,
    state: TaskState | None,
    name: str | None,
    queue: str | None,
    region: str | None,
    workflow_id: str | None,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> tuple[list[Task], str | None]:
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be in [1, {MAX_PAGE}], got {limit!r}", field="limit")
    if cursor is not None and (not isinstance(cursor, str) or len(cursor) > 64):
        raise InvalidRequestError("cursor: not a cursor returned by list_tasks", field="cursor")
    tasks = book.tasks
    ids: list[str] | tuple[str, ...] = book.order
    if workflow_id is not None:
        wf = book.workflows.get(workflow_id)
        if wf is None:
            return [], None
        ids = sorted(wf.nodes.values())
    if newest_first:
        return _newest_first(book, ids, state, name, queue, region, limit, cursor)
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


def _matches(
    task: LiveTask, state: TaskState | None, name: str | None, queue: str | None, region: str | None
) -> bool:
    spec = task.spec
    return (
        (state is None or task.state is state)
        and (name is None or spec.name == name)
        and (queue is None or spec.queue == queue)
        and (region is None or task.region == region)
    )


def _newest_first(
    book: Book,
    ids: list[str] | tuple[str, ...],
    state: TaskState | None,
    name: str | None,
    queue: str | None,
    region: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Task], str | None]:
    """``list_tasks`` from the newest down: the cursor is the last id returned (or examined),
    and the next page holds older ids. The same bounded scan per call."""
    end = len(ids) if cursor is None else bisect_left(ids, cursor)
    stop = max(0, end - MAX_SCAN)
    page: list[Task] = []
    tasks = book.tasks
    for i in range(end - 1, stop - 1, -1):
        task = tasks.get(ids[i])
        if task is None or not _matches(task, state, name, queue, region):
            continue
        page.append(copy_task(task))
        if len(page) == limit:
            return page, (task.id if i > 0 else None)
    return page, (ids[stop] if stop > 0 else None)


#: Workflow list filters: a finished state, or "running" for those still going.
WORKFLOW_STATES = ("running", "succeeded", "failed", "cancelled")


def list_workflows(
    book: Book, state: str | None, limit: int, cursor: str | None
) -> tuple[list[WorkflowSummary], str | None]:
    """Workflows newest first, after ``cursor`` (the last id of the previous page)."""
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be in [1, {MAX_PAGE}], got {limit!r}", field="limit")
    if state is not None and state not in WORKFLOW_STATES:
        raise InvalidRequestError(
            f"state must be one of {', '.join(WORKFLOW_STATES)}, got {state[:40]!r}", field="state"
        )
    workflows = book.workflows
    ids = workflows.ids()
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
                done=total - workflows.open_tasks(wf.id),
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
    book: Book, workflow_id: str, cursor: str | None = None, limit: int | None = None
) -> WorkflowView:
    """The workflow with the nodes from ``cursor`` (an offset in topological order, as
    ``next_cursor`` gives it) on, at most ``limit`` of them (all when None)."""
    wf = book.workflows.get(workflow_id)
    if wf is None:
        raise NotFoundError(f"no workflow {workflow_id!r}", ids=(workflow_id,))
    total = len(wf.nodes)
    start = _workflow_cursor(cursor, total)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise InvalidRequestError(f"limit must be a count >= 1, got {limit!r}", field="limit")
    end = total if limit is None else min(total, start + limit)
    ids = list(wf.nodes.values())

    def compute() -> list[int]:
        parents: dict[str, list[str]] = {}
        for p, c in wf.edges:
            parents.setdefault(c, []).append(p)
        return topological_levels(ids, lambda tid: parents.get(tid, ()))

    # Once per workflow, not once per page: 0.6 s of the master's loop at 100,000 nodes.
    levels = book.workflows.levels(wf.id, compute)
    tasks = book.tasks
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


def region_views(book: Book) -> list[RegionView]:
    return book.regions.views()


def admission_statistics(book: Book) -> AdmissionStatistics:
    a = book.settings.admission
    queues: dict[str, AdmissionLevel] = {}
    for q, n in book.waiting_by_queue.items():
        level = admission_level(n, a.max_queued_per_queue, a)
        if level is not AdmissionLevel.OPEN:
            queues[q] = level
    return AdmissionStatistics(
        level=admission_level(book.waiting, a.max_queued, a),
        waiting=book.waiting,
        max_queued=a.max_queued,
        queues=dict(sorted(queues.items())),
        rejected=book.rejected,
    )


def _queue_statistics(book: Book) -> QueueStatistics:
    parts = [q.statistics() for _, q in book.placement.items()]
    return QueueStatistics(
        size=sum(p.size for p in parts),
        heap_entries=sum(p.heap_entries for p in parts),
        pushes=sum(p.pushes for p in parts),
        pops=sum(p.pops for p in parts),
        updates=sum(p.updates for p in parts),
        removes=sum(p.removes for p in parts),
        compactions=sum(p.compactions for p in parts),
    )


def statistics(book: Book, now: float) -> SchedulerStatistics:
    t = book.totals
    return SchedulerStatistics(
        now=now,
        tasks=len(book.tasks),
        by_state={s.value: n for s, n in book.by_state.items()},
        waiting_by_queue={q: n for q, n in sorted(book.waiting_by_queue.items()) if n},
        waiting_by_band={b: n for b, n in sorted(book.waiting_by_band.items()) if n},
        held_by_region=book.regions.held_counts(),
        queue_depth=book.by_state[TaskState.READY],
        ready_by_name={k: n for k, n in sorted(book.ready_by_name.items()) if n},
        workflows=len(book.workflows),
        regions=len(book.regions),
        admission=admission_statistics(book),
        breakers=book.breakers.statistics(),
        queue=_queue_statistics(book),
        totals=msgspec.structs.replace(t),
    )


__all__ = [
    "admission_statistics",
    "copy_task",
    "list_tasks",
    "list_workflows",
    "region_views",
    "statistics",
    "workflow_view",
]
