"""What the core returns: one record per transition, each enough to replay it.

Every event is a frozen msgspec Struct tagged by ``kind`` (snake_case), and ``Event`` is their
union, so ``msgspec.msgpack.Decoder(list[Event])`` decodes a batch from the log. ``event_kind``
gives the tag (the NATS subject suffix ``events.<kind>``). Events hold no reference cycles, so they
are built with ``gc=False`` (cheaper to create, invisible to the cyclic collector).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .model import ErrorSummary, FailurePolicy, JSONValue, RegionInfo, TaskSpec, TaskState
from .schedule_records import ScheduleSpec
from .settings import Settings

__all__ = [
    "EVENT_KINDS",
    "BreakerClosed",
    "BreakerHalfOpen",
    "BreakerOpened",
    "BreakerScope",
    "Event",
    "IntakeApplied",
    "RegionExpired",
    "RegionHeartbeat",
    "RegionRegistered",
    "ScheduleCreated",
    "ScheduleDeleted",
    "ScheduleFired",
    "SchedulePaused",
    "ScheduleResumed",
    "ScheduleUpdated",
    "SettingsChanged",
    "TaskAssigned",
    "TaskCancelled",
    "TaskDead",
    "TaskDeadlineBoosted",
    "TaskDuplicateReport",
    "TaskFailed",
    "TaskProgress",
    "TaskReady",
    "TaskRefused",
    "TaskReprioritized",
    "TaskRetried",
    "TaskSkipped",
    "TaskStarted",
    "TaskSubmitted",
    "TaskSucceeded",
    "TasksAssigned",
    "TasksEvicted",
    "WorkflowFinished",
    "WorkflowSubmitted",
    "event_kind",
    "event_task_id",
]

#: "task" breakers are keyed by (region, task name); "resource" breakers by the resource alone.
BreakerScope = Literal["task", "resource"]


class _Base(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", gc=False):
    #: When it happened (the ``now`` of the command that caused it), epoch seconds.
    at: float


class TaskSubmitted(_Base, frozen=True, gc=False, tag="task_submitted"):
    """A task was accepted. ``state`` is PENDING (parents or ``not_before`` pending) or READY."""

    id: str
    spec: TaskSpec
    state: TaskState
    workflow_id: str | None = None
    #: Parent task ids (workflow keys already resolved).
    parents: tuple[str, ...] = ()
    not_before: float | None = None
    #: The args use {"$result": parent} (found while validating; saves a second walk).
    uses_results: bool = False


class WorkflowSubmitted(_Base, frozen=True, gc=False, tag="workflow_submitted"):
    """A workflow was accepted; its tasks follow as ``task_submitted``, parents first."""

    id: str
    name: str
    policy: FailurePolicy
    #: Task id by workflow key.
    nodes: dict[str, str]
    #: (parent id, child id) pairs inside the workflow.
    edges: list[tuple[str, str]] = []
    idempotency_key: str | None = None
    #: Digest of the submitted spec when it carries an idempotency key.
    digest: str | None = None


class TaskReady(_Base, frozen=True, gc=False, tag="task_ready"):
    """PENDING or FAILED -> READY (dependencies met, ``run_at`` or retry time reached)."""

    id: str
    attempt: int


class TaskAssigned(_Base, frozen=True, gc=False, tag="task_assigned"):
    """READY -> ASSIGNED: handed to ``region`` for ``attempt``."""

    id: str
    attempt: int
    region: str


class TasksAssigned(_Base, frozen=True, gc=False, tag="tasks_assigned"):
    """READY -> ASSIGNED for every task one lease call handed to ``region``, in the order they
    were handed out; ``attempts[i]`` is the attempt of ``ids[i]``.

    One event per lease call instead of one ``task_assigned`` per task: a lease of 1,000 tasks
    was 1,000 structs to build, apply, log and publish. ``task_assigned`` is still applied, so
    older logs replay.
    """

    region: str
    ids: list[str]
    attempts: list[int]


class TaskStarted(_Base, frozen=True, gc=False, tag="task_started"):
    id: str
    attempt: int
    worker: str


class TaskProgress(_Base, frozen=True, gc=False, tag="task_progress"):
    id: str
    attempt: int
    fraction: float
    message: str | None = None


class TaskSucceeded(_Base, frozen=True, gc=False, tag="task_succeeded"):
    id: str
    attempt: int
    result: JSONValue = None
    worker: str | None = None


class TaskFailed(_Base, frozen=True, gc=False, tag="task_failed"):
    """An attempt failed (or was lost). ``retry_at`` set: READY again then; None: DEAD follows."""

    id: str
    attempt: int
    error: ErrorSummary
    retry_at: float | None = None
    worker: str | None = None


class TaskDead(_Base, frozen=True, gc=False, tag="task_dead"):
    """FAILED -> DEAD: out of attempts or not retryable."""

    id: str
    attempt: int
    reason: str


class TaskCancelled(_Base, frozen=True, gc=False, tag="task_cancelled"):
    """-> CANCELLED. ``region`` is set when a region held it: that region should stop it."""

    id: str
    reason: str
    attempt: int = 0
    region: str | None = None


class TaskSkipped(_Base, frozen=True, gc=False, tag="task_skipped"):
    """PENDING -> SKIPPED because ``parent`` failed, was skipped or was cancelled."""

    id: str
    reason: str
    parent: str


class TaskReprioritized(_Base, frozen=True, gc=False, tag="task_reprioritized"):
    id: str
    old: int
    new: int


class TaskDeadlineBoosted(_Base, frozen=True, gc=False, tag="task_deadline_boosted"):
    """The task came within the deadline window and gained ``boost`` points."""

    id: str
    boost: int


class TaskRetried(_Base, frozen=True, gc=False, tag="task_retried"):
    """Manual retry: -> ``state`` (READY, or PENDING while parents are unfinished) with a fresh
    attempt budget. Dependents skipped because of this task come back as PENDING the same way."""

    id: str
    attempt: int
    state: TaskState


class TaskDuplicateReport(_Base, frozen=True, gc=False, tag="task_duplicate_report"):
    """A report for an attempt that is not current (or a finished task). Counted, not applied."""

    id: str
    attempt: int
    what: str


class TasksEvicted(_Base, frozen=True, gc=False, tag="tasks_evicted"):
    """Terminal tasks (and finished workflows) dropped after the retention period."""

    ids: list[str]
    workflows: list[str] = []


class RegionRegistered(_Base, frozen=True, gc=False, tag="region_registered"):
    info: RegionInfo


class RegionHeartbeat(_Base, frozen=True, gc=False, tag="region_heartbeat"):
    """The region's lease was renewed until ``at + region_lease_seconds``."""

    name: str
    instance: str


