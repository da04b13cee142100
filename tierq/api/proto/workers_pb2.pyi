from . import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutcomeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_KIND_UNSPECIFIED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_SUCCEEDED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_FAILED: _ClassVar[OutcomeKind]
OUTCOME_KIND_UNSPECIFIED: OutcomeKind
OUTCOME_KIND_SUCCEEDED: OutcomeKind
OUTCOME_KIND_FAILED: OutcomeKind

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("region", "worker", "task_types", "concurrency", "host")
    REGION_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPES_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    region: str
    worker: str
    task_types: _containers.RepeatedScalarFieldContainer[str]
    concurrency: int
    host: str
    def __init__(self, region: _Optional[str] = ..., worker: _Optional[str] = ..., task_types: _Optional[_Iterable[str]] = ..., concurrency: _Optional[int] = ..., host: _Optional[str] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("worker", "region", "lease_seconds", "heartbeat_interval")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    worker: str
    region: str
    lease_seconds: float
    heartbeat_interval: float
    def __init__(self, worker: _Optional[str] = ..., region: _Optional[str] = ..., lease_seconds: _Optional[float] = ..., heartbeat_interval: _Optional[float] = ...) -> None: ...

class LeaseTasksRequest(_message.Message):
    __slots__ = ("region", "worker", "slots", "wait")
    REGION_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    region: str
    worker: str
    slots: int
    wait: float
    def __init__(self, region: _Optional[str] = ..., worker: _Optional[str] = ..., slots: _Optional[int] = ..., wait: _Optional[float] = ...) -> None: ...

class LeasedTask(_message.Message):
    __slots__ = ("id", "attempt", "name", "args_json", "kwargs_json", "priority", "timeout", "deadline", "labels", "resource", "queue", "workflow_id", "parent_results_json", "submitted_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    KWARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_RESULTS_JSON_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    attempt: int
    name: str
    args_json: str
    kwargs_json: str
    priority: int
    timeout: float
    deadline: float
    labels: _containers.RepeatedScalarFieldContainer[str]
    resource: str
    queue: str
    workflow_id: str
    parent_results_json: str
    submitted_at: float
    def __init__(self, id: _Optional[str] = ..., attempt: _Optional[int] = ..., name: _Optional[str] = ..., args_json: _Optional[str] = ..., kwargs_json: _Optional[str] = ..., priority: _Optional[int] = ..., timeout: _Optional[float] = ..., deadline: _Optional[float] = ..., labels: _Optional[_Iterable[str]] = ..., resource: _Optional[str] = ..., queue: _Optional[str] = ..., workflow_id: _Optional[str] = ..., parent_results_json: _Optional[str] = ..., submitted_at: _Optional[float] = ...) -> None: ...

class LeaseTasksResponse(_message.Message):
    __slots__ = ("tasks", "drain")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[LeasedTask]
    drain: bool
    def __init__(self, tasks: _Optional[_Iterable[_Union[LeasedTask, _Mapping]]] = ..., drain: _Optional[bool] = ...) -> None: ...

class AttemptRef(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("region", "worker", "running", "draining")
    REGION_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    region: str
    worker: str
    running: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    draining: bool
    def __init__(self, region: _Optional[str] = ..., worker: _Optional[str] = ..., running: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., draining: _Optional[bool] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("cancel", "unknown", "drain")
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    cancel: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    unknown: bool
    drain: bool
    def __init__(self, cancel: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., unknown: _Optional[bool] = ..., drain: _Optional[bool] = ...) -> None: ...

class ProgressUpdate(_message.Message):
    __slots__ = ("task_id", "attempt", "fraction", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    fraction: float
    message: str
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., fraction: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("task_id", "attempt", "kind", "result_json", "error")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    kind: OutcomeKind
    result_json: str
    error: _types_pb2.ErrorSummary
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., kind: _Optional[_Union[OutcomeKind, str]] = ..., result_json: _Optional[str] = ..., error: _Optional[_Union[_types_pb2.ErrorSummary, _Mapping]] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("region", "worker", "started", "progress", "outcomes")
    REGION_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    region: str
    worker: str
    started: _containers.RepeatedCompositeFieldContainer[AttemptRef]
    progress: _containers.RepeatedCompositeFieldContainer[ProgressUpdate]
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, region: _Optional[str] = ..., worker: _Optional[str] = ..., started: _Optional[_Iterable[_Union[AttemptRef, _Mapping]]] = ..., progress: _Optional[_Iterable[_Union[ProgressUpdate, _Mapping]]] = ..., outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
