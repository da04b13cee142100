"""gRPC without a master behind it: auth, status codes, malformed and oversized messages,
the problem document in trailing metadata, health and reflection."""

from __future__ import annotations

import json
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tierq.api.proto import tierq_pb2 as pb
from tierq.api.proto import tierq_pb2_grpc, workers_pb2_grpc
from tierq.api.proto import types_pb2 as types
from tierq.api.proto import workers_pb2 as wpb

from .support import TOKENS

S = grpc.StatusCode
SPEC = types.TaskSpec(name="add", args_json="[1, 2]")
SCHEDULE = '{"id": "s", "every": 60, "task": {"name": "add"}}'
UNAV = S.UNAVAILABLE


def meta(role: str | None) -> tuple[tuple[str, str], ...]:
    if role is None:
        return ()
    if role == "bogus":
        return (("authorization", "Bearer nope-nope-nope-nope-nope"),)
    return (("authorization", f"Bearer {TOKENS[role]}"),)


def problem_of(err: grpc.aio.AioRpcError) -> dict[str, Any]:
    trailing = dict(err.trailing_metadata() or ())
    doc = trailing["tierq-error"]
    assert isinstance(doc, str)
    loaded: dict[str, Any] = json.loads(doc)
    return loaded


#: (service, method, request, permission, code when allowed and no master runs).
CALLS: list[tuple[str, str, Any, str, grpc.StatusCode]] = [
    ("t", "SubmitTask", pb.SubmitTaskRequest(task=SPEC), "submit", S.UNAVAILABLE),
    ("t", "SubmitTasks", pb.SubmitTasksRequest(tasks=[SPEC, SPEC]), "submit", S.UNAVAILABLE),
    (
        "t",
        "SubmitWorkflow",
        pb.SubmitWorkflowRequest(
            workflow=types.WorkflowSpec(nodes=[types.WorkflowNode(key="a", spec=SPEC)])
        ),
        "submit",
        S.UNAVAILABLE,
    ),
    ("t", "GetTask", pb.GetTaskRequest(id="t1"), "read", S.UNAVAILABLE),
    ("t", "ListTasks", pb.ListTasksRequest(limit=5), "read", S.UNAVAILABLE),
    ("t", "WaitTasks", pb.WaitTasksRequest(ids=["t1"], timeout=0), "read", S.UNAVAILABLE),
    ("t", "UpdateTask", pb.UpdateTaskRequest(id="t1", priority=2), "submit", S.UNAVAILABLE),
    ("t", "CancelTask", pb.TaskRef(id="t1"), "submit", S.UNAVAILABLE),
    ("t", "RetryTask", pb.TaskRef(id="t1"), "submit", S.UNAVAILABLE),
    ("t", "GetWorkflow", pb.WorkflowRef(id="wf_1"), "read", S.UNAVAILABLE),
    ("t", "CancelWorkflow", pb.WorkflowRef(id="wf_1"), "submit", S.UNAVAILABLE),
    ("t", "ListRegions", pb.ListRegionsRequest(), "read", S.UNAVAILABLE),
    ("t", "ListWorkers", pb.ListWorkersRequest(), "read", S.UNAVAILABLE),
    ("t", "GetStats", pb.GetStatsRequest(), "read", S.UNAVAILABLE),
    ("t", "GetSettings", pb.GetSettingsRequest(), "read", S.UNAVAILABLE),
    ("t", "PutSettings", types.JsonDocument(json="{}"), "admin", S.UNAVAILABLE),
    ("t", "PatchSettings", types.JsonDocument(json="{}"), "admin", S.UNAVAILABLE),
    ("t", "ListSchedules", pb.ListSchedulesRequest(), "read", S.UNAVAILABLE),
    ("t", "GetSchedule", pb.ScheduleRef(id="s"), "read", S.UNAVAILABLE),
    ("t", "CreateSchedule", types.JsonDocument(json=SCHEDULE), "submit", S.UNAVAILABLE),
    (
        "t",
        "UpdateSchedule",
        pb.UpdateScheduleRequest(id="s", json=SCHEDULE),
        "submit",
        S.UNAVAILABLE,
    ),
    ("t", "DeleteSchedule", pb.ScheduleRef(id="s"), "submit", S.UNAVAILABLE),
    ("t", "PauseSchedule", pb.PauseScheduleRequest(id="s"), "submit", S.UNAVAILABLE),
    ("t", "ResumeSchedule", pb.ScheduleRef(id="s"), "submit", S.UNAVAILABLE),
    ("t", "TriggerSchedule", pb.ScheduleRef(id="s"), "submit", S.UNAVAILABLE),
    (
        "t",
        "BackfillSchedule",
        pb.BackfillScheduleRequest(id="s", start=0, end=60),
        "submit",
        S.UNAVAILABLE,
    ),
    (
        "w",
        "RegisterWorker",
        wpb.RegisterWorkerRequest(region="default", task_types=["add"], concurrency=1),
        "work",
        S.UNAVAILABLE,
    ),
    (
        "w",
        "LeaseTasks",
        wpb.LeaseTasksRequest(region="default", worker="worker:w1", slots=1, wait=0),
        "work",
        S.UNAVAILABLE,
    ),
    (
        "w",
        "Heartbeat",
        wpb.HeartbeatRequest(region="default", worker="worker:w1"),
        "work",
        S.UNAVAILABLE,
    ),
    ("w", "Report", wpb.ReportRequest(region="default", worker="worker:w1"), "work", S.UNAVAILABLE),
]

