"""Tasks and workflows: submit, wait, list, read, reprioritize, cancel and retry."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..protocol import MAX_WORKFLOW_PAGE
from . import schema
from .rest_base import Service, TaskId, Who, read_body, reply, route_doc
from .schema import TaskQuery

__all__ = ["TaskStateName", "WorkflowStateName", "router"]

router = APIRouter()


# --- tasks ---------------------------------------------------------------------------------


@router.post("/v1/tasks", **route_doc(201, "SubmitOut", "TaskSpecIn", summary="Submit a task"))
async def submit_task(request: Request, service: Service, who: Who) -> Response:
    out = await service.submit_task(who, await read_body(request, schema.TaskSpecIn))
    return reply(out, 201, {"Location": f"/v1/tasks/{out.id}"})


@router.post(
    "/v1/tasks:batch",
    **route_doc(201, "BatchOut", "BatchIn", summary="Submit many tasks (all or nothing)"),
)
async def submit_tasks(request: Request, service: Service, who: Who) -> Response:
    out = await service.submit_tasks(who, await read_body(request, schema.BatchIn))
    return reply(out, 201)


@router.post(
    "/v1/tasks:wait",
    **route_doc(200, "TasksReply", "WaitIn", summary="Wait until tasks are terminal"),
)
async def wait_tasks(request: Request, service: Service, who: Who) -> Response:
    return reply(await service.wait_tasks(who, await read_body(request, schema.WaitIn)))


@router.get("/v1/tasks/{task_id}", **route_doc(200, "Task", summary="One task"))
async def get_task(task_id: TaskId, service: Service, who: Who) -> Response:
    return reply(await service.get_task(who, task_id))


#: The states a list may filter on, as the OpenAPI document's enums (the server's own sets).
TaskStateName = Literal[
    "pending", "ready", "assigned", "running", "succeeded", "failed", "dead", "cancelled", "skipped"
]
WorkflowStateName = Literal["running", "succeeded", "failed", "cancelled"]


@router.get("/v1/tasks", **route_doc(200, "TasksReply", summary="List tasks (cursor pagination)"))
async def list_tasks(
    service: Service,
    who: Who,
    state: Annotated[TaskStateName | None, Query()] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    region: Annotated[str | None, Query(max_length=64)] = None,
    workflow: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    order: Annotated[Literal["oldest", "newest"], Query()] = "oldest",
) -> Response:
    """``order=newest`` lists the newest first; ``next_cursor`` then pages to older tasks."""
    query = TaskQuery(
        state=state,
        name=name,
        queue=queue,
        region=region,
        workflow=workflow,
        limit=limit,
        cursor=cursor,
        newest_first=order == "newest",
    )
    return reply(await service.list_tasks(who, query))


@router.patch(
    "/v1/tasks/{task_id}",
    **route_doc(200, "CommandOut", "PriorityPatch", summary="Change a task's priority"),
)
async def update_task(task_id: TaskId, request: Request, service: Service, who: Who) -> Response:
    patch = await read_body(request, schema.PriorityPatch)
    return reply(await service.update_task(who, task_id, patch))


@router.post("/v1/tasks/{task_id}/cancel", **route_doc(200, "CommandOut", summary="Cancel a task"))
async def cancel_task(task_id: TaskId, service: Service, who: Who) -> Response:
    return reply(await service.cancel_task(who, task_id))


@router.post("/v1/tasks/{task_id}/retry", **route_doc(200, "CommandOut", summary="Retry a task"))
async def retry_task(task_id: TaskId, service: Service, who: Who) -> Response:
    return reply(await service.retry_task(who, task_id))


# --- workflows -----------------------------------------------------------------------------


@router.post(
    "/v1/workflows", **route_doc(201, "WorkflowOut", "WorkflowIn", summary="Submit a workflow")
)
async def submit_workflow(request: Request, service: Service, who: Who) -> Response:
    out = await service.submit_workflow(who, await read_body(request, schema.WorkflowIn))
    return reply(out, 201, {"Location": f"/v1/workflows/{out.workflow_id}"})


@router.get(
    "/v1/workflows", **route_doc(200, "WorkflowsReply", summary="List workflows (newest first)")
)
async def list_workflows(
    service: Service,
    who: Who,
    state: Annotated[WorkflowStateName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """``state``: running, succeeded, failed or cancelled. ``next_cursor`` fetches the next
    (older) page."""
    return reply(await service.list_workflows(who, state, limit, cursor))


@router.get(
    "/v1/workflows/{workflow_id}",
    **route_doc(200, "WorkflowView", summary="One workflow (its nodes a page at a time)"),
)
async def get_workflow(
    workflow_id: TaskId,
    service: Service,
    who: Who,
    node_limit: Annotated[int | None, Query(ge=1, le=MAX_WORKFLOW_PAGE)] = None,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """Counts and state cover the whole workflow; ``nodes`` (and the ``edges`` into them) are
    one page, ``next_cursor`` the next one."""
    return reply(await service.get_workflow(who, workflow_id, node_limit, cursor))


@router.post(
    "/v1/workflows/{workflow_id}/cancel",
    **route_doc(200, "CommandOut", summary="Cancel a workflow"),
)
async def cancel_workflow(workflow_id: TaskId, service: Service, who: Who) -> Response:
    return reply(await service.cancel_workflow(who, workflow_id))
