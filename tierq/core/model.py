"""The task model: what a client submits, what the scheduler tracks, what a worker receives.

Every struct here is plain data (msgspec), versioned through ``SCHEMA_VERSION`` so a log written
by one release can be read by the next. Arguments and results are JSON-compatible values only.

The structs are declared ``gc=False``: they never take part in a reference cycle (they hold JSON
values, strings and other such structs), so the cyclic collector need not track them. With a
million queued tasks that halves the time the collector spends on the scheduler's heap. Do not
store an object that refers back to the struct holding it.
"""

from __future__ import annotations

import enum

import msgspec

#: Bumped whenever a struct below or the snapshot format changes incompatibly; stored in
#: snapshots. 2: snapshots hold the scheduler's ``LiveTask`` records (``live.py``), not ``Task``;
#: a snapshot of schema 1 is still read.
SCHEMA_VERSION = 2

#: Priorities are integers; higher runs first.
PRIORITY_MIN = -1000
PRIORITY_MAX = 1000
PRIORITY_DEFAULT = 0

#: A JSON-compatible value (what args, kwargs and results may hold). msgspec cannot decode a
#: recursive alias, so the static type is ``object`` and the core checks the shape at submit.
JSONValue = object


class TaskState(enum.Enum):
    """Where a task is in its life; see ``states.py`` for the allowed transitions."""

    #: Waiting on dependencies or on its ``run_at`` time.
    PENDING = "pending"
    #: In the master's ready queue, eligible to be placed on a region.
    READY = "ready"
    #: Handed to a region (held under the region's lease), not yet started by a worker.
    ASSIGNED = "assigned"
    #: A worker is running it under a worker lease.
    RUNNING = "running"
    #: Finished with a result. Terminal.
    SUCCEEDED = "succeeded"
    #: The last attempt failed; waiting for its retry backoff to elapse.
    FAILED = "failed"
    #: Out of attempts (or a non-retryable error). Terminal until retried by hand.
    DEAD = "dead"
    #: Cancelled by a user or by a cascade. Terminal.
    CANCELLED = "cancelled"
    #: Never ran because an upstream task failed. Terminal.
    SKIPPED = "skipped"

    # Members are singletons compared by identity, so identity hashing is consistent with
    # equality; Enum's own __hash__ is Python code and showed up as the top cost of the
    # scheduler's hot path (every dict and set lookup keyed by state).
    __hash__ = object.__hash__


TERMINAL_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.DEAD, TaskState.CANCELLED, TaskState.SKIPPED}
)


class FailurePolicy(enum.Enum):
    """What a workflow does when one of its tasks ends DEAD."""

    #: Dependents of the failed task are SKIPPED; independent branches go on.
    SKIP_DEPENDENTS = "skip_dependents"
    #: Every unfinished task of the workflow is cancelled.
    FAIL_WORKFLOW = "fail_workflow"
    #: Dependents still run (they see the parent's error instead of a result).
    CONTINUE = "continue"


