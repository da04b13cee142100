"""Retention: terminal tasks and finished workflows are dropped ``retention_seconds`` later.

A task goes only when every dependent went before it (a dependent may still need its result)
and, in a workflow, only with the whole finished workflow. Its idempotency key is forgotten
with it.
"""

from __future__ import annotations

from heapq import heappop

from .book import SV, Book
from .events import Event, TasksEvicted
from .live import LiveTask
from .states import TERMINAL_STATES

__all__ = ["evict", "on_evicted"]

_EVICT_BATCH = 10_000


def _evictable(book: Book, task: LiveTask, now: float, gone: set[str]) -> bool:
    """Terminal for ``retention_seconds``, its workflow (if any) finished as long ago, and
    every dependent already evicted (a dependent may still need its result)."""
    if task.state not in TERMINAL_STATES:
        return False
    tasks = book.tasks
    for c in book.children.get(task.id, ()):
        if c in tasks and c not in gone:
            return False
    t = task.timestamps[SV[task.state]]
    if task.workflow_id is not None:
        wf = book.workflows.get(task.workflow_id)
        if wf is not None:
            if wf.finished_at is None:
                return False
            t = max(t, wf.finished_at)
    return t + book.settings.retention_seconds <= now


def evict(book: Book, now: float, out: list[Event]) -> None:
    """Drop what retention allows. Leaves go first and each eviction re-checks the parents
    in the same pass, so a finished chain goes in one tick. Every decision reads only the
    logical state, so a restored state (whose heaps hold more stale entries) decides alike."""
    limit = now - book.settings.retention_seconds
    tasks = book.tasks
    todo: list[str] = []
    retention = book.retention
    while retention and retention[0][0] <= limit:
        todo.append(heappop(retention)[1])
    wf_due: list[str] = []
    for rec in book.workflows.due(limit):
        wf_due.append(rec.id)
        todo.extend(rec.nodes.values())
    if not todo and not wf_due:
        return
    gone: set[str] = set()
    while todo:
        tid = todo.pop()
        task = tasks.get(tid)
        if task is None or tid in gone or not _evictable(book, task, now, gone):
            continue
        gone.add(tid)
        todo.extend(task.parents)
        if task.workflow_id is not None:
            wf_due.append(task.workflow_id)
    wfs = sorted(
        {
            wf_id
            for wf_id in wf_due
            if (wf := book.workflows.get(wf_id)) is not None
            and wf.finished_at is not None
            and wf.finished_at <= limit
            and all(t not in tasks or t in gone for t in wf.nodes.values())
        }
    )
    # Sorted, so the event does not depend on the heaps' history.
    ids = sorted(gone)
    for start in range(0, max(len(ids), 1 if wfs else 0), _EVICT_BATCH):
        chunk = ids[start : start + _EVICT_BATCH]
        book.emit(TasksEvicted(at=now, ids=chunk, workflows=wfs if start == 0 else []), out)


def on_evicted(book: Book, ev: TasksEvicted) -> None:
    tasks = book.tasks
    for tid in ev.ids:
        task = tasks.pop(tid, None)
        if task is None:
            continue
        book.order_holes += 1
        book.by_state[task.state] -= 1
        book.totals.evicted += 1
        key = task.spec.idempotency_key
        if key is not None and book.idem.get(key) == tid:
            del book.idem[key]
        book.children.pop(tid, None)
        book.refs.discard(tid)
    for wf_id in ev.workflows:
        book.workflows.drop(wf_id)
    if book.order_holes > 1024 and book.order_holes * 2 > len(book.order):
        book.order = [tid for tid in book.order if tid in tasks]
        book.order_holes = 0
