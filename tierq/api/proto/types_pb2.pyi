from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_READY: _ClassVar[TaskState]
    TASK_STATE_ASSIGNED: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_SUCCEEDED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_DEAD: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]
    TASK_STATE_SKIPPED: _ClassVar[TaskState]

class FailurePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_POLICY_UNSPECIFIED: _ClassVar[FailurePolicy]
    FAILURE_POLICY_SKIP_DEPENDENTS: _ClassVar[FailurePolicy]
    FAILURE_POLICY_FAIL_WORKFLOW: _ClassVar[FailurePolicy]
    FAILURE_POLICY_CONTINUE: _ClassVar[FailurePolicy]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_READY: TaskState
TASK_STATE_ASSIGNED: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_SUCCEEDED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_DEAD: TaskState
TASK_STATE_CANCELLED: TaskState
TASK_STATE_SKIPPED: TaskState
FAILURE_POLICY_UNSPECIFIED: FailurePolicy
FAILURE_POLICY_SKIP_DEPENDENTS: FailurePolicy
FAILURE_POLICY_FAIL_WORKFLOW: FailurePolicy
FAILURE_POLICY_CONTINUE: FailurePolicy

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "backoff_base", "backoff_max", "jitter", "retry_on")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_BASE_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MAX_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    RETRY_ON_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    backoff_base: float
    backoff_max: float
    jitter: float
    retry_on: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_attempts: _Optional[int] = ..., backoff_base: _Optional[float] = ..., backoff_max: _Optional[float] = ..., jitter: _Optional[float] = ..., retry_on: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("name", "args_json", "kwargs_json", "priority", "run_at", "deadline", "region", "labels", "depends_on", "retry", "timeout", "idempotency_key", "queue", "resource")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    KWARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    args_json: str
    kwargs_json: str
    priority: int
    run_at: float
    deadline: float
    region: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    retry: RetryPolicy
    timeout: float
    idempotency_key: str
    queue: str
    resource: str
    def __init__(self, name: _Optional[str] = ..., args_json: _Optional[str] = ..., kwargs_json: _Optional[str] = ..., priority: _Optional[int] = ..., run_at: _Optional[float] = ..., deadline: _Optional[float] = ..., region: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., depends_on: _Optional[_Iterable[str]] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., timeout: _Optional[float] = ..., idempotency_key: _Optional[str] = ..., queue: _Optional[str] = ..., resource: _Optional[str] = ...) -> None: ...

class ErrorSummary(_message.Message):
    __slots__ = ("type", "message", "traceback", "lost", "timeout", "permanent")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    traceback: str
    lost: bool
    timeout: bool
    permanent: bool
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ..., lost: _Optional[bool] = ..., timeout: _Optional[bool] = ..., permanent: _Optional[bool] = ...) -> None: ...

class AttemptRecord(_message.Message):
    __slots__ = ("attempt", "region", "worker", "assigned_at", "started_at", "ended_at", "outcome", "error")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    region: str
    worker: str
    assigned_at: float
    started_at: float
    ended_at: float
    outcome: str
    error: ErrorSummary
    def __init__(self, attempt: _Optional[int] = ..., region: _Optional[str] = ..., worker: _Optional[str] = ..., assigned_at: _Optional[float] = ..., started_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., outcome: _Optional[str] = ..., error: _Optional[_Union[ErrorSummary, _Mapping]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "spec", "state", "submitted_at", "attempt", "workflow_id", "parents", "priority", "region", "worker", "result_json", "error", "progress", "progress_message", "not_before", "timestamps", "history", "boost", "retry_base", "reason")
    class TimestampsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    BOOST_FIELD_NUMBER: _ClassVar[int]
    RETRY_BASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: TaskSpec
    state: TaskState
    submitted_at: float
    attempt: int
    workflow_id: str
    parents: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    region: str
    worker: str
    result_json: str
    error: ErrorSummary
    progress: float
    progress_message: str
    not_before: float
    timestamps: _containers.ScalarMap[str, float]
    history: _containers.RepeatedCompositeFieldContainer[AttemptRecord]
    boost: int
    retry_base: int
    reason: str
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., submitted_at: _Optional[float] = ..., attempt: _Optional[int] = ..., workflow_id: _Optional[str] = ..., parents: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ..., region: _Optional[str] = ..., worker: _Optional[str] = ..., result_json: _Optional[str] = ..., error: _Optional[_Union[ErrorSummary, _Mapping]] = ..., progress: _Optional[float] = ..., progress_message: _Optional[str] = ..., not_before: _Optional[float] = ..., timestamps: _Optional[_Mapping[str, float]] = ..., history: _Optional[_Iterable[_Union[AttemptRecord, _Mapping]]] = ..., boost: _Optional[int] = ..., retry_base: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class WorkflowNode(_message.Message):
    __slots__ = ("key", "spec")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    key: str
    spec: TaskSpec
    def __init__(self, key: _Optional[str] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ...) -> None: ...

class Edge(_message.Message):
    __slots__ = ("parent", "child")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CHILD_FIELD_NUMBER: _ClassVar[int]
    parent: str
    child: str
    def __init__(self, parent: _Optional[str] = ..., child: _Optional[str] = ...) -> None: ...

class WorkflowSpec(_message.Message):
    __slots__ = ("name", "nodes", "edges", "on_failure", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    nodes: _containers.RepeatedCompositeFieldContainer[WorkflowNode]
    edges: _containers.RepeatedCompositeFieldContainer[Edge]
    on_failure: FailurePolicy
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[WorkflowNode, _Mapping]]] = ..., edges: _Optional[_Iterable[_Union[Edge, _Mapping]]] = ..., on_failure: _Optional[_Union[FailurePolicy, str]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class JsonDocument(_message.Message):
    __slots__ = ("json",)
    JSON_FIELD_NUMBER: _ClassVar[int]
    json: str
    def __init__(self, json: _Optional[str] = ...) -> None: ...
