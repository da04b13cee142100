"""The gRPC transport: ``tierq.v1.Tierq`` and ``tierq.v1.Workers`` over the same service
(and KEDA's ``externalscaler.ExternalScaler``, ``keda.py``).

Handlers are registered by hand (``grpc.method_handlers_generic_handler``) rather than through
the generated ``add_…Servicer_to_server``, for one reason: they receive the raw request
bytes and parse them themselves, so a malformed message (bad wire data, invalid UTF-8 in a
string field) is INVALID_ARGUMENT like any other bad input, where the generated path would
answer INTERNAL. Oversized messages are RESOURCE_EXHAUSTED from gRPC itself
(``grpc.max_receive_message_length`` is the API's body limit).

Errors carry the problem document of ``errors.py`` as ``tierq-error`` trailing metadata.
Health (``grpc.health.v1``) and reflection are served without authentication.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio
import msgspec
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from ..errors import (
    EngineUnavailableError,
    InvalidRequestError,
    UnauthenticatedError,
)
from . import convert, keda, schedules
from .auth import Permission
from .errors import (
    MalformedRequestError,
    grpc_abort,
)
from .feed import EventFilter
from .proto import tierq_pb2 as pb
from .proto import types_pb2 as types
from .proto import workers_pb2 as wpb
from .rest_base import decode_json
from .service import ApiService, Caller

__all__ = ["SERVICE_NAMES", "HealthServicer", "add_to_server", "build_handlers", "set_serving"]

log = logging.getLogger("tierq.api.grpc")

TIERQ_SERVICE = pb.DESCRIPTOR.services_by_name["Tierq"].full_name
WORKERS_SERVICE = wpb.DESCRIPTOR.services_by_name["Workers"].full_name
SERVICE_NAMES = (
    TIERQ_SERVICE,
    WORKERS_SERVICE,
    keda.SERVICE,
    health.SERVICE_NAME,
    reflection.SERVICE_NAME,
)

M = TypeVar("M", bound=Message)
Context = grpc.aio.ServicerContext[Any, Any]
Unary = Callable[[Caller, Any], Awaitable[Message]]


def _caller(service: ApiService, context: Context) -> Caller:
    token = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            token = value if isinstance(value, str) else value.decode("latin-1")
    try:
        return Caller(service.auth.authenticate(token), "grpc")
    except UnauthenticatedError:
        service.metrics.rejected.labels("grpc", "unauthenticated").inc()
        raise


def _parse(raw: bytes, typ: type[M]) -> M:
    try:
        return typ.FromString(raw)
    except (DecodeError, ValueError) as exc:
        raise MalformedRequestError(f"malformed {typ.DESCRIPTOR.name}: {exc}") from None


def _unary(
    service: ApiService, method: str, request_type: type[Message], call: Unary
) -> grpc.RpcMethodHandler[Any, Any]:
    async def handle(raw: bytes, context: Context) -> Message:
        try:
            caller = _caller(service, context)
            return await call(caller, _parse(raw, request_type))
        except Exception as exc:
            await grpc_abort(context, exc, method)
            raise  # abort raises; this is for the type checker

    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=None, response_serializer=_serialize
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class _Tierq:
    """The unary methods of ``tierq.v1.Tierq``, named as in the .proto file."""

    def __init__(self, service: ApiService) -> None:
        self.s = service

    async def SubmitTask(self, c: Caller, r: pb.SubmitTaskRequest) -> Message:
        out = await self.s.submit_task(c, convert.spec_in(r.task))
        return pb.SubmitTaskResponse(id=out.id, warnings=out.warnings)

    async def SubmitTasks(self, c: Caller, r: pb.SubmitTasksRequest) -> Message:
        batch = await self.s.submit_tasks(c, convert.batch_in(r))
        return pb.SubmitTasksResponse(ids=batch.ids, warnings=batch.warnings)

    async def SubmitWorkflow(self, c: Caller, r: pb.SubmitWorkflowRequest) -> Message:
        out = await self.s.submit_workflow(c, convert.workflow_in(r.workflow))
        return pb.SubmitWorkflowResponse(
            workflow_id=out.workflow_id, ids=out.ids, warnings=out.warnings
        )

    async def GetTask(self, c: Caller, r: pb.GetTaskRequest) -> Message:
        return convert.task_pb(await self.s.get_task(c, convert.required(r.id, "id")))

    async def ListTasks(self, c: Caller, r: pb.ListTasksRequest) -> Message:
        reply = await self.s.list_tasks(c, convert.task_query(r))
        return pb.ListTasksResponse(
            tasks=[convert.task_pb(t) for t in reply.tasks], next_cursor=reply.next_cursor
        )

    async def WaitTasks(self, c: Caller, r: pb.WaitTasksRequest) -> Message:
        reply = await self.s.wait_tasks(c, convert.wait_in(r))
        return pb.ListTasksResponse(tasks=[convert.task_pb(t) for t in reply.tasks])

    async def UpdateTask(self, c: Caller, r: pb.UpdateTaskRequest) -> Message:
        out = await self.s.update_task(c, convert.required(r.id, "id"), convert.patch_in(r))
        return pb.CommandResponse(id=out.id, events=out.events)

    async def CancelTask(self, c: Caller, r: pb.TaskRef) -> Message:
        out = await self.s.cancel_task(c, convert.required(r.id, "id"))
        return pb.CommandResponse(id=out.id, events=out.events)

    async def RetryTask(self, c: Caller, r: pb.TaskRef) -> Message:
        out = await self.s.retry_task(c, convert.required(r.id, "id"))
        return pb.CommandResponse(id=out.id, events=out.events)

    async def GetWorkflow(self, c: Caller, r: pb.WorkflowRef) -> Message:
        view = await self.s.get_workflow(
            c,
            convert.required(r.id, "id"),
            r.node_limit if r.HasField("node_limit") else None,
            r.cursor if r.HasField("cursor") else None,
        )
        return convert.document(view)

    async def CancelWorkflow(self, c: Caller, r: pb.WorkflowRef) -> Message:
        out = await self.s.cancel_workflow(c, convert.required(r.id, "id"))
        return pb.CommandResponse(id=out.id, events=out.events)

    async def ListWorkflows(self, c: Caller, r: pb.ListWorkflowsRequest) -> Message:
        reply = await self.s.list_workflows(
            c,
            r.state if r.HasField("state") else None,
            r.limit if r.HasField("limit") else 100,
            r.cursor if r.HasField("cursor") else None,
        )
        return convert.document(reply)

    async def ListRegions(self, c: Caller, r: pb.ListRegionsRequest) -> Message:
        return convert.document(await self.s.regions(c))

    async def ListWorkers(self, c: Caller, r: pb.ListWorkersRequest) -> Message:
        region = r.region if r.HasField("region") else None
        return convert.document(await self.s.workers(c, region))

    async def GetStats(self, c: Caller, r: pb.GetStatsRequest) -> Message:
        return convert.document(await self.s.stats(c))

    async def GetSettings(self, c: Caller, r: pb.GetSettingsRequest) -> Message:
        return convert.document(await self.s.get_settings(c))

    async def PutSettings(self, c: Caller, r: types.JsonDocument) -> Message:
        return convert.document(await self.s.put_settings(c, r.json.encode()))

    async def PatchSettings(self, c: Caller, r: types.JsonDocument) -> Message:
        return convert.document(await self.s.patch_settings(c, r.json.encode()))

    # -- schedules (tierq/api/schedules.py): the REST bodies and documents, as JSON --

    async def ListSchedules(self, c: Caller, r: pb.ListSchedulesRequest) -> Message:
        limit = r.limit if r.HasField("limit") else 200
        if not 1 <= limit <= 200:
            raise InvalidRequestError("limit: 1..200", field="limit")
        cursor = r.cursor if r.HasField("cursor") else None
        return convert.document(await schedules.list_schedules(self.s, c, cursor, limit))

    async def GetSchedule(self, c: Caller, r: pb.ScheduleRef) -> Message:
        sid = convert.required(r.id, "id")
        return convert.document(await schedules.get_schedule(self.s, c, sid))

    async def CreateSchedule(self, c: Caller, r: types.JsonDocument) -> Message:
        body = decode_json(r.json.encode(), schedules.ScheduleDefIn)
        return convert.document(await schedules.create_schedule(self.s, c, body))

    async def UpdateSchedule(self, c: Caller, r: pb.UpdateScheduleRequest) -> Message:
        body = decode_json(r.json.encode(), schedules.ScheduleDefIn)
        sid = convert.required(r.id, "id")
        since = r.if_updated_at if r.HasField("if_updated_at") else None
        return convert.document(await schedules.update_schedule(self.s, c, sid, body, since))

    async def DeleteSchedule(self, c: Caller, r: pb.ScheduleRef) -> Message:
        sid = convert.required(r.id, "id")
        await schedules.delete_schedule(self.s, c, sid)
        return pb.CommandResponse(id=sid, events=1)

    async def PauseSchedule(self, c: Caller, r: pb.PauseScheduleRequest) -> Message:
        body = schedules.SchedulePauseIn(note=r.note if r.HasField("note") else None)
        sid = convert.required(r.id, "id")
        return convert.document(await schedules.pause_schedule(self.s, c, sid, body))

    async def ResumeSchedule(self, c: Caller, r: pb.ScheduleRef) -> Message:
        sid = convert.required(r.id, "id")
        return convert.document(await schedules.resume_schedule(self.s, c, sid))

    async def TriggerSchedule(self, c: Caller, r: pb.ScheduleRef) -> Message:
        sid = convert.required(r.id, "id")
        return convert.document(await schedules.trigger_schedule(self.s, c, sid))

    async def BackfillSchedule(self, c: Caller, r: pb.BackfillScheduleRequest) -> Message:
        sid = convert.required(r.id, "id")
        body = decode_json(
            msgspec.json.encode({"start": r.start, "end": r.end, "rerun": r.rerun}),
            schedules.ScheduleBackfillIn,
        )
        return convert.document(await schedules.backfill_schedule(self.s, c, sid, body))


class _Workers:
    """The methods of ``tierq.v1.Workers``: pull over the API."""

    def __init__(self, service: ApiService) -> None:
        self.s = service

    async def RegisterWorker(self, c: Caller, r: wpb.RegisterWorkerRequest) -> Message:
        out = await self.s.register_worker(c, r.region, convert.register_in(r))
        return wpb.RegisterWorkerResponse(
            worker=out.worker,
            region=out.region,
            lease_seconds=out.lease_seconds,
            heartbeat_interval=out.heartbeat_interval,
        )

    async def LeaseTasks(self, c: Caller, r: wpb.LeaseTasksRequest) -> Message:
        out = await self.s.lease(c, r.region, convert.worker_id(r.worker), convert.lease_in(r))
        tasks = [convert.leased_pb(t) for t in out.tasks]
        return wpb.LeaseTasksResponse(tasks=tasks, drain=out.drain)

    async def Heartbeat(self, c: Caller, r: wpb.HeartbeatRequest) -> Message:
        worker = convert.worker_id(r.worker)
        out = await self.s.heartbeat(c, r.region, worker, convert.heartbeat_in(r))
        return wpb.HeartbeatResponse(
            cancel=[wpb.AttemptRef(task_id=a.task_id, attempt=a.attempt) for a in out.cancel],
            unknown=out.unknown,
            drain=out.drain,
        )

    async def Report(self, c: Caller, r: wpb.ReportRequest) -> Message:
        await self.s.report(c, r.region, convert.worker_id(r.worker), convert.report_in(r))
        return wpb.ReportResponse()


def _handlers(
    service: ApiService, full_name: str, methods: object, descriptor: Any
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """One handler per unary method of the service ``descriptor``, from ``methods``."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        if method.server_streaming:
            continue
        request_type = _MESSAGES[method.input_type.full_name]
        call = getattr(methods, method.name)
        handlers[method.name] = _unary(service, f"/{full_name}/{method.name}", request_type, call)
    return handlers


