"""Seed compatibility: ``/schedule`` and ``/status/`` for the shell task type."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from .rest_base import Service, Who, read_body, reply, route_doc
from .shell import ScheduleIn

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/schedule", **route_doc(201, "ScheduleOut", "ScheduleIn", summary="Schedule a shell command")
)
async def schedule(request: Request, service: Service, who: Who) -> Response:
    body = await read_body(request, ScheduleIn)
    return reply(await service.schedule_shell(who, body), 201)


@router.get("/status/", **route_doc(200, "ShellStatus", summary="Status of a scheduled command"))
async def status(
    service: Service, who: Who, task_id: Annotated[str, Query(min_length=1, max_length=256)]
) -> Response:
    return reply(await service.shell_status(who, task_id))
