"""Pull over the API: workers that speak HTTP register, lease, heartbeat and report."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import schema
from .rest_base import RegionName, Service, Who, WorkerId, read_body, reply, route_doc

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/regions/{region}/workers",
    **route_doc(201, "RegisterWorkerOut", "RegisterWorkerIn", summary="Register a worker"),
)
async def register_worker(
    region: RegionName, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, schema.RegisterWorkerIn)
    return reply(await service.register_worker(who, region, body), 201)


@router.post(
    "/v1/regions/{region}/workers/{worker}/lease",
    **route_doc(200, "LeaseOut", "LeaseIn", summary="Long-poll for tasks to run"),
)
async def lease(
    region: RegionName, worker: WorkerId, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, schema.LeaseIn)
    return reply(await service.lease(who, region, worker, body))


@router.post(
    "/v1/regions/{region}/workers/{worker}/heartbeat",
    **route_doc(200, "HeartbeatOut", "HeartbeatIn", summary="Keep leases alive"),
)
async def heartbeat(
    region: RegionName, worker: WorkerId, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, schema.HeartbeatIn)
    return reply(await service.heartbeat(who, region, worker, body))


@router.post(
    "/v1/regions/{region}/workers/{worker}/report",
    **route_doc(200, "ReportOut", "ReportIn", summary="Report starts, progress and outcomes"),
)
async def report(
    region: RegionName, worker: WorkerId, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, schema.ReportIn)
    return reply(await service.report(who, region, worker, body))