_MESSAGES: dict[str, type[Message]] = {
    d.full_name: getattr(module, d.name)
    for module in (pb, types, wpb)
    for d in module.DESCRIPTOR.message_types_by_name.values()
}


def build_handlers(service: ApiService) -> list[grpc.GenericRpcHandler[Any, Any]]:
    """The generic handlers of both services, bound to ``service``."""
    tierq = _handlers(
        service, TIERQ_SERVICE, _Tierq(service), pb.DESCRIPTOR.services_by_name["Tierq"]
    )
    tierq["WatchEvents"] = _watch_events(service)
    workers = _handlers(
        service, WORKERS_SERVICE, _Workers(service), wpb.DESCRIPTOR.services_by_name["Workers"]
    )
    return [
        grpc.method_handlers_generic_handler(TIERQ_SERVICE, tierq),
        grpc.method_handlers_generic_handler(WORKERS_SERVICE, workers),
    ]


def _watch_events(service: ApiService) -> grpc.RpcMethodHandler[Any, Any]:
    method = f"/{TIERQ_SERVICE}/WatchEvents"

    async def handle(raw: bytes, context: Context) -> AsyncIterator[Message]:
        try:
            caller = _caller(service, context)
            r = _parse(raw, pb.WatchEventsRequest)
            filt = EventFilter(
                kinds=list(r.kinds),
                task_id=r.task_id if r.HasField("task_id") else None,
                workflow_id=r.workflow_id if r.HasField("workflow_id") else None,
                region=r.region if r.HasField("region") else None,
            )
            after = r.after_sequence if r.HasField("after_sequence") else None
            last = r.last if r.HasField("last") and after is None else None
            watch = await service.watch_events(caller, filt, after, last)
        except Exception as exc:
            await grpc_abort(context, exc, method)
            raise
        visible = service.redactor.view(caller.principal.can(Permission.ADMIN))
        try:
            async for event in watch:
                event = await visible(event)
                yield pb.Event(sequence=event.sequence, kind=event.kind, json=event.data.decode())
        except EngineUnavailableError as exc:
            await grpc_abort(context, exc, method)
        finally:
            await watch.aclose()

    return grpc.unary_stream_rpc_method_handler(
        handle, request_deserializer=None, response_serializer=_serialize
    )


def add_to_server(server: grpc.aio.Server, service: ApiService) -> HealthServicer:
    """Register tierq's services, health and reflection on ``server``."""
    server.add_generic_rpc_handlers([*build_handlers(service), keda.handlers(service)])
    checker = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection(SERVICE_NAMES, server)
    return checker


async def set_serving(checker: HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", TIERQ_SERVICE, WORKERS_SERVICE):
        await checker.set(name, status)
