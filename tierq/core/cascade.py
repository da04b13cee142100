"""What follows from a task's end, and the interventions that end or revive tasks.

A terminal task releases, skips or cancels its PENDING dependents (``after_terminal``,
transitively and without recursion): a success releases them, a failure skips them (or lets
them run, under ``continue``), a cancellation cancels them. ``cancel``, ``cancel_workflow`` and
``retry`` are the user's interventions; ``release_due`` is the clock's.
"""

from __future__ import annotations

from heapq import heappop, heappush

from ..errors import ConflictError, NotFoundError
from .book import (
    CANCELLED,
    DEAD,
    FAILED,
    HELD_STATES,
    PENDING,
    READY,
    SKIPPED,
    SUCCEEDED,
    Book,
    end_attempt,
)
from .events import Event, TaskCancelled, TaskReady, TaskRetried, TaskSkipped
from .live import LiveTask
from .records import stamp
from .states import TERMINAL_STATES
from .workflows import finish_workflows

__all__ = [
    "after_terminal",
    "cancel",
    "cancel_one",
    "cancel_workflow",
    "on_cancelled",
    "on_ready",
    "on_retried",
    "on_skipped",
    "release_due",
    "retry",
]


def after_terminal(book: Book, root: LiveTask, now: float, out: list[Event]) -> None:
    """Release, skip or cancel the PENDING dependents of a task that just became terminal,
    transitively, without recursion."""
    stack = [root]
    tasks = book.tasks
    unresolved = book.unresolved
    while stack:
        parent = stack.pop()
        kids = book.children.get(parent.id)
        if not kids:
            continue
        pst = parent.state
        for c in kids:
            child = tasks.get(c)
            if child is None or child.state is not PENDING:
                continue
            if pst is SUCCEEDED or book.resolves(pst, child):
                x = child.extra  # child.not_before, without the property call
                nb = None if x is None else x.not_before
                if c not in unresolved and (nb is None or nb <= now):
                    ev = TaskReady(at=now, id=c, attempt=child.attempt)
                    on_ready(book, ev)
                    out.append(ev)
            elif pst is CANCELLED:
                cancel_one(book, child, f"parent {parent.id} was cancelled", now, out)
                stack.append(child)
            else:
                book.emit(
                    TaskSkipped(
                        at=now,
                        id=c,
                        reason=f"parent {parent.id} is {pst.value}",
                        parent=parent.id,
                    ),
                    out,
                )
                stack.append(child)


def cancel_one(book: Book, task: LiveTask, reason: str, now: float, out: list[Event]) -> None:
    held = task.region if task.state in HELD_STATES else None
    book.emit(
        TaskCancelled(at=now, id=task.id, reason=reason, attempt=task.attempt, region=held),
        out,
    )


def cancel(book: Book, task_id: str, now: float) -> list[Event]:
    """Cancel a task and, transitively, its dependents (they become CANCELLED too)."""
    now = float(now)
    task = book.task(task_id)
    if task.state in TERMINAL_STATES:
        raise ConflictError(f"task {task_id} is already {task.state.value}", ids=(task_id,))
    out: list[Event] = []
    cancel_one(book, task, "cancelled by request", now, out)
    after_terminal(book, task, now, out)
    finish_workflows(book, now, out)
    return out


def cancel_workflow(book: Book, workflow_id: str, now: float) -> list[Event]:
    now = float(now)
    wf = book.workflows.get(workflow_id)
    if wf is None:
        raise NotFoundError(f"no workflow {workflow_id!r}", ids=(workflow_id,))
    if wf.state is not None:
        raise ConflictError(
            f"workflow {workflow_id} already finished ({wf.state})", ids=(workflow_id,)
        )
    out: list[Event] = []
    why = f"workflow {workflow_id} cancelled by request"
    for tid in wf.nodes.values():
        task = book.tasks.get(tid)
        if task is not None and task.state not in TERMINAL_STATES:
            cancel_one(book, task, why, now, out)
            after_terminal(book, task, now, out)
    finish_workflows(book, now, out, cancelled=workflow_id)
    return out