class RegionExpired(_Base, frozen=True, gc=False, tag="region_expired"):
    """The lease ran out; what the region held was re-queued by the events before this one."""

    name: str
    instance: str


class BreakerOpened(_Base, frozen=True, gc=False, tag="breaker_opened"):
    scope: BreakerScope
    name: str
    region: str | None = None
    failures: int = 0
    samples: int = 0


class BreakerHalfOpen(_Base, frozen=True, gc=False, tag="breaker_half_open"):
    scope: BreakerScope
    name: str
    region: str | None = None


class BreakerClosed(_Base, frozen=True, gc=False, tag="breaker_closed"):
    scope: BreakerScope
    name: str
    region: str | None = None


class SettingsChanged(_Base, frozen=True, gc=False, tag="settings_changed"):
    settings: Settings


class WorkflowFinished(_Base, frozen=True, gc=False, tag="workflow_finished"):
    """Every task of the workflow is terminal. ``state``: succeeded, failed or cancelled."""

    id: str
    state: str


class TaskRefused(_Base, frozen=True, gc=False, tag="task_refused"):
    """An entry of the durable intake the master could not accept (its queue full, a spec
    its rules refuse, a parent it does not know): the client already holds the id, so the
    task is recorded DEAD with the reason rather than dropped."""

    id: str
    spec: TaskSpec
    reason: str


