"""The system: regions, workers, autoscalers, statistics, live settings, health, metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..errors import EngineUnavailableError
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .rest_base import Service, Who, problem_response, read_raw, reply, route_doc

__all__ = ["router"]

router = APIRouter()


# --- the system ----------------------------------------------------------------------------


@router.get("/v1/regions", **route_doc(200, "RegionsReply", summary="Regions and their state"))
async def regions(service: Service, who: Who) -> Response:
    return reply(await service.regions(who))


@router.get(
    "/v1/workers", **route_doc(200, "WorkersReply", summary="Workers as their regions see them")
)
async def workers(
    service: Service, who: Who, region: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    return reply(await service.workers(who, region))


@router.get(
    "/v1/autoscalers",
    **route_doc(
        200,
        "AutoscalersReply",
        summary="Each region's autoscaler: desired and actual workers, decisions, health",
    ),
)
async def autoscalers(service: Service, who: Who) -> Response:
    return reply(await service.autoscalers(who))


@router.get(
    "/v1/stats",
    **route_doc(200, "StatsView", summary="Scheduler statistics, event rates and start latency"),
)
async def stats(service: Service, who: Who) -> Response:
    return reply(await service.stats(who))


@router.get("/v1/settings", **route_doc(200, "Settings", summary="The live settings"))
async def get_settings(service: Service, who: Who) -> Response:
    return reply(await service.get_settings(who))


@router.put(
    "/v1/settings", **route_doc(200, "Settings", "Settings", summary="Replace the live settings")
)
async def put_settings(request: Request, service: Service, who: Who) -> Response:
    return reply(await service.put_settings(who, await read_raw(request)))


@router.patch(
    "/v1/settings",
    **route_doc(
        200,
        "Settings",
        "SettingsPatch",
        body_media=("application/merge-patch+json", "application/json"),
        summary="Change some live settings (a JSON merge patch, RFC 7396)",
    ),
)
async def patch_settings(request: Request, service: Service, who: Who) -> Response:
    """What the patch names changes, the rest keeps its value; ``null`` returns a setting to
    its default. The master applies it to the settings in force and checks the result as
    ``PUT`` does: all of it, or nothing and an error naming the field."""
    return reply(await service.patch_settings(who, await read_raw(request)))


# --- operations ----------------------------------------------------------------------------


@router.get("/healthz", **route_doc(200, "Health", public=True, summary="The process is alive"))
async def healthz() -> Response:
    return reply({"status": "ok"})


@router.get(
    "/readyz",
    **route_doc(200, "Health", public=True, summary="NATS is connected and the master answers"),
)
async def readyz(request: Request, service: Service) -> Response:
    if await service.ready():
        return reply({"status": "ready"})
    return problem_response(EngineUnavailableError("the master does not answer"), "/readyz")


@router.get(
    "/metrics",
    **route_doc(200, {"type": "string"}, media="text/plain", summary="Prometheus metrics"),
)
async def metrics(service: Service, who: Who) -> Response:
    return Response(await service.metrics_text(who), 200, media_type=METRICS_CONTENT_TYPE)
