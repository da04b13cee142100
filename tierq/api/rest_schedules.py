"""Schedules over REST: list, read, create, replace, delete, pause, resume, trigger, backfill."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response

from ..errors import InvalidRequestError
from ..protocol import ScheduleView
from . import schedules as ops
from .rest_base import Service, Who, read_body, reply, route_doc

__all__ = ["router"]

router = APIRouter()

ScheduleId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


@router.get(
    "/v1/schedules", **route_doc(200, "SchedulesReply", summary="List schedules (by id, paged)")
)
async def list_schedules(
    service: Service,
    who: Who,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 200,
) -> Response:
    """``next_cursor`` (null at the end) asks for the next page."""
    return reply(await ops.list_schedules(service, who, cursor, limit))


@router.post(
    "/v1/schedules",
    **route_doc(201, "ScheduleView", "ScheduleDefIn", summary="Create a schedule"),
)
async def create_schedule(request: Request, service: Service, who: Who) -> Response:
    body = await read_body(request, ops.ScheduleDefIn)
    view = await ops.create_schedule(service, who, body)
    response = _tagged(view, 201)
    response.headers["Location"] = f"/v1/schedules/{view.id}"
    return response


def _tagged(view: ScheduleView, status: int = 200) -> Response:
    """The view with its ``ETag`` (its ``updated_at``), for a conditional ``PUT``."""
    return reply(view, status, {"ETag": f'"{view.updated_at!r}"'})


def _if_match(value: str | None) -> float | None:
    """The ``updated_at`` an ``If-Match`` header names (None: absent or ``*``)."""
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    try:
        return float(tag)
    except ValueError:
        raise InvalidRequestError(
            "If-Match: give one ETag of this schedule as a GET returned it", field="If-Match"
        ) from None


@router.get("/v1/schedules/{schedule_id}", **route_doc(200, "ScheduleView", summary="A schedule"))
async def get_schedule(schedule_id: ScheduleId, service: Service, who: Who) -> Response:
    return _tagged(await ops.get_schedule(service, who, schedule_id))


@router.put(
    "/v1/schedules/{schedule_id}",
    **route_doc(
        200, "ScheduleView", "ScheduleDefIn", summary="Replace a schedule's spec", conditional=True
    ),
)
async def update_schedule(
    schedule_id: ScheduleId,
    request: Request,
    service: Service,
    who: Who,
    if_match: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """With ``If-Match: <ETag of a GET>``, replaced only if nobody changed the schedule
    since (else 412, nothing changed)."""
    body = await read_body(request, ops.ScheduleDefIn)
    since = _if_match(if_match)
    return _tagged(await ops.update_schedule(service, who, schedule_id, body, since))


@router.delete("/v1/schedules/{schedule_id}", **route_doc(204, None, summary="Delete a schedule"))
async def delete_schedule(schedule_id: ScheduleId, service: Service, who: Who) -> Response:
    await ops.delete_schedule(service, who, schedule_id)
    return Response(status_code=204)


@router.post(
    "/v1/schedules/{schedule_id}/pause",
    **route_doc(200, "ScheduleView", "SchedulePauseIn", summary="Pause a schedule"),
)
async def pause_schedule(
    schedule_id: ScheduleId, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, ops.SchedulePauseIn)
    return _tagged(await ops.pause_schedule(service, who, schedule_id, body))


@router.post(
    "/v1/schedules/{schedule_id}/resume",
    **route_doc(200, "ScheduleView", summary="Resume a paused schedule"),
)
async def resume_schedule(schedule_id: ScheduleId, service: Service, who: Who) -> Response:
    return _tagged(await ops.resume_schedule(service, who, schedule_id))


@router.post(
    "/v1/schedules/{schedule_id}/trigger",
    **route_doc(200, "ScheduleReply", summary="Fire a schedule now"),
)
async def trigger_schedule(schedule_id: ScheduleId, service: Service, who: Who) -> Response:
    return reply(await ops.trigger_schedule(service, who, schedule_id))


@router.post(
    "/v1/schedules/{schedule_id}/backfill",
    **route_doc(200, "ScheduleReply", "ScheduleBackfillIn", summary="Run past fire times"),
)
async def backfill_schedule(
    schedule_id: ScheduleId, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, ops.ScheduleBackfillIn)
    return reply(await ops.backfill_schedule(service, who, schedule_id, body))
