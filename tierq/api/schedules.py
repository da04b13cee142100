"""Schedules through the API: request bodies and the operations REST and gRPC serve. The
master checks the cron expression, the zone and the policies; the API
checks the target as it checks a submission, and refuses shell commands as targets."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ..core import ScheduleSpec
from ..errors import InvalidRequestError, NotFoundError
from ..protocol import ScheduleReply, ScheduleRequest, SchedulesReply, ScheduleView
from .auth import Permission
from .operation import Caller, operation
from .schema import TaskSpecIn, Time, WorkflowIn, epoch
from .service import SHELL_TASK, ApiService

__all__ = [
    "ScheduleBackfillIn",
    "ScheduleDefIn",
    "SchedulePauseIn",
    "backfill_schedule",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "pause_schedule",
    "resume_schedule",
    "trigger_schedule",
    "update_schedule",
]


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Unknown fields are an error, as in every request body of the API."""


ScheduleId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
#: As the core's check (``MIN_EVERY``, ``MAX_SPAN``), so the OpenAPI document states it.
_Interval = Annotated[float, Meta(ge=1, le=366 * 86400)]
_Window = Annotated[float, Meta(ge=0, le=366 * 86400)]


class ScheduleDefIn(_In):
    """A schedule: ``cron`` (in ``timezone``) or ``every`` seconds, and a ``task`` or a
    ``workflow`` to run at each fire time."""

    #: On create only (a PUT names the schedule in its path).
    id: ScheduleId | None = None
    cron: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    every: _Interval | None = None
    offset: _Window = 0.0
    jitter: _Window = 0.0
    start_at: Time | None = None
    end_at: Time | None = None
    task: TaskSpecIn | None = None
    workflow: WorkflowIn | None = None
    #: The task kwarg that receives the fire time (epoch seconds).
    fire_time_arg: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    overlap: Literal["skip", "buffer_one", "allow_all", "cancel_other"] = "skip"
    catchup_window: _Window = 60.0
    catchup: Literal["all", "latest"] = "all"


class SchedulePauseIn(_In):
    note: Annotated[str, Meta(max_length=1000)] | None = None


class ScheduleBackfillIn(_In):
    """Every fire time in ``[start, end]`` (in the past) runs once; one whose run was started
    before (by the schedule or an earlier backfill) is left out unless ``rerun``."""

    start: Time
    end: Time
    rerun: bool = False


def _spec(api: ApiService, caller: Caller, body: ScheduleDefIn) -> ScheduleSpec:
    task = workflow = None
    if body.task is not None:
        if body.task.name == SHELL_TASK:
            raise InvalidRequestError(
                f"{SHELL_TASK!r} tasks cannot be scheduled", field="task.name"
            )
        task = api.check_spec(caller, body.task, "task")
    if body.workflow is not None:
        for i, node in enumerate(body.workflow.nodes):
            field = f"workflow.nodes[{i}].spec"
            if node.spec.name == SHELL_TASK:
                raise InvalidRequestError(
                    f"{SHELL_TASK!r} tasks cannot be scheduled", field=f"{field}.name"
                )
            api.check_spec(caller, node.spec, field)  # names, JSON values, times
        workflow = body.workflow.to_core()
    return ScheduleSpec(
        cron=body.cron,
        timezone=body.timezone,
        every=body.every,
        offset=body.offset,
        jitter=body.jitter,
        start_at=epoch(body.start_at),
        end_at=epoch(body.end_at),
        task=task,
        workflow=workflow,
        fire_time_arg=body.fire_time_arg,
        overlap=body.overlap,
        catchup_window=body.catchup_window,
        catchup=body.catchup,
    )


async def _call(api: ApiService, op: str, req: ScheduleRequest) -> ScheduleReply:
    return await api.master.call(f"schedule_{op}", req, ScheduleReply)


def _view(reply: ScheduleReply) -> ScheduleView:
    assert reply.schedule is not None
    return reply.schedule


@operation(Permission.READ)
async def list_schedules(
    api: ApiService, caller: Caller, cursor: str | None, limit: int
) -> SchedulesReply:
    req = ScheduleRequest(cursor=cursor, limit=limit)
    return await api.master.call("schedule_list", req, SchedulesReply)


@operation(Permission.READ)
async def get_schedule(api: ApiService, caller: Caller, schedule_id: str) -> ScheduleView:
    reply = await _call(api, "get", ScheduleRequest(id=schedule_id))
    if reply.schedule is None:
        raise NotFoundError(f"no schedule {schedule_id!r}", ids=(schedule_id,))
    return reply.schedule


@operation(Permission.SUBMIT)
async def create_schedule(api: ApiService, caller: Caller, body: ScheduleDefIn) -> ScheduleView:
    if body.id is None:
        raise InvalidRequestError("a new schedule needs an id", field="id")
    req = ScheduleRequest(id=body.id, spec=_spec(api, caller, body))
    api.check_size(req)
    return _view(await _call(api, "create", req))


@operation(Permission.SUBMIT)
async def update_schedule(
    api: ApiService,
    caller: Caller,
    schedule_id: str,
    body: ScheduleDefIn,
    if_updated_at: float | None = None,
) -> ScheduleView:
    """Replace the spec; with ``if_updated_at``, only if the record's ``updated_at`` is still
    that (else ChangedSinceReadError, nothing changed)."""
    if body.id is not None and body.id != schedule_id:
        raise InvalidRequestError("the id in the body is not the path's", field="id")
    spec = _spec(api, caller, body)
    req = ScheduleRequest(id=schedule_id, spec=spec, if_updated_at=if_updated_at)
    api.check_size(req)
    return _view(await _call(api, "update", req))


@operation(Permission.SUBMIT)
async def delete_schedule(api: ApiService, caller: Caller, schedule_id: str) -> None:
    await _call(api, "delete", ScheduleRequest(id=schedule_id))


@operation(Permission.SUBMIT)
async def pause_schedule(
    api: ApiService, caller: Caller, schedule_id: str, body: SchedulePauseIn
) -> ScheduleView:
    return _view(await _call(api, "pause", ScheduleRequest(id=schedule_id, note=body.note)))


@operation(Permission.SUBMIT)
async def resume_schedule(api: ApiService, caller: Caller, schedule_id: str) -> ScheduleView:
    return _view(await _call(api, "resume", ScheduleRequest(id=schedule_id)))


@operation(Permission.SUBMIT)
async def trigger_schedule(api: ApiService, caller: Caller, schedule_id: str) -> ScheduleReply:
    return await _call(api, "trigger", ScheduleRequest(id=schedule_id))


@operation(Permission.SUBMIT)
async def backfill_schedule(
    api: ApiService, caller: Caller, schedule_id: str, body: ScheduleBackfillIn
) -> ScheduleReply:
    start, end = epoch(body.start), epoch(body.end)
    req = ScheduleRequest(id=schedule_id, start=start, end=end, rerun=body.rerun)
    return await _call(api, "backfill", req)
