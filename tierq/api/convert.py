"""Protobuf messages of ``tierq.v1`` to and from the API's structs.

Requests are turned into plain dicts and then into the ``schema.py`` structs with
``msgspec.convert``, so a gRPC request passes exactly the checks a REST body does and fails
with the same message and field path. Unset proto3 ``optional`` fields are left out of the
dict, so the struct's defaults apply.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from ..core.model import (
    AttemptRecord,
    ErrorSummary,
    LeasedTask,
    RetryPolicy,
    Task,
    TaskSpec,
    TaskState,
)
from ..errors import InvalidRequestError
from .errors import validation_field
from .proto import tierq_pb2 as pb
from .proto import types_pb2 as types
from .proto import workers_pb2 as wpb
from .schema import (
    BatchIn,
    HeartbeatIn,
    LeaseIn,
    PriorityPatch,
    RegisterWorkerIn,
    ReportIn,
    TaskQuery,
    TaskSpecIn,
    WaitIn,
    WorkflowIn,
)

__all__ = [
    "batch_in",
    "document",
    "heartbeat_in",
    "lease_in",
    "leased_pb",
    "patch_in",
    "register_in",
    "report_in",
    "required",
    "spec_in",
    "state_name",
    "task_from_pb",
    "task_pb",
    "task_query",
    "wait_in",
    "worker_id",
    "workflow_in",
]

T = TypeVar("T")
_json = msgspec.json.Encoder()
_STATE_PREFIX = "TASK_STATE_"
_WORKER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def _convert(raw: dict[str, Any], typ: type[T], prefix: str) -> T:
    try:
        return msgspec.convert(raw, typ)
    except msgspec.ValidationError as exc:
        field = validation_field(exc)
        path = f"{prefix}.{field}" if prefix and field else (prefix or field)
        text = str(exc).rsplit(" - at `", 1)[0]
        raise InvalidRequestError(f"{path}: {text}" if path else text, field=path) from None


def _enum(enum: Any, value: int, prefix: str, field: str) -> str:
    """The lower-case name of a proto enum value; an unknown number is the client's mistake.

    Proto3 keeps enum numbers it does not know (open enums), so ``Name`` would raise
    ValueError and the call would end as INTERNAL.
    """
    try:
        name: str = enum.Name(value)
    except ValueError:
        known = ", ".join(str(v) for v in enum.values())
        raise InvalidRequestError(
            f"{field}: unknown value {value} (known: {known})", field=field
        ) from None
    return name.removeprefix(prefix).lower()


def _json_value(text: str, default: object, field: str) -> object:
    if not text:
        return default
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"{field}: not valid JSON: {exc}", field=field) from None
    except RecursionError:
        raise InvalidRequestError(f"{field}: nested too deeply", field=field) from None


def _optional(msg: Any, raw: dict[str, Any], *names: str) -> None:
    for name in names:
        if msg.HasField(name):
            raw[name] = getattr(msg, name)


def _spec_raw(msg: types.TaskSpec, field: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": msg.name,
        "args": _json_value(msg.args_json, [], f"{field}.args_json"),
        "kwargs": _json_value(msg.kwargs_json, {}, f"{field}.kwargs_json"),
        "priority": msg.priority,
        "labels": list(msg.labels),
        "depends_on": list(msg.depends_on),
    }
    _optional(
        msg,
        raw,
        "run_at",
        "deadline",
        "region",
        "timeout",
        "idempotency_key",
        "queue",
        "resource",
    )
    if msg.HasField("retry"):
        retry: dict[str, Any] = {"retry_on": list(msg.retry.retry_on)}
        _optional(msg.retry, retry, "max_attempts", "backoff_base", "backoff_max", "jitter")
        raw["retry"] = retry
    return raw


def spec_in(msg: types.TaskSpec, field: str = "task") -> TaskSpecIn:
    return _convert(_spec_raw(msg, field), TaskSpecIn, field)


def batch_in(msg: pb.SubmitTasksRequest) -> BatchIn:
    tasks = [_spec_raw(t, f"tasks[{i}]") for i, t in enumerate(msg.tasks)]
    return _convert({"tasks": tasks}, BatchIn, "")


def workflow_in(msg: types.WorkflowSpec) -> WorkflowIn:
    raw: dict[str, Any] = {
        "nodes": [
            {"key": n.key, "spec": _spec_raw(n.spec, f"workflow.nodes[{i}].spec")}
            for i, n in enumerate(msg.nodes)
        ],
        "edges": [[e.parent, e.child] for e in msg.edges],
    }
    if msg.name:
        raw["name"] = msg.name
    if msg.on_failure:
        raw["on_failure"] = _enum(
            types.FailurePolicy, msg.on_failure, "FAILURE_POLICY_", "workflow.on_failure"
        )
    if msg.HasField("idempotency_key"):
        raw["idempotency_key"] = msg.idempotency_key
    return _convert(raw, WorkflowIn, "workflow")


def register_in(msg: wpb.RegisterWorkerRequest) -> RegisterWorkerIn:
    raw: dict[str, Any] = {"task_types": list(msg.task_types), "concurrency": msg.concurrency}
    _optional(msg, raw, "worker", "host")
    return _convert(raw, RegisterWorkerIn, "")


def heartbeat_in(msg: wpb.HeartbeatRequest) -> HeartbeatIn:
    raw = {
        "running": [{"task_id": r.task_id, "attempt": r.attempt} for r in msg.running],
        "draining": msg.draining,
    }
    return _convert(raw, HeartbeatIn, "")


def report_in(msg: wpb.ReportRequest) -> ReportIn:
    outcomes: list[dict[str, Any]] = []
    for i, o in enumerate(msg.outcomes):
        kind = _enum(wpb.OutcomeKind, o.kind, "OUTCOME_KIND_", f"outcomes[{i}].kind")
        item: dict[str, Any] = {"task_id": o.task_id, "attempt": o.attempt, "kind": kind}
        if o.HasField("result_json"):
            item["result"] = _json_value(o.result_json, None, f"outcomes[{i}].result_json")
        if o.HasField("error"):
            error: dict[str, Any] = {
                "type": o.error.type,
                "message": o.error.message,
                "timeout": o.error.timeout,
                "permanent": o.error.permanent,
            }
            _optional(o.error, error, "traceback")
            item["error"] = error
        outcomes.append(item)
    progress: list[dict[str, Any]] = []
    for p in msg.progress:
        entry: dict[str, Any] = {"task_id": p.task_id, "attempt": p.attempt, "fraction": p.fraction}
        _optional(p, entry, "message")
        progress.append(entry)
    raw = {
        "started": [{"task_id": s.task_id, "attempt": s.attempt} for s in msg.started],
        "progress": progress,
        "outcomes": outcomes,
    }
    return _convert(raw, ReportIn, "")


def task_query(msg: pb.ListTasksRequest) -> TaskQuery:
    state = None
    if msg.HasField("state"):
        state = _enum(types.TaskState, msg.state, _STATE_PREFIX, "state")
    return TaskQuery(
        state=state,
        name=msg.name if msg.HasField("name") else None,
        queue=msg.queue if msg.HasField("queue") else None,
        region=msg.region if msg.HasField("region") else None,
        workflow=msg.workflow_id if msg.HasField("workflow_id") else None,
        limit=msg.limit if msg.HasField("limit") else 100,
        cursor=msg.cursor if msg.HasField("cursor") else None,
        newest_first=msg.newest_first,
    )


def wait_in(msg: pb.WaitTasksRequest) -> WaitIn:
    raw: dict[str, Any] = {"ids": list(msg.ids)}
    _optional(msg, raw, "timeout")
    return _convert(raw, WaitIn, "")


def patch_in(msg: pb.UpdateTaskRequest) -> PriorityPatch:
    if not msg.HasField("priority"):
        raise InvalidRequestError("priority: set the field to change", field="priority")
    return _convert({"priority": msg.priority}, PriorityPatch, "")


def lease_in(msg: wpb.LeaseTasksRequest) -> LeaseIn:
    raw: dict[str, Any] = {"slots": msg.slots}
    _optional(msg, raw, "wait")
    return _convert(raw, LeaseIn, "")


def required(value: str, field: str) -> str:
    """An id field: the master says whether it exists; empty means it was not set."""
    if not value:
        raise InvalidRequestError(f"{field}: must not be empty", field=field)
    return value


def worker_id(value: str) -> str:
    """The same rule as the REST path parameter."""
    if not _WORKER_ID.fullmatch(value):
        raise InvalidRequestError(
            f"worker: must match {_WORKER_ID.pattern}, got {value[:80]!r}", field="worker"
        )
    return value


# --- replies ------------------------------------------------------------------------------


def document(doc: object) -> types.JsonDocument:
    return types.JsonDocument(json=_json.encode(doc).decode())


def state_name(state: TaskState) -> int:
    return types.TaskState.Value(_STATE_PREFIX + state.value.upper())


def _error_pb(error: ErrorSummary | None) -> types.ErrorSummary | None:
    if error is None:
        return None
    return types.ErrorSummary(
        type=error.type,
        message=error.message,
        traceback=error.traceback,
        lost=error.lost,
        timeout=error.timeout,
        permanent=error.permanent,
    )


_DEFAULT_RETRY = RetryPolicy()


def _retry_pb(r: RetryPolicy) -> types.RetryPolicy:
    """Only what differs from the defaults, so an unset field stays unset across the hop."""
    d = _DEFAULT_RETRY
    return types.RetryPolicy(
        max_attempts=r.max_attempts if r.max_attempts != d.max_attempts else None,
        backoff_base=r.backoff_base if r.backoff_base != d.backoff_base else None,
        backoff_max=r.backoff_max if r.backoff_max != d.backoff_max else None,
        jitter=r.jitter if r.jitter != d.jitter else None,
        retry_on=list(r.retry_on),
    )


def _spec_pb(spec: TaskSpec) -> types.TaskSpec:
    return types.TaskSpec(
        name=spec.name,
        args_json=_json.encode(spec.args).decode(),
        kwargs_json=_json.encode(spec.kwargs).decode(),
        priority=spec.priority,
        run_at=spec.run_at,
        deadline=spec.deadline,
        region=spec.region,
        labels=list(spec.labels),
        depends_on=list(spec.depends_on),
        retry=_retry_pb(spec.retry) if spec.retry != _DEFAULT_RETRY else None,
        timeout=spec.timeout,
        idempotency_key=spec.idempotency_key,
        queue=spec.queue,
        resource=spec.resource,
    )


def task_pb(task: Task) -> types.Task:
    return types.Task(
        id=task.id,
        spec=_spec_pb(task.spec),
        state=state_name(task.state),  # type: ignore[arg-type]
        submitted_at=task.submitted_at,
        attempt=task.attempt,
        workflow_id=task.workflow_id,
        parents=list(task.parents),
        priority=task.priority,
        region=task.region,
        worker=task.worker,
        result_json=_json.encode(task.result).decode() if task.result is not None else None,
        error=_error_pb(task.error),
        progress=task.progress,
        progress_message=task.progress_message,
        not_before=task.not_before,
        timestamps=task.timestamps,
        history=[
            types.AttemptRecord(
                attempt=a.attempt,
                region=a.region,
                worker=a.worker,
                assigned_at=a.assigned_at,
                started_at=a.started_at,
                ended_at=a.ended_at,
                outcome=a.outcome,
                error=_error_pb(a.error),
            )
            for a in task.history
        ],
        boost=task.boost,
        retry_base=task.retry_base,
        reason=task.reason,
    )


def leased_pb(task: LeasedTask) -> wpb.LeasedTask:
    return wpb.LeasedTask(
        id=task.id,
        attempt=task.attempt,
        name=task.name,
        args_json=_json.encode(task.args).decode(),
        kwargs_json=_json.encode(task.kwargs).decode(),
        priority=task.priority,
        timeout=task.timeout,
        deadline=task.deadline,
        labels=list(task.labels),
        resource=task.resource,
        queue=task.queue,
        workflow_id=task.workflow_id,
        parent_results_json=_json.encode(task.parent_results).decode(),
        submitted_at=task.submitted_at,
    )


def _error_from_pb(msg: types.ErrorSummary) -> ErrorSummary:
    return ErrorSummary(
        type=msg.type,
        message=msg.message,
        traceback=msg.traceback if msg.HasField("traceback") else None,
        lost=msg.lost,
        timeout=msg.timeout,
    )


def task_from_pb(msg: types.Task) -> Task:
    """The core Task a gRPC ``Task`` describes (for Python gRPC clients and the tests)."""
    raw: dict[str, Any] = {
        "id": msg.id,
        "spec": _spec_raw(msg.spec, "spec"),
        "state": types.TaskState.Name(msg.state)[len(_STATE_PREFIX) :].lower(),
        "submitted_at": msg.submitted_at,
        "attempt": msg.attempt,
        "parents": list(msg.parents),
        "priority": msg.priority,
        "progress": msg.progress,
        "timestamps": dict(msg.timestamps),
        "boost": msg.boost,
        "retry_base": msg.retry_base,
        "history": [],
    }
    _optional(msg, raw, "workflow_id", "region", "worker", "progress_message", "not_before")
    _optional(msg, raw, "reason")
    if msg.HasField("result_json"):
        raw["result"] = msgspec.json.decode(msg.result_json)
    task = msgspec.convert(raw, Task)
    if msg.HasField("error"):
        task.error = _error_from_pb(msg.error)
    for a in msg.history:
        rec: dict[str, Any] = {"attempt": a.attempt}
        _optional(a, rec, "region", "worker", "assigned_at", "started_at", "ended_at", "outcome")
        record = msgspec.convert(rec, AttemptRecord)
        if a.HasField("error"):
            record.error = _error_from_pb(a.error)
        task.history.append(record)
    return task
