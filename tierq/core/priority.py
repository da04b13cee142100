"""Priority changes: explicit (``reprioritize``), deadline boosts, and a new aging rate.

With one aging rate for all tasks the queues need no periodic re-keying (see ``pqueue.py``);
only an explicit change re-keys one entry, in O(log n), and a new rate rebuilds the queues.
"""

from __future__ import annotations

from heapq import heappop
from operator import itemgetter

from ..errors import ConflictError
from .book import READY, Book
from .events import Event, TaskDeadlineBoosted, TaskReprioritized
from .live import LiveTask
from .model import PRIORITY_MAX, PRIORITY_MIN
from .placement import PlacementIndex
from .records import ready_at
from .states import TERMINAL_STATES, WAITING_STATES, band
from .validate import check_priority

__all__ = ["boost_deadlines", "on_boosted", "on_reprioritized", "rebuild_queue", "reprioritize"]


def reprioritize(book: Book, task_id: str, priority: int, now: float) -> list[Event]:
    """Change a task's base priority; O(log n) when it is queued."""
    if type(priority) is not int or not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        check_priority(priority, "priority")
    task = book.tasks.get(task_id)
    if task is None:
        task = book.task(task_id)
    if task.state in TERMINAL_STATES:
        raise ConflictError(f"task {task_id} is already {task.state.value}", ids=(task_id,))
    old = task.priority
    if old == priority:
        return []
    ev = TaskReprioritized(at=float(now), id=task_id, old=old, new=priority)
    on_reprioritized(book, ev)
    return [ev]


def on_reprioritized(book: Book, ev: TaskReprioritized) -> None:
    task = book.tasks[ev.id]
    new = ev.new
    state = task.state
    if state in WAITING_STATES:
        wb = book.waiting_by_band
        p = task.priority
        wb["normal" if p == 0 else band(p)] -= 1
        b = "normal" if new == 0 else band(new)
        wb[b] = wb.get(b, 0) + 1
    task.priority = new
    if state is READY:
        # _rekey(), inlined: reprioritising a queued task is this event's common case.
        # The enqueue time matters only to an aging queue (and costs a cold dict read).
        book.placement.queue_of(task.spec).update(
            task, new + task.boost, ready_at(task) if book.aging else 0.0
        )


def on_boosted(book: Book, ev: TaskDeadlineBoosted) -> None:
    task = book.tasks[ev.id]
    task.boost = ev.boost
    _rekey(book, task)


def _rekey(book: Book, task: LiveTask) -> None:
    if task.state is READY:
        book.placement.queue_of(task.spec).update(task, task.priority + task.boost, ready_at(task))


def rebuild_queue(book: Book, rate: float) -> None:
    """Every key depends on the aging rate: re-push all READY tasks (O(n log n))."""
    old = book.placement
    entries = sorted(
        ((seq, tid) for _, q in old.items() for tid, seq in q.entries()), key=itemgetter(0)
    )
    book.placement = PlacementIndex(rate)
    tasks = book.tasks
    for seq, tid in entries:
        task = tasks[tid]
        spec = task.spec
        key = (spec.name, spec.region, spec.labels, spec.resource)
        book.placement.queue(key).push(task, task.priority + task.boost, ready_at(task), seq)


def boost_deadlines(book: Book, now: float, out: list[Event]) -> None:
    """Tasks whose deadline is within ``deadline_window`` get ``deadline_boost``, once."""
    settings = book.settings
    if not settings.deadline_boost:
        return
    tasks = book.tasks
    deadlines = book.deadlines
    horizon = now + settings.deadline_window
    while deadlines and deadlines[0][0] <= horizon:
        _, tid = heappop(deadlines)
        task = tasks.get(tid)
        if task is not None and task.boost == 0 and task.state not in TERMINAL_STATES:
            book.emit(TaskDeadlineBoosted(at=now, id=tid, boost=settings.deadline_boost), out)
