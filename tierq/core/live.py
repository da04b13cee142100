"""The scheduler's own record of a task: what every task uses, and the rest made on first need.

:class:`~tierq.core.model.Task` is the task as queries, the API, the SDK and the CLI see it;
its 21 fields are a record of 184 bytes. A queued task leaves 14 of them at their defaults (no
worker, result, error, progress, reason, backoff, boost, history...), and with a million queued
tasks those empty slots alone are 110 MB of the master's memory. So the book keeps a
:class:`LiveTask` instead: the 7 fields a READY task uses, plus ``extra``, a
:class:`TaskExtra` holding the others, made by the first write of a value other than the
default (an assignment, a retry backoff, a workflow or dependency). Properties give both the
same attribute names, so the scheduler's modules read and write ``task.region`` either way; the
hot paths (submit, lease) read ``task.extra`` themselves to skip the property call. Queries
build a full ``Task`` (``to_task``); snapshots encode the records as they are (schema 2).

An unset field is never written: a setter given the default value while there is no
``extra`` does nothing, so the record of a READY task stays small (and a state rebuilt from the
log is the same whichever path wrote the default).
"""

from __future__ import annotations

import msgspec

from .model import (
    PRIORITY_DEFAULT,
    AttemptRecord,
    ErrorSummary,
    JSONValue,
    Task,
    TaskSpec,
    TaskState,
)

__all__ = ["NO_HISTORY", "NO_STAMPS", "LiveTask", "TaskExtra", "from_task", "to_task"]

#: The history of every task that was never assigned: one shared empty list, replaced on the
#: first assignment (copy-on-write). Saves a list per queued task; nothing appends to it.
NO_HISTORY: list[AttemptRecord] = []
#: The timestamps of a task READY since submission: one shared empty dict (see records.stamp).
NO_STAMPS: dict[str, float] = {}


class TaskExtra(msgspec.Struct, gc=False, kw_only=True, omit_defaults=True):
    """The fields of a task that a plain queued one leaves at their defaults (see ``Task``
    for what each means)."""

    workflow_id: str | None = None
    parents: tuple[str, ...] = ()
    region: str | None = None
    worker: str | None = None
    result: JSONValue = None
    error: ErrorSummary | None = None
    progress: float = 0.0
    progress_message: str | None = None
    not_before: float | None = None
    boost: int = 0
    retry_base: int = 0
    reason: str | None = None
    timestamps: dict[str, float] = {}
    history: list[AttemptRecord] = []


def new_extra() -> TaskExtra:
    """An empty extra record sharing the empty timestamps and history (nothing writes to
    them; they are replaced on first need)."""
    return TaskExtra(timestamps=NO_STAMPS, history=NO_HISTORY)