class RetryPolicy(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """How a failed attempt is retried: exponential backoff with jitter, capped."""

    max_attempts: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    #: Fraction of the delay drawn at random (0 = none, 1 = full jitter).
    jitter: float = 0.2
    #: Error type names that retry; empty means every error retries.
    retry_on: tuple[str, ...] = ()


class TaskSpec(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """What a client submits. Validated by the core before it is accepted."""

    name: str
    args: list[JSONValue] = []
    kwargs: dict[str, JSONValue] = {}
    priority: int = PRIORITY_DEFAULT
    #: Earliest start, seconds since the epoch (UTC).
    run_at: float | None = None
    #: Wanted finish time; approaching it boosts the priority.
    deadline: float | None = None
    #: Only this region may run it.
    region: str | None = None
    #: Labels the region must offer (e.g. "gpu").
    labels: tuple[str, ...] = ()
    #: Ids of existing tasks (or, inside a workflow, local keys) that must succeed first.
    depends_on: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    #: Execution timeout of one attempt, seconds.
    timeout: float | None = None
    idempotency_key: str | None = None
    queue: str = "default"
    #: A declared resource (e.g. "db:orders") with its own circuit breaker.
    resource: str | None = None


class WorkflowNode(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """One task of a workflow, named by a key local to the submission."""

    key: str
    spec: TaskSpec


class WorkflowSpec(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """A DAG submitted atomically: nodes plus (parent_key, child_key) edges."""

    nodes: list[WorkflowNode]
    edges: list[tuple[str, str]] = []
    name: str = "workflow"
    on_failure: FailurePolicy = FailurePolicy.SKIP_DEPENDENTS
    idempotency_key: str | None = None


class ErrorSummary(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """Why an attempt failed, as reported by the worker (plain data, never an exception object)."""

    type: str
    message: str
    traceback: str | None = None
    #: The failure came from the infrastructure (worker or region lost), not from the task.
    lost: bool = False
    timeout: bool = False
    #: Retrying cannot help (arguments that do not fit the function, a result that cannot
    #: travel as JSON): the task is not retried and the failure does not feed a breaker.
    permanent: bool = False


class OutcomeKind(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: The worker or region holding the attempt disappeared.
    LOST = "lost"


class Outcome(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """The end of one attempt, reported by a region on behalf of its worker."""

    task_id: str
    attempt: int
    kind: OutcomeKind
    result: JSONValue = None
    error: ErrorSummary | None = None
    worker: str | None = None


class Started(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """A worker began an attempt."""

    task_id: str
    attempt: int
    worker: str


class Progress(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    task_id: str
    attempt: int
    fraction: float
    message: str | None = None


class RegionInfo(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """What a region declares when it registers: where it is and what it can run."""

    name: str
    #: Changes on every start of the region process; a new instance releases the old one's tasks.
    instance: str
    labels: tuple[str, ...] = ()
    #: Task names its workers can run; empty means none registered yet.
    task_types: tuple[str, ...] = ()
    #: The options a task type declares in code (``@app.task(timeout=..., retries=...)``),
    #: by name: applied to submissions by name that leave them out (see ``declared.py``).
    declared: dict[str, TaskSpec] = {}


class LeasedTask(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """A task as handed to a region and then to a worker: everything needed to run one attempt."""

    id: str
    attempt: int
    name: str
    args: list[JSONValue] = []
    kwargs: dict[str, JSONValue] = {}
    priority: int = PRIORITY_DEFAULT
    timeout: float | None = None
    deadline: float | None = None
    labels: tuple[str, ...] = ()
    resource: str | None = None
    queue: str = "default"
    workflow_id: str | None = None
    #: Results of the parents, keyed by the parent's task id.
    parent_results: dict[str, JSONValue] = {}
    submitted_at: float = 0.0


class Task(msgspec.Struct, gc=False, kw_only=True, omit_defaults=True):
    """A task as queries, the API and the SDK see it. The master keeps a slimmer record of
    the same fields (``live.LiveTask``) and builds this one for each query."""

    id: str
    spec: TaskSpec
    state: TaskState
    submitted_at: float
    attempt: int = 1
    workflow_id: str | None = None
    #: Resolved parent task ids (workflow keys already mapped to ids).
    parents: tuple[str, ...] = ()
    #: Current effective base priority (the spec's, or as changed at run time).
    priority: int = PRIORITY_DEFAULT
    region: str | None = None
    worker: str | None = None
    result: JSONValue = None
    error: ErrorSummary | None = None
    progress: float = 0.0
    progress_message: str | None = None
    #: When the task may next become READY (run_at or retry backoff).
    not_before: float | None = None
    #: Points added to ``priority`` because the deadline is near (0 until then).
    boost: int = 0
    #: Attempts before the current retry budget (raised by a manual retry).
    retry_base: int = 0
    #: Why the task is DEAD, CANCELLED or SKIPPED.
    reason: str | None = None
    #: Time of each transition, by state value (e.g. {"ready": 1.7e9}); latest wins.
    timestamps: dict[str, float] = {}
    #: One entry per attempt: (attempt, started_at, ended_at, outcome, worker).
    history: list[AttemptRecord] = []
    #: Scheduler bookkeeping (the ready queue token of a READY task, see readyq.py); queries
    #: leave it out. Kept so the wire shape stays the same.
    ready_key: int | None = None


class AttemptRecord(msgspec.Struct, gc=False, kw_only=True, omit_defaults=True):
    attempt: int
    region: str | None = None
    worker: str | None = None
    assigned_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None
    error: ErrorSummary | None = None
