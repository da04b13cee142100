"""Records the scheduler keeps besides tasks, what its queries return, and its snapshot format."""

from __future__ import annotations

import msgspec

from .admission import AdmissionStatistics
from .breaker import BreakerState, BreakerStatistics
from .model import AttemptRecord, FailurePolicy, RegionInfo, Task, TaskState
from .pqueue import QueueStatistics
from .settings import Settings

__all__ = [
    "BreakerSnapshot",
    "RegionSnapshot",
    "SchedulerStatistics",
    "Snapshot",
    "Totals",
    "WorkflowNodeView",
    "WorkflowRecord",
    "WorkflowSummary",
    "WorkflowView",
    "assignment_record",
    "ready_at",
    "stamp",
    "stamps",
]


class WorkflowRecord(msgspec.Struct, kw_only=True):
    """A submitted workflow. ``nodes`` lists its tasks parents-first (topological order)."""

    id: str
    name: str
    policy: FailurePolicy
    #: Task id by workflow key, in topological order.
    nodes: dict[str, str]
    #: (parent id, child id) pairs inside the workflow.
    edges: list[tuple[str, str]]
    submitted_at: float
    idempotency_key: str | None = None
    #: Fingerprint of the submitted spec, to tell a retry from a conflicting reuse of the key.
    digest: str | None = None
    #: succeeded | failed | cancelled once every task is terminal, else None.
    state: str | None = None
    finished_at: float | None = None


class Totals(msgspec.Struct, kw_only=True):
    """Running totals since the log began (replayed with it)."""

    submitted: int = 0
    succeeded: int = 0
    dead: int = 0
    cancelled: int = 0
    skipped: int = 0
    duplicate_reports: int = 0
    evicted: int = 0


class RegionSnapshot(msgspec.Struct, kw_only=True):
    info: RegionInfo
    expires_at: float
    last_renewed: float


class BreakerSnapshot(msgspec.Struct, kw_only=True):
    scope: str
    region: str | None
    name: str
    state: BreakerState
    window: list[bool]
    opened_at: float | None
    probe: str | None


class Snapshot(msgspec.Struct, kw_only=True):
    """Everything needed to continue from a point in the log, in a canonical order."""

    schema_version: int
    settings: Settings
    id_last_ms: int
    id_counter: int
    #: Next FIFO sequence number of the ready queue.
    seq: int
    totals: Totals
    tasks: list[Task]
    #: READY tasks as (id, seq), in seq order.
    queue: list[tuple[str, int]]
    workflows: list[WorkflowRecord]
    regions: list[RegionSnapshot]
    breakers: list[BreakerSnapshot]


class WorkflowSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the workflow list: no nodes, only how far it got."""

    id: str
    name: str
    policy: FailurePolicy
    submitted_at: float
    total: int
    #: Terminal tasks (succeeded, dead, cancelled, skipped).
    done: int
    #: succeeded | failed | cancelled once every task is terminal, else None (running).
    state: str | None
    finished_at: float | None


class WorkflowNodeView(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    task_id: str
    name: str
    #: None when the task was already evicted.
    state: TaskState | None
    #: Topological level for drawing (0 = no parents inside the workflow).
    level: int


class WorkflowView(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow, with one page of its nodes (all of them unless a limit was asked for).

    ``counts``, ``total``, ``done`` and ``state`` always cover the whole workflow. ``nodes``
    are in topological order from the page's cursor; ``edges`` are the edges into those nodes.
    ``next_cursor`` fetches the next page (None on the last).
    """

    id: str
    name: str
    policy: FailurePolicy
    submitted_at: float
    nodes: list[WorkflowNodeView]
    edges: list[tuple[str, str]]
    #: Tasks by state value.
    counts: dict[str, int]
    total: int
    #: Terminal tasks (succeeded, dead, cancelled, skipped).
    done: int
    state: str | None
    finished_at: float | None
    next_cursor: str | None = None


class SchedulerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """What the dashboard and the metrics exporter read (trio-style ``statistics()``)."""

    now: float
    tasks: int
    by_state: dict[str, int]
    #: Waiting tasks (PENDING, READY, FAILED) by queue.
    waiting_by_queue: dict[str, int]
    #: Waiting tasks by priority band: low (<0), normal (0), high (1..499), critical (>=500).
    waiting_by_band: dict[str, int]
    #: Tasks held (ASSIGNED or RUNNING) by region.
    held_by_region: dict[str, int]
    #: READY tasks.
    queue_depth: int
    #: READY tasks by task name.
    ready_by_name: dict[str, int]
    workflows: int
    regions: int
    admission: AdmissionStatistics
    breakers: list[BreakerStatistics]
    queue: QueueStatistics
    totals: Totals


def stamp(task: Task, state: str, at: float) -> None:
    """Record that ``task`` entered ``state`` at ``at``.

    A task submitted straight into READY starts with an empty ``timestamps`` (a shared one):
    its "ready" time is its ``submitted_at``. Its dict is made on the first later transition,
    which a lease reaches while the task's record is in the cache, instead of at submit, after
    which a million-task queue lets it go cold. So an empty dict is never written to.
    """
    ts = task.timestamps
    if ts:
        ts[state] = at
    else:
        task.timestamps = {"ready": task.submitted_at, state: at}


def stamps(task: Task) -> dict[str, float]:
    """A copy of the task's timestamps with the implied "ready" of ``stamp`` filled in."""
    ts = task.timestamps
    return dict(ts) if ts else {"ready": task.submitted_at}


def ready_at(task: Task) -> float:
    """When the READY task became READY (its enqueue time for an aging queue)."""
    return task.timestamps.get("ready", task.submitted_at)


def assignment_record(task: Task) -> AttemptRecord:
    """A new record of the task's current assignment (the scheduler makes it lazily)."""
    return AttemptRecord(
        attempt=task.attempt, region=task.region, assigned_at=task.timestamps.get("assigned")
    )
