"""The API's own request and response bodies: strict, bounded, and the source of its OpenAPI.

These mirror the core's structs (``tierq.core.model``) field for field but are stricter at the
edge: unknown fields are refused, every string and list has a bound, and times may also be
given as RFC 3339 strings with a zone. Rules that depend on live settings (payload bytes,
nesting depth, the longest timeout) and on state (unknown dependencies, cycles) are the
master's to check; it answers with the same error codes. gRPC requests are turned into these
structs too, so both transports validate identically.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ..core.model import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    ErrorSummary,
    FailurePolicy,
    LeasedTask,
    Outcome,
    OutcomeKind,
    Progress,
    RetryPolicy,
    Started,
    TaskSpec,
    WorkflowNode,
    WorkflowSpec,
)

__all__ = [
    "AttemptOut",
    "AttemptRef",
    "BatchIn",
    "BatchOut",
    "CommandOut",
    "ErrorIn",
    "HeartbeatIn",
    "HeartbeatOut",
    "LeaseIn",
    "LeaseOut",
    "OutcomeIn",
    "PriorityPatch",
    "ProgressIn",
    "RegisterWorkerIn",
    "RegisterWorkerOut",
    "ReportIn",
    "ReportOut",
    "RetryPolicyIn",
    "SubmitOut",
    "TaskQuery",
    "TaskSpecIn",
    "WaitIn",
    "WorkflowIn",
    "WorkflowNodeIn",
    "WorkflowOut",
    "epoch",
]

#: 9999-12-31T23:59:59Z, the core's latest accepted time.
MAX_TIME = 253_402_300_799.0
MAX_BATCH = 10_000
MAX_WORKFLOW_NODES = 100_000

Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="Task type name: printable, NFC- and NFKC-normalised, no leading or "
        "trailing spaces, and no case or width look-alike of a built-in name (`shell`); "
        "anything else is refused with 422 naming the field",
    ),
]
Token = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
RegionName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Key = Annotated[str, Meta(min_length=1, max_length=256)]
NodeKey = Annotated[str, Meta(min_length=1, max_length=128)]
TaskId = Annotated[str, Meta(min_length=1, max_length=256)]
Priority = Annotated[int, Meta(ge=PRIORITY_MIN, le=PRIORITY_MAX)]
EpochSeconds = Annotated[float, Meta(ge=0, le=MAX_TIME)]
#: Seconds since the epoch, or an RFC 3339 time with a zone (naive times are refused).
Time = EpochSeconds | Annotated[datetime, Meta(tz=True)]
Seconds = Annotated[
    float,
    Meta(
        gt=0,
        le=30 * 86400,
        description="Seconds; a task timeout is also bounded by the live `max_timeout` "
        "setting (7 days by default), refused with 422 above it",
    ),
]
Attempt = Annotated[int, Meta(ge=1, le=1_000_000)]
WorkerId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
Fraction = Annotated[float, Meta(ge=0, le=1)]


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of request bodies: unknown fields are an error, not silently dropped."""


