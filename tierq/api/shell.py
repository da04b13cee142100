"""The built-in ``shell`` task type and the seed's ``/schedule`` and ``/status/`` endpoints.

Disabled unless the API starts with ``--enable-shell``: a ``shell`` task runs a command line
through ``/bin/sh`` on the API host, which is remote code execution by design, so submitting
one takes the admin role (on ``/schedule`` and on ``/v1/tasks`` alike).

When enabled, the API process runs a :class:`tierq.api.shell_runner.ShellRunner`: an
ordinary worker (on the region's trusted subjects, which only the API may use), so shell
tasks get priorities, leases and cancellation like everything else. A command gets a
timeout; the exit code and the tail of its combined stdout/stderr are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Final, TypeVar

import msgspec
from msgspec import Meta

from ..core.model import (
    ErrorSummary,
    JSONValue,
    RetryPolicy,
    Task,
    TaskSpec,
    TaskState,
)
from ..errors import InvalidRequestError, TierqError
from ..rpc import MasterClient
from .feed import FeedEvent
from .schema import Time, epoch

__all__ = [
    "HIDDEN",
    "SHELL_TASK",
    "EventRedactor",
    "ScheduleIn",
    "ScheduleOut",
    "ShellArgs",
    "ShellResult",
    "ShellStatus",
    "check_shell_spec",
    "is_shell",
    "redact",
    "redact_status",
    "shell_key",
    "sign",
    "signed_by",
    "spec_for",
    "status_of",
]

log = logging.getLogger("tierq.api.shell")

SHELL_TASK: Final = "shell"
#: Bytes of output kept (the tail: errors come last).
OUTPUT_TAIL = 8192
DEFAULT_TIMEOUT = 300.0
_EXIT = re.compile(r"exit code (-?\d+)")

T = TypeVar("T")

Command = Annotated[str, Meta(min_length=1, max_length=10_000)]
Timeout = Annotated[float, Meta(gt=0, le=86_400)]


class ScheduleIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /schedule``: run ``command`` at ``scheduled_at`` (now when absent)."""

    command: Command
    scheduled_at: Time | None = None
    timeout: Timeout = DEFAULT_TIMEOUT
    priority: Annotated[int, Meta(ge=-1000, le=1000)] = 0


class ScheduleOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    task_id: str
    status: str = "scheduled"
    scheduled_at: float | None = None


class ShellStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``GET /status/?task_id=``: where the command is and, once run, how it went."""

    task_id: str
    #: The task state: pending, ready, assigned, running, succeeded, failed, dead, cancelled…
    status: str
    command: str | None = None
    scheduled_at: float | None = None
    exit_code: int | None = None
    output: str | None = None
    error: str | None = None
    attempts: int = 0


class ShellArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The kwargs of a ``shell`` task."""

    command: Command
    timeout: Timeout = DEFAULT_TIMEOUT
    #: Set by the API when an admin submits it (see :func:`sign`); the runner checks it.
    signature: str | None = None


def shell_key(secret: str | None) -> bytes:
    """The key that marks shell tasks as submitted through the API by an admin.

    Every API process must share it: from ``secret`` (``TIERQ_SHELL_KEY``, else the API's
    NATS password, which only API processes know). Without one, a random key: then only the
    process that accepted a command runs it.
    """
    if secret:
        return hashlib.sha256(b"tierq shell key v1\0" + secret.encode()).digest()
    return secrets.token_bytes(32)


def _mac(key: bytes, idempotency_key: str, args: ShellArgs) -> str:
    message = msgspec.json.encode([idempotency_key, args.command, args.timeout])
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(spec: TaskSpec, key: bytes) -> TaskSpec:
    """``spec`` with a signature over its command, bound to its idempotency key.

    Anyone who can publish a submission on NATS could otherwise queue a command for the
    runner. The idempotency key (made up when the caller gave none) stops a replay of the
    signed arguments: the master answers a resubmission with that key with the first task,
    and under another key the signature does not match.
    """
    args = msgspec.convert(spec.kwargs, ShellArgs)
    idem = spec.idempotency_key or f"shell-{secrets.token_urlsafe(16)}"
    kwargs: dict[str, JSONValue] = {"command": args.command, "timeout": args.timeout}
    kwargs["signature"] = _mac(key, idem, args)
    return msgspec.structs.replace(spec, kwargs=kwargs, idempotency_key=idem)


def signed_by(key: bytes, args: ShellArgs, idempotency_key: str | None) -> bool:
    if args.signature is None or idempotency_key is None:
        return False
    return hmac.compare_digest(args.signature, _mac(key, idempotency_key, args))


class ShellResult(msgspec.Struct, kw_only=True):
    exit_code: int
    output: str
    timed_out: bool = False
    duration: float = 0.0


def spec_for(body: ScheduleIn) -> TaskSpec:
    """The task a ``/schedule`` call submits: one attempt (a command is not retried blindly)."""
    return TaskSpec(
        name=SHELL_TASK,
        kwargs={"command": body.command, "timeout": body.timeout},
        run_at=epoch(body.scheduled_at),
        priority=body.priority,
        retry=RetryPolicy(max_attempts=1),
        # The runner enforces the command's timeout; the task timeout is a backstop.
        timeout=body.timeout + 30.0,
    )


