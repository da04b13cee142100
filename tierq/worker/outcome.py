"""Turning what a task did into an :class:`~tierq.core.model.Outcome` for the master."""

from __future__ import annotations

import traceback as tb_module
from typing import Any

from ..core.model import ErrorSummary, Outcome, OutcomeKind
from ..core.retry import error_type_name
from .values import NotJSONError, check_json

__all__ = [
    "MAX_TRACEBACK",
    "ReportedError",
    "failed",
    "lost",
    "succeeded",
    "summarize",
    "timed_out",
]

#: Tracebacks are cut to this many characters (the tail, where the error is, is kept).
MAX_TRACEBACK = 16_000
MAX_MESSAGE = 4_000


class ReportedError(Exception):
    """An attempt failed, and ``summary`` is exactly what to report (a failure in a child
    process, or a built-in task that chooses its error type, message and traceback)."""

    def __init__(self, summary: ErrorSummary) -> None:
        super().__init__(f"{summary.type}: {summary.message}")
        self.summary = summary


def summarize(exc: BaseException, *, with_traceback: bool = True) -> ErrorSummary:
    message = str(exc) or repr(exc)
    text: str | None = None
    if with_traceback:
        text = "".join(tb_module.format_exception(exc))
        if len(text) > MAX_TRACEBACK:
            text = "...\n" + text[-MAX_TRACEBACK:]
    return ErrorSummary(
        type=error_type_name(type(exc)), message=message[:MAX_MESSAGE], traceback=text
    )


def succeeded(task_id: str, attempt: int, worker: str, result: Any) -> Outcome:
    """A success, or a failure if the result cannot travel as JSON."""
    try:
        check_json(result, "result")
    except NotJSONError as exc:
        error = ErrorSummary(
            type="TypeError",
            message=f"{exc}; a task must return JSON-compatible data (None, bool, int, float, "
            "str, list, dict with str keys)",
            permanent=True,
        )
        return Outcome(
            task_id=task_id, attempt=attempt, kind=OutcomeKind.FAILED, error=error, worker=worker
        )
    return Outcome(
        task_id=task_id, attempt=attempt, kind=OutcomeKind.SUCCEEDED, result=result, worker=worker
    )


def failed(task_id: str, attempt: int, worker: str, error: ErrorSummary) -> Outcome:
    return Outcome(
        task_id=task_id, attempt=attempt, kind=OutcomeKind.FAILED, error=error, worker=worker
    )


def timed_out(task_id: str, attempt: int, worker: str, timeout: float) -> Outcome:
    error = ErrorSummary(
        type="TaskTimeoutError",
        message=f"attempt {attempt} ran past its {timeout:g} s timeout",
        timeout=True,
    )
    return failed(task_id, attempt, worker, error)


def lost(task_id: str, attempt: int, worker: str, why: str) -> Outcome:
    """The worker gave the attempt up (shutdown): the master re-queues it as a counted retry."""
    error = ErrorSummary(type="WorkerLostError", message=why, lost=True)
    return Outcome(
        task_id=task_id, attempt=attempt, kind=OutcomeKind.LOST, error=error, worker=worker
    )