GRANTS = {
    "read": {"read"},
    "submit": {"read", "submit"},
    "worker": {"work"},
    "admin": {"read", "submit", "work", "admin"},
}


async def test_auth_matrix(channel: grpc.aio.Channel) -> None:
    stubs = {"t": tierq_pb2_grpc.TierqStub(channel), "w": workers_pb2_grpc.WorkersStub(channel)}
    mismatches = []
    for service, method, request, permission, allowed in CALLS:
        for role in (None, "bogus", "read", "submit", "worker", "admin"):
            if role in (None, "bogus"):
                want = S.UNAUTHENTICATED
            else:
                want = allowed if permission in GRANTS[role] else S.PERMISSION_DENIED
            try:
                await getattr(stubs[service], method)(request, metadata=meta(role), timeout=10)
                got = S.OK
            except grpc.aio.AioRpcError as err:
                got = err.code()
                assert problem_of(err)["code"]
            if got != want:
                mismatches.append((method, role, got, want))
    assert mismatches == []


async def test_problem_in_trailing_metadata(channel: grpc.aio.Channel) -> None:
    stub = tierq_pb2_grpc.TierqStub(channel)
    bad = types.TaskSpec(name="add", priority=5000)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitTask(pb.SubmitTaskRequest(task=bad), metadata=meta("submit"))
    assert info.value.code() == S.INVALID_ARGUMENT
    problem = problem_of(info.value)
    assert problem["field"] == "task.priority"
    assert problem["status"] == 422
    assert problem["instance"] == "/tierq.v1.Tierq/SubmitTask"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.SubmitTaskRequest(task=types.TaskSpec(name="x", args_json="[1,")), "task.args_json"),
        (pb.SubmitTaskRequest(task=types.TaskSpec(name="")), "task.name"),
        (pb.SubmitTaskRequest(task=types.TaskSpec(name="x", kwargs_json="[1]")), "task.kwargs"),
        (pb.SubmitTaskRequest(task=types.TaskSpec(name="x", queue="a b")), "task.queue"),
        (pb.SubmitTaskRequest(task=types.TaskSpec(name="x", timeout=-1)), "task.timeout"),
        (
            pb.SubmitTaskRequest(
                task=types.TaskSpec(name="x", retry=types.RetryPolicy(max_attempts=0))
            ),
            "task.retry.max_attempts",
        ),
        (
            pb.SubmitTaskRequest(
                task=types.TaskSpec(name="x", args_json="[" * 100_000 + "]" * 100_000)
            ),
            "task.args_json",
        ),
    ],
)
async def test_invalid_arguments_name_the_field(
    channel: grpc.aio.Channel, request_: pb.SubmitTaskRequest, field: str
) -> None:
    stub = tierq_pb2_grpc.TierqStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitTask(request_, metadata=meta("submit"))
    assert info.value.code() == S.INVALID_ARGUMENT
    assert problem_of(info.value)["field"] == field


