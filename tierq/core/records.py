"""Records the scheduler keeps besides tasks (and ``WorkflowBook``, the keeper of the workflow
records), what its queries return, and its snapshot format."""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import Generic, TypeVar

import msgspec

from .admission import AdmissionStatistics
from .breaker import BreakerState, BreakerStatistics
from .live import LiveTask
from .model import AttemptRecord, FailurePolicy, RegionInfo, TaskState
from .pqueue import QueueStatistics
from .schedule_records import ScheduleRecord
from .settings import Settings

__all__ = [
    "BreakerSnapshot",
    "RegionSnapshot",
    "SchedulerStatistics",
    "Snapshot",
    "Totals",
    "WorkflowBook",
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


class WorkflowBook:
    """The scheduler's workflows: their records, how many of each one's tasks are still open,
    which are ready to finish, their idempotency keys, and when finished ones may go.

    It owns that state; the scheduler changes it only through these methods (from ``apply``),
    and the queries read it through them."""

    __slots__ = ("_done", "_idem", "_levels", "_open", "_records", "_retention")

    def __init__(self) -> None:
        self._records: dict[str, WorkflowRecord] = {}
        #: Workflow -> how many of its tasks are not terminal.
        self._open: dict[str, int] = {}
        #: Workflows whose tasks are all terminal, not yet marked finished.
        self._done: set[str] = set()
        self._idem: dict[str, str] = {}
        #: Topological level of each node, by workflow: a cache for views (a workflow's graph
        #: never changes), filled on first view; not part of the state or its snapshot.
        self._levels: dict[str, list[int]] = {}
        #: (finished at, workflow id): eviction candidates.
        self._retention: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, wf_id: str) -> WorkflowRecord:
        return self._records[wf_id]

    def get(self, wf_id: str) -> WorkflowRecord | None:
        return self._records.get(wf_id)

    def ids(self) -> list[str]:
        """Every workflow id, in submission (= id) order, also on replay."""
        return list(self._records)

    def records(self) -> list[WorkflowRecord]:
        return list(self._records.values())

    def by_key(self, idempotency_key: str) -> str | None:
        return self._idem.get(idempotency_key)

    def open_tasks(self, wf_id: str) -> int:
        """How many of the workflow's tasks are not terminal (0 for an unknown one)."""
        return self._open.get(wf_id, 0)

    def policy(self, wf_id: str) -> FailurePolicy:
        rec = self._records.get(wf_id)
        return FailurePolicy.SKIP_DEPENDENTS if rec is None else rec.policy

    def levels(self, wf_id: str, compute: Callable[[], list[int]]) -> list[int]:
        """The nodes' topological levels, computed once per workflow."""
        levels = self._levels.get(wf_id)
        if levels is None:
            levels = self._levels[wf_id] = compute()
        return levels

    def add(self, rec: WorkflowRecord) -> None:
        """A new workflow, none of whose tasks is terminal yet."""
        self._records[rec.id] = rec
        self._open[rec.id] = len(rec.nodes)
        if rec.idempotency_key is not None:
            self._idem[rec.idempotency_key] = rec.id

    def task_ended(self, wf_id: str) -> None:
        """One of the workflow's tasks became terminal."""
        left = self._open.get(wf_id)
        if left is not None:
            self._open[wf_id] = left - 1
            if left == 1:
                self._done.add(wf_id)

    def task_reopened(self, wf_id: str) -> None:
        """One of the workflow's tasks left a terminal state (a manual retry): the workflow
        is running again."""
        if wf_id in self._open:
            self._open[wf_id] += 1
            self._done.discard(wf_id)
            rec = self._records[wf_id]
            rec.state = None
            rec.finished_at = None

    def finishing(self) -> list[str]:
        """The workflows whose tasks are all terminal and that are not marked finished, by id."""
        return sorted(self._done) if self._done else []

    def finish(self, wf_id: str, state: str, at: float) -> None:
        rec = self._records[wf_id]
        rec.state = state
        rec.finished_at = at
        self._done.discard(wf_id)
        heappush(self._retention, (at, wf_id))

    def due(self, limit: float) -> list[WorkflowRecord]:
        """The finished workflows whose retention started at or before ``limit``, taken off
        the retention heap (a workflow revived since, or gone, is skipped)."""
        out: list[WorkflowRecord] = []
        retention = self._retention
        while retention and retention[0][0] <= limit:
            rec = self._records.get(heappop(retention)[1])
            if rec is not None and rec.finished_at is not None:
                out.append(rec)
        return out

    def next_due(self) -> float | None:
        """When the earliest finished workflow's retention started, if any."""
        return self._retention[0][0] if self._retention else None

    def drop(self, wf_id: str) -> None:
        """Forget an evicted workflow, and its idempotency key."""
        rec = self._records.pop(wf_id, None)
        self._open.pop(wf_id, None)
        self._levels.pop(wf_id, None)
        key = rec.idempotency_key if rec is not None else None
        if key is not None and self._idem.get(key) == wf_id:
            del self._idem[key]

    def restore(self, records: list[WorkflowRecord]) -> None:
        """Put back the records of a snapshot; ``count_open`` then ``restored`` follow."""
        for rec in records:
            self._records[rec.id] = rec
            if rec.idempotency_key is not None:
                self._idem[rec.idempotency_key] = rec.id
            self._open[rec.id] = 0

    def count_open(self, wf_id: str) -> None:
        """Restore: one more task of the workflow is not terminal."""
        if wf_id in self._open:
            self._open[wf_id] += 1

    def restored(self) -> None:
        """Restore: derive which workflows are done and the retention heap."""
        for wf_id, rec in self._records.items():
            if rec.state is None and self._open[wf_id] == 0:
                self._done.add(wf_id)
            if rec.finished_at is not None:
                self._retention.append((rec.finished_at, wf_id))
        heapify(self._retention)


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


