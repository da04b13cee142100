"""The pure scheduling core: commands in, events out, no I/O, no clock or random reads.

Services feed a ``SchedulerState`` commands with ``now`` and get back the events to append to
the log; ``apply`` replays them. Everything public is re-exported here.
"""

import warnings

from .admission import (
    AdmissionLevel as AdmissionLevel,
)
from .admission import (
    AdmissionStatistics as AdmissionStatistics,
)
from .admission import (
    admission_level as admission_level,
)
from .admission import (
    check_admission as check_admission,
)
from .breaker import (
    BreakerState as BreakerState,
)
from .breaker import (
    BreakerStatistics as BreakerStatistics,
)
from .breaker import (
    CircuitBreaker as CircuitBreaker,
)
from .dag import (
    WorkflowPlan as WorkflowPlan,
)
from .dag import (
    plan_workflow as plan_workflow,
)
from .dag import (
    topological_levels as topological_levels,
)
from .events import (
    EVENT_KINDS as EVENT_KINDS,
)
from .events import (
    BreakerClosed as BreakerClosed,
)
from .events import (
    BreakerHalfOpen as BreakerHalfOpen,
)
from .events import (
    BreakerOpened as BreakerOpened,
)
from .events import (
    Event as Event,
)
from .events import (
    IntakeApplied as IntakeApplied,
)
from .events import (
    RegionExpired as RegionExpired,
)
from .events import (
    RegionHeartbeat as RegionHeartbeat,
)
from .events import (
    RegionRegistered as RegionRegistered,
)
from .events import ScheduleCreated as ScheduleCreated
from .events import ScheduleDeleted as ScheduleDeleted
from .events import ScheduleFired as ScheduleFired
from .events import SchedulePaused as SchedulePaused
from .events import ScheduleResumed as ScheduleResumed
from .events import ScheduleUpdated as ScheduleUpdated
from .events import (
    SettingsChanged as SettingsChanged,
)
from .events import (
    TaskAssigned as TaskAssigned,
)
from .events import (
    TaskCancelled as TaskCancelled,
)
from .events import (
    TaskDead as TaskDead,
)
from .events import (
    TaskDeadlineBoosted as TaskDeadlineBoosted,
)
from .events import (
    TaskDuplicateReport as TaskDuplicateReport,
)
from .events import (
    TaskFailed as TaskFailed,
)
from .events import (
    TaskProgress as TaskProgress,
)
from .events import (
    TaskReady as TaskReady,
)
from .events import (
    TaskRefused as TaskRefused,
)
from .events import (
    TaskReprioritized as TaskReprioritized,
)
from .events import (
    TaskRetried as TaskRetried,
)
from .events import (
    TasksAssigned as TasksAssigned,
)
from .events import (
    TasksEvicted as TasksEvicted,
)
from .events import (
    TaskSkipped as TaskSkipped,
)
from .events import (
    TaskStarted as TaskStarted,
)
from .events import (
    TaskSubmitted as TaskSubmitted,
)
from .events import (
    TaskSucceeded as TaskSucceeded,
)
from .events import (
    WorkflowFinished as WorkflowFinished,
)
from .events import (
    WorkflowSubmitted as WorkflowSubmitted,
)
from .events import (
    event_kind as event_kind,
)
from .events import (
    event_task_id as event_task_id,
)
from .ids import WORKFLOW_PREFIX as WORKFLOW_PREFIX
from .ids import IdGenerator as IdGenerator
from .intake import (
    IntakeItem as IntakeItem,
)
from .leases import LeaseTable as LeaseTable
from .leases import RegionView as RegionView
from .model import (
    PRIORITY_DEFAULT as PRIORITY_DEFAULT,
)
from .model import (
    PRIORITY_MAX as PRIORITY_MAX,
)
from .model import (
    PRIORITY_MIN as PRIORITY_MIN,
)
from .model import (
    SCHEMA_VERSION as SCHEMA_VERSION,
)
from .model import (
    TERMINAL_STATES as TERMINAL_STATES,
)
from .model import (
    AttemptRecord as AttemptRecord,
)
from .model import (
    ErrorSummary as ErrorSummary,
)
from .model import (
    FailurePolicy as FailurePolicy,
)
from .model import (
    JSONValue as JSONValue,
)
from .model import (
    LeasedTask as LeasedTask,
)
from .model import (
    Outcome as Outcome,
)
from .model import (
    OutcomeKind as OutcomeKind,
)
from .model import (
    Progress as Progress,
)
from .model import (
    RegionInfo as RegionInfo,
)
from .model import (
    RetryPolicy as RetryPolicy,
)
from .model import (
    Started as Started,
)
from .model import (
    Task as Task,
)
from .model import (
    TaskSpec as TaskSpec,
)
from .model import (
    TaskState as TaskState,
)
from .model import (
    WorkflowNode as WorkflowNode,
)
from .model import (
    WorkflowSpec as WorkflowSpec,
)
from .pqueue import QueueStatistics as QueueStatistics
from .records import (
    SchedulerStatistics as SchedulerStatistics,
)
from .records import (
    Totals as Totals,
)
from .records import (
    WorkflowNodeView as WorkflowNodeView,
)
from .records import (
    WorkflowSummary as WorkflowSummary,
)
from .records import (
    WorkflowView as WorkflowView,
)
from .retry import (
    RandomSource as RandomSource,
)
from .retry import (
    backoff_delay as backoff_delay,
)
from .retry import (
    retry_decision as retry_decision,
)
from .schedule_records import ScheduleRecord as ScheduleRecord
from .schedule_records import ScheduleRun as ScheduleRun
from .schedule_records import ScheduleSpec as ScheduleSpec
from .scheduler import SchedulerState as SchedulerState
from .settings import (
    AdmissionSettings as AdmissionSettings,
)
from .settings import (
    AutoscaleRegion as AutoscaleRegion,
)
from .settings import (
    AutoscaleSettings as AutoscaleSettings,
)
from .settings import (
    AutoscaleTaskType as AutoscaleTaskType,
)
from .settings import (
    BreakerSettings as BreakerSettings,
)
from .settings import (
    PriorityRule as PriorityRule,
)
from .settings import (
    Settings as Settings,
)
from .states import (
    TRANSITIONS as TRANSITIONS,
)
from .states import (
    WAITING_STATES as WAITING_STATES,
)
from .states import (
    can_transition as can_transition,
)
from .states import (
    check_transition as check_transition,
)