class _Out(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of response bodies."""


def epoch(value: float | datetime | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    return value.timestamp()


class RetryPolicyIn(_In):
    max_attempts: Annotated[int, Meta(ge=1, le=1000)] = 3
    backoff_base: Annotated[float, Meta(ge=0, le=86400)] = 1.0
    backoff_max: Annotated[float, Meta(ge=0, le=86400)] = 300.0
    jitter: Annotated[float, Meta(ge=0, le=1)] = 0.2
    retry_on: Annotated[list[Name], Meta(max_length=100)] = []

    def to_core(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            jitter=self.jitter,
            retry_on=tuple(self.retry_on),
        )


_DEFAULT_RETRY = RetryPolicy()


class TaskSpecIn(_In):
    """One task to run: the name of a registered task type and its arguments."""

    name: Name
    #: Positional arguments (JSON values). ``{"$result": "<parent>"}`` stands for a parent's result.
    args: Annotated[list[Any], Meta(max_length=1000)] = []
    kwargs: Annotated[dict[str, Any], Meta(max_length=1000)] = {}
    priority: Priority = 0
    run_at: Time | None = None
    deadline: Time | None = None
    region: RegionName | None = None
    labels: Annotated[list[Token], Meta(max_length=32)] = []
    #: Ids of existing tasks (or, inside a workflow, node keys) that must succeed first.
    depends_on: Annotated[list[Key], Meta(max_length=10_000)] = []
    retry: RetryPolicyIn | None = None
    timeout: Seconds | None = None
    idempotency_key: Key | None = None
    queue: Token = "default"
    resource: Token | None = None

    def to_core(self) -> TaskSpec:
        return TaskSpec(
            name=self.name,
            args=self.args,
            kwargs=self.kwargs,
            priority=self.priority,
            run_at=epoch(self.run_at),
            deadline=epoch(self.deadline),
            region=self.region,
            labels=tuple(self.labels),
            depends_on=tuple(self.depends_on),
            retry=self.retry.to_core() if self.retry is not None else _DEFAULT_RETRY,
            timeout=self.timeout,
            idempotency_key=self.idempotency_key,
            queue=self.queue,
            resource=self.resource,
        )


class BatchIn(_In):
    tasks: Annotated[list[TaskSpecIn], Meta(min_length=1, max_length=MAX_BATCH)]


class WorkflowNodeIn(_In):
    key: NodeKey
    spec: TaskSpecIn


class WorkflowIn(_In):
    """A DAG submitted atomically: nodes named by local keys, plus (parent, child) edges."""

    nodes: Annotated[list[WorkflowNodeIn], Meta(min_length=1, max_length=MAX_WORKFLOW_NODES)]
    edges: Annotated[list[tuple[NodeKey, NodeKey]], Meta(max_length=1_000_000)] = []
    name: Name = "workflow"
    on_failure: FailurePolicy = FailurePolicy.SKIP_DEPENDENTS
    idempotency_key: Key | None = None

    def to_core(self) -> WorkflowSpec:
        return WorkflowSpec(
            nodes=[WorkflowNode(key=n.key, spec=n.spec.to_core()) for n in self.nodes],
            edges=list(self.edges),
            name=self.name,
            on_failure=self.on_failure,
            idempotency_key=self.idempotency_key,
        )


class PriorityPatch(_In):
    """``PATCH /v1/tasks/{id}``: the fields of a task that may change after submission."""

    priority: Priority


class TaskQuery(msgspec.Struct, kw_only=True, frozen=True):
    """``GET /v1/tasks`` filters (checked by the service and the master)."""

    state: str | None = None
    name: str | None = None
    queue: str | None = None
    region: str | None = None
    workflow: str | None = None
    limit: int = 100
    cursor: str | None = None
    newest_first: bool = False


class WaitIn(_In):
    ids: Annotated[list[TaskId], Meta(min_length=1, max_length=1000)]
    timeout: Annotated[float, Meta(ge=0, le=300)] = 30.0


class SubmitOut(_Out):
    id: str
    #: E.g. that no live worker runs the task's type: accepted all the same, it waits.
    warnings: list[str] = []


class BatchOut(_Out):
    ids: list[str]
    warnings: list[str] = []


class WorkflowOut(_Out):
    workflow_id: str
    #: Task id by node key.
    ids: dict[str, str]
    warnings: list[str] = []


class CommandOut(_Out):
    """A command was committed; ``events`` is how many lifecycle events it caused."""

    id: str
    events: int = 0


# --- pull over the API ------------------------------------------------------------------


class RegisterWorkerIn(_In):
    task_types: Annotated[list[Name], Meta(min_length=1, max_length=1000)]
    concurrency: Annotated[int, Meta(ge=1, le=10_000)] = 1
    #: Chosen by the server when absent.
    worker: WorkerId | None = None
    host: Annotated[str, Meta(max_length=256)] = ""


class RegisterWorkerOut(_Out):
    worker: str
    region: str
    lease_seconds: float
    heartbeat_interval: float


class LeaseIn(_In):
    slots: Annotated[int, Meta(ge=1, le=1000)] = 1
    #: Seconds to hold the call when nothing is ready.
    wait: Annotated[float, Meta(ge=0, le=30)] = 5.0


class LeaseOut(_Out):
    tasks: list[LeasedTask] = []
    #: Stop leasing and finish what runs (the region is draining this worker).
    drain: bool = False


class AttemptRef(_In):
    task_id: TaskId
    attempt: Attempt


class HeartbeatIn(_In):
    running: Annotated[list[AttemptRef], Meta(max_length=10_000)] = []
    draining: bool = False


class AttemptOut(_Out):
    task_id: str
    attempt: int


class HeartbeatOut(_Out):
    #: Attempts to stop now: cancelled, or no longer this worker's.
    cancel: list[AttemptOut] = []
    #: The region does not know this worker (it restarted): register again.
    unknown: bool = False
    drain: bool = False


class ProgressIn(_In):
    task_id: TaskId
    attempt: Attempt
    fraction: Fraction
    message: Annotated[str, Meta(max_length=1000)] | None = None


class ErrorIn(_In):
    type: Annotated[str, Meta(min_length=1, max_length=200)]
    message: Annotated[str, Meta(max_length=10_000)] = ""
    traceback: Annotated[str, Meta(max_length=100_000)] | None = None
    timeout: bool = False
    #: Retrying cannot help (e.g. arguments the function does not take): not retried.
    permanent: bool = False


class OutcomeIn(_In):
    task_id: TaskId
    attempt: Attempt
    #: Workers report success or failure; "lost" is the scheduler's own verdict.
    kind: Literal["succeeded", "failed"]
    result: Any = None
    error: ErrorIn | None = None


class ReportIn(_In):
    started: Annotated[list[AttemptRef], Meta(max_length=10_000)] = []
    progress: Annotated[list[ProgressIn], Meta(max_length=10_000)] = []
    outcomes: Annotated[list[OutcomeIn], Meta(max_length=10_000)] = []

    def to_core(self, worker: str) -> tuple[list[Started], list[Progress], list[Outcome]]:
        """The report as the region reads it; ``worker`` comes from the path, not the body."""
        started = [
            Started(task_id=s.task_id, attempt=s.attempt, worker=worker) for s in self.started
        ]
        progress = [
            Progress(task_id=p.task_id, attempt=p.attempt, fraction=p.fraction, message=p.message)
            for p in self.progress
        ]
        outcomes = [
            Outcome(
                task_id=o.task_id,
                attempt=o.attempt,
                kind=OutcomeKind(o.kind),
                result=o.result if o.kind == "succeeded" else None,
                error=(
                    ErrorSummary(
                        type=o.error.type,
                        message=o.error.message,
                        traceback=o.error.traceback,
                        timeout=o.error.timeout,
                        permanent=o.error.permanent,
                    )
                    if o.error is not None
                    else ErrorSummary(type="Error", message="failed")
                    if o.kind == "failed"
                    else None
                ),
                worker=worker,
            )
            for o in self.outcomes
        ]
        return started, progress, outcomes


class ReportOut(_Out):
    accepted: int = 0
