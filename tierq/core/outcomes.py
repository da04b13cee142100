"""Reports from regions: starts, progress and outcomes of attempts, and what they decide.

Only the current attempt of a held task counts; anything else is a duplicate (an event, a
counter, no change, no error). An outcome feeds the breakers of its (region, task name) and of
its resource, and a failure either schedules a retry or dead-letters the task and cascades.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappush
from typing import cast

from ..errors import InvalidRequestError
from .book import (
    ASSIGNED,
    DEAD,
    FAILED,
    HELD_STATES,
    RUNNING,
    SUCCEEDED,
    Book,
    attempt_record,
    end_attempt,
)
from .cascade import after_terminal, cancel_one
from .events import (
    BreakerClosed,
    BreakerHalfOpen,
    BreakerOpened,
    BreakerScope,
    Event,
    TaskDead,
    TaskDuplicateReport,
    TaskFailed,
    TaskProgress,
    TaskReady,
    TaskStarted,
    TaskSucceeded,
)
from .live import LiveTask
from .model import ErrorSummary, FailurePolicy, Outcome, OutcomeKind, Progress, Started
from .records import stamp
from .retry import backoff_delay, retry_decision
from .states import TERMINAL_STATES, check_transition
from .validate import check_json, check_text
from .workflows import finish_workflows

__all__ = [
    "check_report",
    "fail",
    "on_breaker_closed",
    "on_breaker_half_open",
    "on_breaker_opened",
    "on_dead",
    "on_duplicate",
    "on_failed",
    "on_progress",
    "on_started",
    "on_succeeded",
    "report",
    "report_late",
    "report_progress",
    "report_started",
]

#: Results that need no JSON walk (a float still does: it may be NaN).
_PLAIN_RESULTS = frozenset({bool, str})
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MAX_MESSAGE = 4096
_MAX_TRACEBACK = 65_536
_MAX_WORKER = 256
_OUTCOME_KINDS = frozenset(kind.value for kind in OutcomeKind)


def check_report(
    started: Sequence[Started],
    outcomes: Sequence[Outcome],
    late: Sequence[tuple[str, int, str]] = (),
) -> None:
    """Raise what ``report_started``, ``report`` or ``report_late`` would raise, changing
    nothing.

    A region's report carries all of them; checking all of it first keeps the report all or
    nothing."""
    _check_started(started)
    _check_outcomes(outcomes)
    _check_late(late)


def report_late(book: Book, items: Sequence[tuple[str, int, str]], now: float) -> list[Event]:
    """Reports a region received for attempts it does not hold: each is a duplicate
    (counted, not applied)."""
    now = float(now)
    _check_late(items)
    out: list[Event] = []
    for task_id, attempt, what in items:
        book.emit(TaskDuplicateReport(at=now, id=task_id, attempt=attempt, what=what), out)
    return out


def report_started(book: Book, items: Sequence[Started], now: float) -> list[Event]:
    """ASSIGNED -> RUNNING. A start for another attempt is counted as a duplicate."""
    now = float(now)
    _check_started(items)
    out: list[Event] = []
    tasks = book.tasks
    for item in items:
        task = tasks.get(item.task_id)
        if task is None or task.attempt != item.attempt or task.state is not ASSIGNED:
            book.emit(
                TaskDuplicateReport(at=now, id=item.task_id, attempt=item.attempt, what="started"),
                out,
            )
            continue
        book.emit(TaskStarted(at=now, id=task.id, attempt=item.attempt, worker=item.worker), out)
    return out


def report_progress(book: Book, items: Sequence[Progress], now: float) -> list[Event]:
    """Progress of running attempts; reports for other attempts are ignored silently."""
    now = float(now)
    out: list[Event] = []
    tasks = book.tasks
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
        book.emit(
            TaskProgress(at=now, id=task.id, attempt=item.attempt, fraction=frac, message=message),
            out,
        )
    return out


def report(book: Book, outcomes: Sequence[Outcome], now: float) -> list[Event]:
    """Outcomes of attempts. Only the current attempt of a held task counts; anything else
    is a duplicate (counted, not applied, no error)."""
    now = float(now)
    _check_outcomes(outcomes)
    out: list[Event] = []
    tasks = book.tasks
    settings = book.settings
    for o in outcomes:
        task = tasks.get(o.task_id)
        if task is None or task.attempt != o.attempt or task.state not in HELD_STATES:
            book.emit(
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
                on_succeeded(book, ev)
                out.append(ev)
                _check_breakers(book, task, False, now, out)
                after_terminal(book, task, now, out)
                continue
            error = ErrorSummary(type="InvalidResult", message=bad)
        else:
            error = _clean_error(o.error, o.kind is OutcomeKind.LOST)
        fail(book, task, error, o.worker, now, out)
    finish_workflows(book, now, out)
    return out


def fail(
    book: Book,
    task: LiveTask,
    error: ErrorSummary,
    worker: str | None,
    now: float,
    out: list[Event],
) -> None:
    """End the current attempt as failed (or lost): retry, or dead-letter and cascade."""
    policy = task.spec.retry
    used = task.attempt - task.retry_base - (1 if handed_back(task, error) else 0)
    reason = retry_decision(policy, used, error)
    attempt = task.attempt
    if reason is None:
        retry_at = now if error.lost else now + backoff_delay(policy, used, book.rng)
        book.emit(
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
        if not _neutral(error):
            _check_breakers(book, task, True, now, out)
        if retry_at <= now:
            book.emit(TaskReady(at=now, id=task.id, attempt=attempt + 1), out)
        return
    book.emit(TaskFailed(at=now, id=task.id, attempt=attempt, error=error, worker=worker), out)
    if not _neutral(error):
        _check_breakers(book, task, True, now, out)
    book.emit(TaskDead(at=now, id=task.id, attempt=attempt, reason=reason), out)
    wf_id = task.workflow_id
    if wf_id is not None and book.policy(task) is FailurePolicy.FAIL_WORKFLOW:
        wf = book.workflows[wf_id]
        why = f"workflow {wf_id} failed: task {task.id} is dead"
        for tid in wf.nodes.values():
            other = book.tasks.get(tid)
            if other is not None and other.state not in TERMINAL_STATES:
                cancel_one(book, other, why, now, out)
                after_terminal(book, other, now, out)
    after_terminal(book, task, now, out)


def _check_breakers(book: Book, task: LiveTask, failed: bool, now: float, out: list[Event]) -> None:
    """Open or close the breakers this outcome decides (see ``BreakerBoard.verdicts``)."""
    spec = task.spec
    board = book.breakers
    for key, opened in board.verdicts(
        task.region, spec.name, spec.resource, task.id, failed, book.settings.breaker
    ):
        scope = cast("BreakerScope", key[0])
        if opened:
            b = board.breaker(key)
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
        book.emit(ev, out)


def on_started(book: Book, ev: TaskStarted) -> None:
    task = book.tasks[ev.id]
    task.worker = ev.worker
    if task.state in HELD_STATES:
        rec = attempt_record(task)
        rec.worker = ev.worker
        rec.started_at = ev.at
    book.move(task, RUNNING, ev.at)


def on_progress(book: Book, ev: TaskProgress) -> None:
    task = book.tasks[ev.id]
    task.progress = ev.fraction
    task.progress_message = ev.message


def on_succeeded(book: Book, ev: TaskSucceeded) -> None:
    task = book.tasks[ev.id]
    old = task.state
    if old is not ASSIGNED and old is not RUNNING:
        check_transition(task.id, old, SUCCEEDED)
    at = ev.at
    # A held task has its extra record (the assignment set its region): its fields directly,
    # not through the properties (this runs once per finished task).
    x = task.more()
    x.result = ev.result
    if ev.worker is not None:
        x.worker = ev.worker
    x.progress = 1.0
    rec = attempt_record(task)
    if rec.ended_at is None:
        rec.ended_at = at
        rec.outcome = "succeeded"
    spec = task.spec
    region = x.region
    book.breakers.record(region, spec.name, spec.resource, False)
    book.totals.succeeded += 1
    # Book.leave(held) + Book.enter(SUCCEEDED), inlined.
    by_state = book.by_state
    by_state[old] -= 1
    by_state[SUCCEEDED] += 1
    book.regions.release(region, task.id)
    task.state = SUCCEEDED
    stamp(task, "succeeded", at)
    book.entered_terminal(task, SUCCEEDED, at)


#: The error type of a task a region gives back unstarted, because no live worker there can
#: run its type any more (see ``tierq/region/service.py``).
HANDED_BACK = "NoWorker"


def _neutral(error: ErrorSummary) -> bool:
    """A failure that says nothing about the health of a task type or resource: the attempt
    was lost (infrastructure), or it could never have succeeded (the caller's mistake)."""
    return error.lost or error.permanent


def handed_back(task: LiveTask, error: ErrorSummary) -> bool:
    """A task a region gave back before any worker started it: the attempt is not spent (a
    task with ``max_attempts=1`` is not lost because its worker pool restarted)."""
    return error.lost and error.type == HANDED_BACK and task.state is ASSIGNED


def on_failed(book: Book, ev: TaskFailed) -> None:
    task = book.tasks[ev.id]
    if handed_back(task, ev.error):
        task.retry_base += 1
    task.error = ev.error
    if ev.worker is not None:
        task.worker = ev.worker
    end_attempt(task, ev.at, "lost" if ev.error.lost else "failed", ev.error)
    spec = task.spec
    if _neutral(ev.error):
        book.breakers.release_probe(task.region, spec.name, spec.resource, task.id)
    else:
        book.breakers.record(task.region, spec.name, spec.resource, True)
    task.not_before = ev.retry_at
    book.move(task, FAILED, ev.at)
    if ev.retry_at is not None:
        heappush(book.timers, (ev.retry_at, ev.id))


def on_dead(book: Book, ev: TaskDead) -> None:
    task = book.tasks[ev.id]
    task.reason = ev.reason
    task.not_before = None
    book.totals.dead += 1
    book.move(task, DEAD, ev.at)


def on_duplicate(book: Book, ev: TaskDuplicateReport) -> None:
    book.totals.duplicate_reports += 1


def on_breaker_opened(book: Book, ev: BreakerOpened) -> None:
    book.breakers.breaker((ev.scope, ev.region, ev.name)).open(ev.at)


def on_breaker_half_open(book: Book, ev: BreakerHalfOpen) -> None:
    book.breakers.breaker((ev.scope, ev.region, ev.name)).half_open()


def on_breaker_closed(book: Book, ev: BreakerClosed) -> None:
    book.breakers.breaker((ev.scope, ev.region, ev.name)).close()


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
        type=etype,
        message=message,
        traceback=tb,
        lost=lost or error.lost,
        timeout=error.timeout,
        permanent=error.permanent,
    )


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