class IntakeApplied(_Base, frozen=True, gc=False, tag="intake_applied"):
    """Every durable-intake entry up to sequence ``upto`` is applied: the events they caused
    precede this one in the same atomic append, so they are in the log together or not."""

    upto: int


class ScheduleCreated(_Base, frozen=True, gc=False, tag="schedule_created"):
    """A schedule was made; ``next_fire`` is its first fire time (computed by the master)."""

    schedule: str
    spec: ScheduleSpec
    next_fire: float | None
    #: "api" or "code" (declared in a worker's app).
    source: str = "api"


class ScheduleUpdated(_Base, frozen=True, gc=False, tag="schedule_updated"):
    schedule: str
    spec: ScheduleSpec
    next_fire: float | None


class ScheduleDeleted(_Base, frozen=True, gc=False, tag="schedule_deleted"):
    schedule: str


class SchedulePaused(_Base, frozen=True, gc=False, tag="schedule_paused"):
    schedule: str
    note: str | None = None


class ScheduleResumed(_Base, frozen=True, gc=False, tag="schedule_resumed"):
    """Fires resume at ``next_fire``: the times missed while paused are not fired."""

    schedule: str
    next_fire: float | None


class ScheduleFired(_Base, frozen=True, gc=False, tag="schedule_fired"):
    """One fire time of a schedule was decided: the key is (``schedule``, ``fire_time``).

    ``outcome``: started (``task_id`` or ``workflow_id`` is the run; its submission events
    precede this one in the same append), skipped or buffered (overlap policy), missed
    (outside the catch-up window: ``missed`` fire times up to ``fire_time``) or refused
    (``reason``). ``trigger``: scheduled, manual (trigger), backfill, or buffered (a buffered
    fire started once the run before it finished). With ``advance`` (scheduled fires), the
    schedule's last fire becomes ``fire_time`` and its next one ``next_fire``, as the master
    computed it: a replay never computes a fire time.
    """

    schedule: str
    fire_time: float
    trigger: str
    outcome: str
    task_id: str | None = None
    workflow_id: str | None = None
    reason: str | None = None
    advance: bool = False
    next_fire: float | None = None
    missed: int = 0


Event = (
    TaskSubmitted
    | WorkflowSubmitted
    | TaskReady
    | TaskAssigned
    | TasksAssigned
    | TaskStarted
    | TaskProgress
    | TaskSucceeded
    | TaskFailed
    | TaskDead
    | TaskCancelled
    | TaskSkipped
    | TaskReprioritized
    | TaskDeadlineBoosted
    | TaskRetried
    | TaskDuplicateReport
    | TasksEvicted
    | RegionRegistered
    | RegionHeartbeat
    | RegionExpired
    | BreakerOpened
    | BreakerHalfOpen
    | BreakerClosed
    | SettingsChanged
    | WorkflowFinished
    | TaskRefused
    | IntakeApplied
    | ScheduleCreated
    | ScheduleUpdated
    | ScheduleDeleted
    | SchedulePaused
    | ScheduleResumed
    | ScheduleFired
)

_KINDS: dict[type, str] = {cls: str(cls.__struct_config__.tag) for cls in _Base.__subclasses__()}
#: Every event kind, sorted.
EVENT_KINDS: tuple[str, ...] = tuple(sorted(_KINDS.values()))
_NOT_TASK = (WorkflowSubmitted, WorkflowFinished, TasksEvicted, TasksAssigned, IntakeApplied)


def event_kind(ev: Event) -> str:
    """The event's tag, e.g. ``"task_ready"`` (NATS subject suffix ``events.<kind>``)."""
    return _KINDS[type(ev)]


def event_task_id(ev: Event) -> str | None:
    """The task the event is about, or None (workflow, region, breaker, settings events)."""
    if isinstance(ev, _NOT_TASK):
        return None
    task_id = getattr(ev, "id", None)
    return task_id if isinstance(task_id, str) else None