class LiveTask(msgspec.Struct, gc=False, kw_only=True, omit_defaults=True):
    """The master's record of one task: the hot fields, and the others behind ``extra``."""

    id: str
    spec: TaskSpec
    state: TaskState
    submitted_at: float
    attempt: int = 1
    #: Current effective base priority (the spec's, or as changed at run time).
    priority: int = PRIORITY_DEFAULT
    #: While READY: the task's token in its ready queue (see readyq.py); None otherwise.
    ready_key: int | None = None
    #: The other fields, once one of them is set (None while all are at their defaults).
    extra: TaskExtra | None = None

    def more(self) -> TaskExtra:
        """The extra record, made now if there is none."""
        x = self.extra
        if x is None:
            x = self.extra = new_extra()
        return x

    # One property per field of TaskExtra; the setters skip a default while there is no
    # extra record (see the module docstring).

    @property
    def workflow_id(self) -> str | None:
        x = self.extra
        return None if x is None else x.workflow_id

    @workflow_id.setter
    def workflow_id(self, value: str | None) -> None:
        if value is not None or self.extra is not None:
            self.more().workflow_id = value

    @property
    def parents(self) -> tuple[str, ...]:
        x = self.extra
        return () if x is None else x.parents

    @parents.setter
    def parents(self, value: tuple[str, ...]) -> None:
        if value or self.extra is not None:
            self.more().parents = value

    @property
    def region(self) -> str | None:
        x = self.extra
        return None if x is None else x.region

    @region.setter
    def region(self, value: str | None) -> None:
        if value is not None or self.extra is not None:
            self.more().region = value

    @property
    def worker(self) -> str | None:
        x = self.extra
        return None if x is None else x.worker

    @worker.setter
    def worker(self, value: str | None) -> None:
        if value is not None or self.extra is not None:
            self.more().worker = value

    @property
    def result(self) -> JSONValue:
        x = self.extra
        return None if x is None else x.result

    @result.setter
    def result(self, value: JSONValue) -> None:
        if value is not None or self.extra is not None:
            self.more().result = value

    @property
    def error(self) -> ErrorSummary | None:
        x = self.extra
        return None if x is None else x.error

    @error.setter
    def error(self, value: ErrorSummary | None) -> None:
        if value is not None or self.extra is not None:
            self.more().error = value

    @property
    def progress(self) -> float:
        x = self.extra
        return 0.0 if x is None else x.progress

    @progress.setter
    def progress(self, value: float) -> None:
        if value != 0.0 or self.extra is not None:
            self.more().progress = value

    @property
    def progress_message(self) -> str | None:
        x = self.extra
        return None if x is None else x.progress_message

    @progress_message.setter
    def progress_message(self, value: str | None) -> None:
        if value is not None or self.extra is not None:
            self.more().progress_message = value

    @property
    def not_before(self) -> float | None:
        x = self.extra
        return None if x is None else x.not_before

    @not_before.setter
    def not_before(self, value: float | None) -> None:
        if value is not None or self.extra is not None:
            self.more().not_before = value

    @property
    def boost(self) -> int:
        x = self.extra
        return 0 if x is None else x.boost

    @boost.setter
    def boost(self, value: int) -> None:
        if value != 0 or self.extra is not None:
            self.more().boost = value

    @property
    def retry_base(self) -> int:
        x = self.extra
        return 0 if x is None else x.retry_base

    @retry_base.setter
    def retry_base(self, value: int) -> None:
        if value != 0 or self.extra is not None:
            self.more().retry_base = value

    @property
    def reason(self) -> str | None:
        x = self.extra
        return None if x is None else x.reason

    @reason.setter
    def reason(self, value: str | None) -> None:
        if value is not None or self.extra is not None:
            self.more().reason = value

    @property
    def timestamps(self) -> dict[str, float]:
        x = self.extra
        return NO_STAMPS if x is None else x.timestamps

    @timestamps.setter
    def timestamps(self, value: dict[str, float]) -> None:
        if value or self.extra is not None:
            self.more().timestamps = value

    @property
    def history(self) -> list[AttemptRecord]:
        x = self.extra
        return NO_HISTORY if x is None else x.history

    @history.setter
    def history(self, value: list[AttemptRecord]) -> None:
        if value or self.extra is not None:
            self.more().history = value


_DEFAULTS = TaskExtra()


def to_task(rec: LiveTask, timestamps: dict[str, float], history: list[AttemptRecord]) -> Task:
    """The full ``Task`` of a record (what queries return), with the given timestamps and
    history (the caller's copies); ``ready_key`` is scheduler bookkeeping and left out."""
    x = rec.extra
    if x is None:
        x = _DEFAULTS
    return Task(
        id=rec.id,
        spec=rec.spec,
        state=rec.state,
        submitted_at=rec.submitted_at,
        attempt=rec.attempt,
        workflow_id=x.workflow_id,
        parents=x.parents,
        priority=rec.priority,
        region=x.region,
        worker=x.worker,
        result=x.result,
        error=x.error,
        progress=x.progress,
        progress_message=x.progress_message,
        not_before=x.not_before,
        boost=x.boost,
        retry_base=x.retry_base,
        reason=x.reason,
        timestamps=timestamps,
        history=history,
    )


def from_task(task: Task) -> LiveTask:
    """The record of a ``Task`` (a snapshot of schema 1 holds those)."""
    rec = LiveTask(
        id=task.id,
        spec=task.spec,
        state=task.state,
        submitted_at=task.submitted_at,
        attempt=task.attempt,
        priority=task.priority,
        ready_key=task.ready_key,
    )
    # Only the fields away from their defaults, compared by value: a decoded default is a
    # different float object, which omit_defaults (an identity check) would write out.
    for name in TaskExtra.__struct_fields__:
        value = getattr(task, name)
        if value != getattr(_DEFAULTS, name):
            setattr(rec, name, value)
    return rec