__all__ = [
    "EVENT_KINDS",
    "PRIORITY_DEFAULT",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "WAITING_STATES",
    "WORKFLOW_PREFIX",
    "AdmissionLevel",
    "AdmissionSettings",
    "AdmissionStatistics",
    "AttemptRecord",
    "AutoscaleRegion",
    "AutoscaleSettings",
    "AutoscaleTaskType",
    "BreakerClosed",
    "BreakerHalfOpen",
    "BreakerOpened",
    "BreakerSettings",
    "BreakerState",
    "BreakerStatistics",
    "CircuitBreaker",
    "ErrorSummary",
    "Event",
    "FailurePolicy",
    "IdGenerator",
    "IntakeApplied",
    "IntakeItem",
    "JSONValue",
    "LeaseTable",
    "LeasedTask",
    "Outcome",
    "OutcomeKind",
    "PriorityRule",
    "Progress",
    "QueueStatistics",
    "RandomSource",
    "RegionExpired",
    "RegionHeartbeat",
    "RegionInfo",
    "RegionRegistered",
    "RegionView",
    "RetryPolicy",
    "ScheduleCreated",
    "ScheduleDeleted",
    "ScheduleFired",
    "SchedulePaused",
    "ScheduleRecord",
    "ScheduleResumed",
    "ScheduleRun",
    "ScheduleSpec",
    "ScheduleUpdated",
    "SchedulerState",
    "SchedulerStatistics",
    "Settings",
    "SettingsChanged",
    "Started",
    "Task",
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
    "TaskSpec",
    "TaskStarted",
    "TaskState",
    "TaskSubmitted",
    "TaskSucceeded",
    "TasksAssigned",
    "TasksEvicted",
    "Totals",
    "WorkflowFinished",
    "WorkflowNode",
    "WorkflowPlan",
    "WorkflowSpec",
    "WorkflowSubmitted",
    "WorkflowSummary",
    "WorkflowView",
    "admission_level",
    "backoff_delay",
    "can_transition",
    "check_admission",
    "check_transition",
    "event_kind",
    "event_task_id",
    "plan_workflow",
    "retry_decision",
    "topological_levels",
]


def __getattr__(name: str) -> object:
    # IndexedPriorityQueue left __all__: nothing outside the core uses it (the scheduler runs
    # on readyq.ReadyQueue), only tests and benchmarks, which import it from tierq.core.pqueue.
    # The old spelling keeps working, with a warning, until the next minor release.
    if name == "IndexedPriorityQueue":
        from .pqueue import IndexedPriorityQueue

        warnings.warn(
            "tierq.core.IndexedPriorityQueue is deprecated: import it from tierq.core.pqueue",
            DeprecationWarning,
            stacklevel=2,
        )
        return IndexedPriorityQueue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