def status_of(task: Task) -> ShellStatus:
    command = task.spec.kwargs.get("command")
    status = ShellStatus(
        task_id=task.id,
        status=task.state.value,
        command=command if isinstance(command, str) else None,
        scheduled_at=task.spec.run_at,
        attempts=len(task.history) or (0 if task.state is TaskState.PENDING else 1),
    )
    if task.state is TaskState.SUCCEEDED and isinstance(task.result, dict):
        code = task.result.get("exit_code")
        output = task.result.get("output")
        status.exit_code = code if isinstance(code, int) else None
        status.output = output if isinstance(output, str) else None
    elif task.error is not None:
        match = _EXIT.search(task.error.message)
        status.exit_code = int(match.group(1)) if match else None
        status.output = task.error.traceback
        status.error = f"{task.error.type}: {task.error.message}"
    return status


#: What a caller without the admin role sees instead of a shell task's command or output.
HIDDEN = "(hidden: shell commands and their output need the admin role)"


def is_shell(task: Task) -> bool:
    return task.spec.name == SHELL_TASK


def check_shell_spec(spec: TaskSpec, field: str | None) -> None:
    """A ``shell`` task's arguments, checked when it is submitted (422), not when it runs.

    A malformed one used to be accepted and then failed (and was retried) by the runner.
    """
    where = f"{field}." if field else ""
    if spec.args:
        raise InvalidRequestError(
            f"{where}args: a shell task takes only kwargs command and timeout",
            field=f"{where}args",
        )
    try:
        msgspec.convert(spec.kwargs, ShellArgs)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(
            f"{where}kwargs: {str(exc).rsplit(' - at `', 1)[0]}", field=f"{where}kwargs"
        ) from None


def redact(task: Task) -> Task:
    """``task`` as a caller without the admin role may see it: a shell task's command line,
    result and output (which may hold secrets) are hidden; everything else stays."""
    if not is_shell(task):
        return task
    spec = msgspec.structs.replace(task.spec, args=[], kwargs={"command": HIDDEN})
    result = HIDDEN if task.result is not None else None
    history = [
        msgspec.structs.replace(record, error=_hidden_error(record.error))
        for record in task.history
    ]
    return msgspec.structs.replace(
        task, spec=spec, result=result, error=_hidden_error(task.error), history=history
    )


def _hidden_error(error: ErrorSummary | None) -> ErrorSummary | None:
    if error is None:
        return None
    return msgspec.structs.replace(error, message=HIDDEN, traceback=None)


def redact_status(status: ShellStatus) -> ShellStatus:
    return msgspec.structs.replace(
        status,
        command=HIDDEN if status.command is not None else None,
        output=HIDDEN if status.output is not None else None,
        error=HIDDEN if status.error is not None else None,
    )


class EventRedactor:
    """Hides shell commands and output in the event feed from callers without the admin role.

    ``task_submitted`` carries the spec, ``task_succeeded`` the result and ``task_failed`` /
    ``task_dead`` the error (the output tail). Whether an id is a shell task is learnt from
    its submission when the feed shows it, else asked of the master once; the answers are
    kept (bounded) for every watcher of this API process.
    """

    def __init__(self, master: MasterClient, capacity: int = 100_000) -> None:
        self.master = master
        self.capacity = capacity
        self._known: dict[str, bool] = {}

    def view(self, admin: bool) -> Callable[[FeedEvent], Awaitable[FeedEvent]]:
        """What a caller sees of each event: all of it for an admin, else :meth:`event`."""
        return _as_is if admin else self.event

    async def event(self, event: FeedEvent) -> FeedEvent:
        try:
            doc = msgspec.json.decode(event.data)
        except msgspec.DecodeError:
            return event
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            return event
        task_id: str = doc["id"]
        spec = doc.get("spec")
        if isinstance(spec, dict):
            self._remember(task_id, spec.get("name") == SHELL_TASK)
            if spec.get("name") != SHELL_TASK:
                return event
            doc["spec"] = {**spec, "args": [], "kwargs": {"command": HIDDEN}}
        elif "result" in doc or "error" in doc:
            if not await self._is_shell(task_id):
                return event
            if "result" in doc:
                doc["result"] = HIDDEN
            if isinstance(doc.get("error"), dict):
                doc["error"] = {**doc["error"], "message": HIDDEN, "traceback": None}
        else:
            return event
        return event._replace(data=msgspec.json.encode(doc))

    async def _is_shell(self, task_id: str) -> bool:
        known = self._known.get(task_id)
        if known is None:
            try:
                known = is_shell(await self.master.get(task_id))
            except TierqError:
                return True  # cannot tell: hide rather than leak
            self._remember(task_id, known)
        return known

    def _remember(self, task_id: str, shell: bool) -> None:
        if len(self._known) >= self.capacity:
            self._known.pop(next(iter(self._known)))
        self._known[task_id] = shell


async def _as_is(event: FeedEvent) -> FeedEvent:
    return event