#: What a snapshot's ``tasks`` holds: chunks of ``LiveTask`` since schema 2, ``Task`` in 1.
TaskRecord = TypeVar("TaskRecord")


class Snapshot(msgspec.Struct, Generic[TaskRecord], kw_only=True, omit_defaults=True):
    """Everything needed to continue from a point in the log, in a canonical order."""

    schema_version: int
    settings: Settings
    id_last_ms: int
    id_counter: int
    #: Next FIFO sequence number of the ready queue.
    seq: int
    totals: Totals
    #: Schema 2: the ``LiveTask`` records in chunks (lists of ``snapshots.CHUNK``), so a
    #: restore decodes them a chunk at a time; schema 1: the ``Task`` records.
    tasks: list[TaskRecord]
    #: Schema 1 only: READY tasks as (id, seq), in seq order. Schema 2 leaves it empty: a
    #: READY task's ``ready_key`` holds its seq.
    queue: list[tuple[str, int]] = []
    workflows: list[WorkflowRecord]
    regions: list[RegionSnapshot]
    breakers: list[BreakerSnapshot]
    #: The last durable-intake entry applied.
    intake_seq: int = 0
    #: Every schedule, by id.
    schedules: list[ScheduleRecord] = []


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


def stamp(task: LiveTask, state: str, at: float) -> None:
    """Record that ``task`` entered ``state`` at ``at``.

    A task submitted straight into READY starts with an empty ``timestamps`` (a shared one):
    its "ready" time is its ``submitted_at``. Its dict is made on the first later transition,
    which a lease reaches while the task's record is in the cache, instead of at submit, after
    which a million-task queue lets it go cold. So an empty dict is never written to.
    """
    x = task.extra  # the timestamps without the property call: this runs per transition
    if x is not None and x.timestamps:
        x.timestamps[state] = at
    else:
        task.timestamps = {"ready": task.submitted_at, state: at}


def stamps(task: LiveTask) -> dict[str, float]:
    """A copy of the task's timestamps with the implied "ready" of ``stamp`` filled in."""
    ts = task.timestamps
    return dict(ts) if ts else {"ready": task.submitted_at}


def ready_at(task: LiveTask) -> float:
    """When the READY task became READY (its enqueue time for an aging queue)."""
    return task.timestamps.get("ready", task.submitted_at)


def assignment_record(task: LiveTask) -> AttemptRecord:
    """A new record of the task's current assignment (the scheduler makes it lazily)."""
    return AttemptRecord(
        attempt=task.attempt, region=task.region, assigned_at=task.timestamps.get("assigned")
    )