def retry(book: Book, task_id: str, now: float) -> list[Event]:
    """Run a DEAD, CANCELLED or SKIPPED task again with a fresh attempt budget.

    Dependents that were skipped because of it come back as PENDING. Refused when a
    dependent already ran, or while a parent is itself dead, cancelled or skipped.
    """
    now = float(now)
    task = book.task(task_id)
    if task.state not in (DEAD, CANCELLED, SKIPPED):
        raise ConflictError(
            f"task {task_id} is {task.state.value}; only dead, cancelled or skipped tasks "
            "can be retried",
            ids=(task_id,),
        )
    tasks = book.tasks
    blocked = [
        p
        for p in task.parents
        if p in tasks
        and tasks[p].state in (DEAD, CANCELLED, SKIPPED)
        and not book.resolves(tasks[p].state, task)
    ]
    if blocked:
        raise ConflictError(
            f"task {task_id}: parents {', '.join(blocked[:10])} must be retried first",
            ids=tuple(blocked[:100]),
        )
    ran = [
        c
        for c in book.children.get(task_id, ())
        if c in tasks and tasks[c].state not in (PENDING, SKIPPED, CANCELLED)
    ]
    if ran:
        raise ConflictError(
            f"task {task_id}: dependents {', '.join(ran[:10])} already ran",
            ids=tuple(ran[:100]),
        )
    out: list[Event] = []
    state = PENDING if book.count_unresolved(task) else READY
    book.emit(TaskRetried(at=now, id=task_id, attempt=task.attempt + 1, state=state), out)
    # Bring back the dependents this task's failure skipped.
    stack = [task_id]
    while stack:
        for c in book.children.get(stack.pop(), ()):
            child = tasks.get(c)
            if child is not None and child.state is SKIPPED:
                book.emit(TaskRetried(at=now, id=c, attempt=child.attempt, state=PENDING), out)
                stack.append(c)
    return out


def on_ready(book: Book, ev: TaskReady) -> None:
    task = book.tasks[ev.id]
    task.attempt = ev.attempt
    x = task.extra
    if x is not None:  # task.not_before = None, without the property call
        x.not_before = None
    old = task.state
    if old is not PENDING and old is not FAILED:
        book.move(task, READY, ev.at)
        return
    # PENDING/FAILED -> READY, inlined (a released workflow task takes this path): both
    # are waiting states, so only the state counters, the timestamp and the queue change.
    at = ev.at
    by_state = book.by_state
    by_state[old] -= 1
    by_state[READY] += 1
    task.state = READY
    stamp(task, "ready", at)
    book.push_ready(task, at)


def on_cancelled(book: Book, ev: TaskCancelled) -> None:
    task = book.tasks[ev.id]
    task.reason = ev.reason
    task.not_before = None
    if task.state in HELD_STATES:
        end_attempt(task, ev.at, "cancelled", None)
        spec = task.spec
        book.breakers.release_probe(task.region, spec.name, spec.resource, task.id)
    book.totals.cancelled += 1
    book.move(task, CANCELLED, ev.at)


def on_skipped(book: Book, ev: TaskSkipped) -> None:
    task = book.tasks[ev.id]
    task.reason = ev.reason
    task.not_before = None
    book.totals.skipped += 1
    book.move(task, SKIPPED, ev.at)


def on_retried(book: Book, ev: TaskRetried) -> None:
    task = book.tasks[ev.id]
    task.attempt = ev.attempt
    task.retry_base = ev.attempt - 1
    task.reason = None
    task.not_before = None
    task.result = None
    if ev.state is PENDING:
        n = book.count_unresolved(task)
        if n:
            book.unresolved[task.id] = n
    if task.spec.deadline is not None and task.boost == 0:
        # Its entry may have been dropped while it was terminal.
        heappush(book.deadlines, (task.spec.deadline, task.id))
    book.move(task, ev.state, ev.at)


def release_due(book: Book, now: float, out: list[Event]) -> None:
    """Delayed (``run_at``) and backed-off tasks whose time came become READY."""
    tasks = book.tasks
    timers = book.timers
    unresolved = book.unresolved
    while timers and timers[0][0] <= now:
        at, tid = heappop(timers)
        task = tasks.get(tid)
        if task is None or task.not_before != at:
            continue
        if task.state is PENDING and tid not in unresolved:
            book.emit(TaskReady(at=now, id=tid, attempt=task.attempt), out)
        elif task.state is FAILED:
            book.emit(TaskReady(at=now, id=tid, attempt=task.attempt + 1), out)
