"""Every exception tierq raises, in one tree.

Branch on what the caller must do, not on where the error came from::

    TierqError
    ├── InvalidRequestError          fix the input (carries the offending field)
    │   ├── CycleError               a dependency cycle (names the ids on it)
    │   ├── UnknownTaskError         depends on ids that do not exist
    │   ├── DuplicateTaskError       the same id twice in one submission
    │   ├── GraphTooLargeError       a workflow over the configured size
    │   ├── InvalidTransitionError   a state change the state machine forbids
    │   └── PayloadTooLargeError     a message over the size limit
    ├── NotFoundError                no task / workflow / region with that id
    ├── ConflictError                idempotency key reused with another body, or wrong state
    │   └── ChangedSinceReadError    a conditional write: the record changed since it was read
    ├── BackpressureError            back off and retry after ``retry_after`` seconds
    ├── UnauthenticatedError         no or bad credentials
    ├── PermissionDeniedError        credentials lack the role
    ├── EngineUnavailableError       NATS or the master is unreachable; transient
    │   ├── NoRespondersError        nobody serves that subject right now (safe to resend)
    │   ├── IntakeBehindError        the master has not applied a submission yet (resend)
    │   └── FencedError              this master lost leadership; its writes are refused
    ├── WaitTimeoutError             a wait for a result ran out (also a TimeoutError)
    └── TaskError                    the task itself ended badly
        ├── TaskFailedError          the task raised (remote type, message, traceback)
        ├── TaskCancelledError       the task was cancelled
        └── TaskTimeoutError         the task ran past its execution timeout

Every class has a stable ``code`` used on the wire, in HTTP problem types and in gRPC
details; :func:`error_from_wire` turns a code and fields back into the matching class.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

__all__ = [
    "BackpressureError",
    "ChangedSinceReadError",
    "ConflictError",
    "CycleError",
    "DuplicateTaskError",
    "EngineUnavailableError",
    "ErrorInfo",
    "FencedError",
    "GraphTooLargeError",
    "IntakeBehindError",
    "InvalidRequestError",
    "InvalidTransitionError",
    "NoRespondersError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "TaskCancelledError",
    "TaskError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TierqError",
    "UnauthenticatedError",
    "UnknownTaskError",
    "WaitTimeoutError",
    "error_from_wire",
]


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An error as it travels between processes (plain data, never an exception object)."""

    code: str
    message: str
    field: str | None = None
    ids: tuple[str, ...] = ()
    retry_after: float | None = None
    error_type: str | None = None
    traceback: str | None = None


class TierqError(Exception):
    """Root of every tierq exception."""

    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message)


class InvalidRequestError(TierqError):
    """The request is malformed or violates a rule; resubmitting it unchanged fails again."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, ids: tuple[str, ...] = ()):
        super().__init__(message)
        self.field = field
        self.ids = ids

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message, field=self.field, ids=self.ids)


class CycleError(InvalidRequestError):
    code = "cycle"


class UnknownTaskError(InvalidRequestError):
    code = "unknown_task"


class DuplicateTaskError(InvalidRequestError):
    code = "duplicate_task"


class GraphTooLargeError(InvalidRequestError):
    code = "graph_too_large"


class InvalidTransitionError(InvalidRequestError):
    code = "invalid_transition"


class PayloadTooLargeError(InvalidRequestError):
    code = "payload_too_large"


class NotFoundError(TierqError):
    code = "not_found"

    def __init__(self, message: str, *, ids: tuple[str, ...] = ()):
        super().__init__(message)
        self.ids = ids

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message, ids=self.ids)


class ConflictError(TierqError):
    code = "conflict"

    def __init__(self, message: str, *, ids: tuple[str, ...] = ()):
        super().__init__(message)
        self.ids = ids

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message, ids=self.ids)


class ChangedSinceReadError(ConflictError):
    """A write made on condition that the record is as read (HTTP ``If-Match``, the SDK's
    keyword ``schedules.update``) found it changed; nothing was written. Read it again."""

    code = "changed_since_read"


class BackpressureError(TierqError):
    """Admission refused: the system (or one queue) is full. Retry after ``retry_after`` s."""

    code = "backpressure"

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message, retry_after=self.retry_after)


class CircuitOpenError(TierqError):
    """Never raised: an open breaker makes tasks wait, it refuses no caller. Deprecated and
    out of ``__all__``; kept so that the code decodes and ``tierq.CircuitOpenError`` resolves
    (with a warning) until the next minor release."""

    code = "circuit_open"

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message, retry_after=self.retry_after)


class UnauthenticatedError(TierqError):
    code = "unauthenticated"


class PermissionDeniedError(TierqError):
    code = "permission_denied"


class EngineUnavailableError(TierqError):
    """NATS, JetStream or the master did not answer; safe to retry."""

    code = "unavailable"


class NoRespondersError(EngineUnavailableError):
    """The request reached no process (e.g. between two masters' terms): nothing was done."""

    code = "no_responders"


class IntakeBehindError(EngineUnavailableError):
    """A request named a task submitted through the intake that the master has not applied
    yet (its follower fell behind): nothing was done, and resending it later is safe."""

    code = "intake_behind"


class FencedError(EngineUnavailableError):
    code = "fenced"


class WaitTimeoutError(TierqError, TimeoutError):
    code = "wait_timeout"


class TaskError(TierqError):
    code = "task_error"

    def __init__(self, message: str, *, task_id: str | None = None):
        super().__init__(message)
        self.task_id = task_id

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message, ids=_ids(self.task_id))


class TaskFailedError(TaskError):
    """The task raised; ``error_type`` and ``traceback`` come from the worker that ran it."""

    code = "task_failed"

    def __init__(
        self,
        message: str,
        *,
        task_id: str | None = None,
        error_type: str = "Exception",
        traceback: str | None = None,
    ):
        super().__init__(message, task_id=task_id)
        self.error_type = error_type
        self.traceback = traceback

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(
            code=self.code,
            message=self.message,
            ids=_ids(self.task_id),
            error_type=self.error_type,
            traceback=self.traceback,
        )


class TaskCancelledError(TaskError):
    code = "task_cancelled"


class TaskTimeoutError(TaskError):
    code = "task_timeout"


def _ids(task_id: str | None) -> tuple[str, ...]:
    return (task_id,) if task_id else ()


_BY_CODE: dict[str, type[TierqError]] = {}


def _register(cls: type[TierqError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(TierqError)


def error_from_wire(info: ErrorInfo) -> TierqError:
    """Rebuild the exception a remote process described; unknown codes become TierqError."""
    cls = _BY_CODE.get(info.code, TierqError)
    if issubclass(cls, InvalidRequestError):
        return cls(info.message, field=info.field, ids=info.ids)
    if issubclass(cls, NotFoundError | ConflictError):
        return cls(info.message, ids=info.ids)
    if issubclass(cls, BackpressureError | CircuitOpenError):
        return cls(info.message, retry_after=info.retry_after or 1.0)
    task_id = info.ids[0] if info.ids else None
    if issubclass(cls, TaskFailedError):
        return cls(
            info.message,
            task_id=task_id,
            error_type=info.error_type or "Exception",
            traceback=info.traceback,
        )
    if issubclass(cls, TaskError):
        return cls(info.message, task_id=task_id)
    return cls(info.message)