async def test_batch_errors_name_the_task(channel: grpc.aio.Channel) -> None:
    stub = tierq_pb2_grpc.TierqStub(channel)
    request = pb.SubmitTasksRequest(tasks=[SPEC, types.TaskSpec(name="x", priority=-2000)])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitTasks(request, metadata=meta("submit"))
    assert problem_of(info.value)["field"] == "tasks[1].priority"


def raw_call(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # not protobuf at all
        b"\x0a\x03\x0a\x01\xff",  # SubmitTaskRequest.task.name = b"\xff": invalid UTF-8
        b"\x0a\x10\x0a",  # truncated length-delimited field
    ],
    ids=["garbage", "invalid-utf8", "truncated"],
)
async def test_malformed_messages(channel: grpc.aio.Channel, payload: bytes) -> None:
    call = raw_call(channel, "/tierq.v1.Tierq/SubmitTask")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(payload, metadata=meta("submit"))
    assert info.value.code() == S.INVALID_ARGUMENT
    assert problem_of(info.value)["code"] == "malformed_request"


async def test_oversized_message(channel: grpc.aio.Channel) -> None:
    stub = tierq_pb2_grpc.TierqStub(channel)
    big = types.TaskSpec(name="x", args_json='["' + "a" * (2 << 20) + '"]')
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SubmitTask(pb.SubmitTaskRequest(task=big), metadata=meta("submit"))
    assert info.value.code() == S.RESOURCE_EXHAUSTED


async def test_worker_ids_are_checked(channel: grpc.aio.Channel) -> None:
    stub = workers_pb2_grpc.WorkersStub(channel)
    for region, worker, field in [
        ("a.b", "worker:w1", "region"),
        ("default", "worker:w 1", "worker"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.LeaseTasks(
                wpb.LeaseTasksRequest(region=region, worker=worker, slots=1),
                metadata=meta("worker"),
            )
        assert info.value.code() == S.INVALID_ARGUMENT
        assert problem_of(info.value)["field"] == field


async def test_update_without_priority(channel: grpc.aio.Channel) -> None:
    stub = tierq_pb2_grpc.TierqStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpdateTask(pb.UpdateTaskRequest(id="t1"), metadata=meta("submit"))
    assert info.value.code() == S.INVALID_ARGUMENT


async def test_health_needs_no_token(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tierq.v1.Tierq", "tierq.v1.Workers"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> Any:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: set[str] = set()
    async for reply in stub.ServerReflectionInfo(requests()):
        names |= {s.name for s in reply.list_services_response.service}
    assert {"tierq.v1.Tierq", "tierq.v1.Workers", "grpc.health.v1.Health"} <= names


async def test_watch_events_refuses_unknown_kinds(channel: grpc.aio.Channel) -> None:
    stub = tierq_pb2_grpc.TierqStub(channel)
    call = stub.WatchEvents(pb.WatchEventsRequest(kinds=["nope"]), metadata=meta("read"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == S.INVALID_ARGUMENT
    assert problem_of(info.value)["field"] == "kinds[0]"
    call = stub.WatchEvents(pb.WatchEventsRequest(), metadata=meta(None))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == S.UNAUTHENTICATED
