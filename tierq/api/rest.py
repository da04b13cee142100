"""The REST transport: routes under ``/v1`` that parse, call the service and serialise.

Bodies are read by msgspec against the structs of ``schema.py`` (strict: unknown fields and
wrong types are errors naming the field), never by pydantic, so REST and gRPC share one set
of rules. Every error leaves as ``application/problem+json`` through the table in
``errors.py``; an unexpected exception is a 500 with nothing internal in it, and is logged.
The OpenAPI document is FastAPI's, with the msgspec schemas of the bodies put in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import Message, Receive, Scope, Send

from ..core.model import Task
from ..core.records import WorkflowView
from ..core.settings import Settings
from ..errors import (
    EngineUnavailableError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    TierqError,
    UnauthenticatedError,
)
from ..protocol import (
    MAX_WORKFLOW_PAGE,
    RegionsReply,
    StatsView,
    TasksReply,
    WorkersReply,
    WorkflowsReply,
)
from . import schema
from .auth import Permission
from .docs import install_docs
from .errors import (
    PROBLEM_CONTENT_TYPE,
    MalformedRequestError,
    MethodNotAllowedError,
    Problem,
    UnsupportedMediaTypeError,
    problem_for,
    problem_headers,
    validation_field,
)
from .feed import MAX_AFTER, EventFilter, FeedEvent, Watch
from .hosts import HostGuard, allowed_hosts
from .integral import INT_GOT_FLOAT, convert_integral
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .schema import TaskQuery
from .service import ApiService, Caller
from .shell import ScheduleIn, ScheduleOut, ShellStatus

__all__ = ["create_app"]

log = logging.getLogger("tierq.api")

T = TypeVar("T")

#: Where the dashboard's static files live when it is installed.
DASHBOARD_STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"

_REF = "#/components/schemas/{name}"
_ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504)
_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()

_BODY_TYPES: tuple[type, ...] = (
    schema.TaskSpecIn,
    schema.BatchIn,
    schema.WorkflowIn,
    schema.PriorityPatch,
    schema.WaitIn,
    schema.RegisterWorkerIn,
    schema.LeaseIn,
    schema.HeartbeatIn,
    schema.ReportIn,
    ScheduleIn,
)
_OUT_TYPES: tuple[type, ...] = (
    schema.SubmitOut,
    schema.BatchOut,
    schema.WorkflowOut,
    schema.CommandOut,
    Task,
    TasksReply,
    schema.RegisterWorkerOut,
    schema.LeaseOut,
    schema.HeartbeatOut,
    schema.ReportOut,
    ScheduleOut,
    ShellStatus,
    Problem,
    WorkflowView,
    WorkflowsReply,
    RegionsReply,
    WorkersReply,
    StatsView,
    Settings,
)


# --- body size limit (before anything is parsed) ---------------------------------------


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413, before parsing them.

    A declared ``Content-Length`` over the limit is refused before the body is read; a
    chunked body is counted as it arrives and refused at the limit. Either way the rest of
    the body is read and thrown away (up to a cap) before answering, because a client still
    sending would otherwise see the connection reset instead of the 413. A client that sent
    ``Expect: 100-continue`` never sends the body at all.
    """

    #: Bytes of an oversized body read and discarded so the client can read the answer.
    DRAIN_CAP = 64 << 20

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        expects_continue = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
            elif name == b"expect" and value.lower() == b"100-continue":
                expects_continue = True
        if declared is not None and (declared > self.limit or declared < 0):
            if declared < 0:
                exc: TierqError = MalformedRequestError("Content-Length is not a number")
            else:
                exc = self._too_large()
            if not expects_continue and 0 < declared <= self.DRAIN_CAP:
                await _drain(receive, self.DRAIN_CAP)
            await _send_problem(scope, send, exc)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    if message.get("more_body"):
                        await _drain(receive, self.DRAIN_CAP)
                    raise self._too_large()
            return message

        await self.app(scope, counting, send)

    def _too_large(self) -> TierqError:
        return PayloadTooLargeError(
            f"request body is larger than the limit of {self.limit} bytes", field="body"
        )


async def _drain(receive: Receive, cap: int) -> None:
    read = 0
    while read <= cap:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body"):
            return


async def _send_problem(scope: Scope, send: Send, exc: TierqError) -> None:
    problem = problem_for(exc, scope.get("path"))
    body = _encoder.encode(problem)
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem_headers(problem).items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- helpers ------------------------------------------------------------------------------


def _json(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(obj), status, headers, media_type="application/json")


def problem_response(exc: TierqError, instance: str | None) -> Response:
    problem = problem_for(exc, instance)
    return Response(
        _encoder.encode(problem),
        problem.status,
        problem_headers(problem),
        media_type=PROBLEM_CONTENT_TYPE,
    )


async def read_raw(request: Request) -> bytes:
    """The request body, if it is JSON (by its content type; none given is taken as JSON)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"unsupported content type {media[:100]!r}; send application/json",
            field="content-type",
        )
    return await request.body()


async def read_body(request: Request, typ: type[T]) -> T:
    """The request body as ``typ``: JSON only, strict, errors naming the field."""
    return decode_json(await read_raw(request), typ)


def decode_json(body: bytes, typ: type[T]) -> T:
    decoder = _decoders.get(typ)
    if decoder is None:
        decoder = _decoders[typ] = msgspec.json.Decoder(typ)
    if not body:
        raise MalformedRequestError("the request body is empty; expected a JSON object")
    try:
        try:
            return decoder.decode(body)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            if not str(exc).startswith(INT_GOT_FLOAT):
                raise
            # JSON Schema's integer includes 3.0; accept it where the field is an int.
            return convert_integral(body, typ)
    except msgspec.ValidationError as exc:
        field = validation_field(exc)
        text = str(exc).rsplit(" - at `", 1)[0]
        raise InvalidRequestError(f"{field}: {text}" if field else text, field=field) from None
    except msgspec.DecodeError as exc:
        raise MalformedRequestError(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedRequestError("the request body is nested too deeply") from None


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _doc(
    status: int,
    out: str | dict[str, str] | None,
    body: str | None = None,
    *,
    media: str = "application/json",
    summary: str | None = None,
    public: bool = False,
) -> dict[str, Any]:
    """Decorator arguments documenting one route: its success body, its request body, and
    the problem documents every route can answer with."""
    responses: dict[int | str, Any] = {
        code: {
            "description": "A problem (RFC 9457)",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _ref("Problem")}},
        }
        for code in (_ERROR_STATUSES if not public else (503,))
    }
    ok: dict[str, Any] = {"description": "Success"}
    if out is not None:
        ok["content"] = {media: {"schema": _ref(out) if isinstance(out, str) else out}}
    responses[status] = ok
    extra: dict[str, Any] = {}
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if public:
        extra["security"] = []
    return {
        "status_code": status,
        "responses": responses,
        "openapi_extra": extra,
        "response_class": Response,
        "summary": summary,
    }


# --- dependencies -------------------------------------------------------------------------


# Dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` ones in a thread pool,
# two thread hops per request that cost more than everything else the API does.
async def _service(request: Request) -> ApiService:
    service: ApiService = request.app.state.service
    return service


async def _caller(request: Request) -> Caller:
    service: ApiService = request.app.state.service
    try:
        principal = service.auth.authenticate(request.headers.get("authorization"))
    except UnauthenticatedError:
        service.metrics.rejected.labels("rest", "unauthenticated").inc()
        raise
    return Caller(principal, "rest")


Service = Annotated[ApiService, Depends(_service)]
Who = Annotated[Caller, Depends(_caller)]
TaskId = Annotated[str, PathParam(min_length=1, max_length=256)]
RegionName = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
WorkerId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]

router = APIRouter()

# --- tasks ---------------------------------------------------------------------------------


@router.post("/v1/tasks", **_doc(201, "SubmitOut", "TaskSpecIn", summary="Submit a task"))
async def submit_task(request: Request, service: Service, who: Who) -> Response:
    out = await service.submit_task(who, await read_body(request, schema.TaskSpecIn))
    return _json(out, 201, {"Location": f"/v1/tasks/{out.id}"})


@router.post(
    "/v1/tasks:batch",
    **_doc(201, "BatchOut", "BatchIn", summary="Submit many tasks (all or nothing)"),
)
async def submit_tasks(request: Request, service: Service, who: Who) -> Response:
    out = await service.submit_tasks(who, await read_body(request, schema.BatchIn))
    return _json(out, 201)


@router.post(
    "/v1/tasks:wait", **_doc(200, "TasksReply", "WaitIn", summary="Wait until tasks are terminal")
)
async def wait_tasks(request: Request, service: Service, who: Who) -> Response:
    return _json(await service.wait_tasks(who, await read_body(request, schema.WaitIn)))


@router.get("/v1/tasks/{task_id}", **_doc(200, "Task", summary="One task"))
async def get_task(task_id: TaskId, service: Service, who: Who) -> Response:
    return _json(await service.get_task(who, task_id))


#: The states a list may filter on, as the OpenAPI document's enums (the server's own sets).
TaskStateName = Literal[
    "pending", "ready", "assigned", "running", "succeeded", "failed", "dead", "cancelled", "skipped"
]
WorkflowStateName = Literal["running", "succeeded", "failed", "cancelled"]


@router.get("/v1/tasks", **_doc(200, "TasksReply", summary="List tasks (cursor pagination)"))
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
) -> Response:
    query = TaskQuery(
        state=state,
        name=name,
        queue=queue,
        region=region,
        workflow=workflow,
        limit=limit,
        cursor=cursor,
    )
    return _json(await service.list_tasks(who, query))


@router.patch(
    "/v1/tasks/{task_id}",
    **_doc(200, "CommandOut", "PriorityPatch", summary="Change a task's priority"),
)
async def update_task(task_id: TaskId, request: Request, service: Service, who: Who) -> Response:
    patch = await read_body(request, schema.PriorityPatch)
    return _json(await service.update_task(who, task_id, patch))


@router.post("/v1/tasks/{task_id}/cancel", **_doc(200, "CommandOut", summary="Cancel a task"))
async def cancel_task(task_id: TaskId, service: Service, who: Who) -> Response:
    return _json(await service.cancel_task(who, task_id))


@router.post("/v1/tasks/{task_id}/retry", **_doc(200, "CommandOut", summary="Retry a task"))
async def retry_task(task_id: TaskId, service: Service, who: Who) -> Response:
    return _json(await service.retry_task(who, task_id))


# --- workflows -----------------------------------------------------------------------------


@router.post("/v1/workflows", **_doc(201, "WorkflowOut", "WorkflowIn", summary="Submit a workflow"))
async def submit_workflow(request: Request, service: Service, who: Who) -> Response:
    out = await service.submit_workflow(who, await read_body(request, schema.WorkflowIn))
    return _json(out, 201, {"Location": f"/v1/workflows/{out.workflow_id}"})


@router.get("/v1/workflows", **_doc(200, "WorkflowsReply", summary="List workflows (newest first)"))
async def list_workflows(
    service: Service,
    who: Who,
    state: Annotated[WorkflowStateName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """``state``: running, succeeded, failed or cancelled. ``next_cursor`` fetches the next
    (older) page."""
    return _json(await service.list_workflows(who, state, limit, cursor))


@router.get(
    "/v1/workflows/{workflow_id}",
    **_doc(200, "WorkflowView", summary="One workflow (its nodes a page at a time)"),
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
    return _json(await service.get_workflow(who, workflow_id, node_limit, cursor))


@router.post(
    "/v1/workflows/{workflow_id}/cancel", **_doc(200, "CommandOut", summary="Cancel a workflow")
)
async def cancel_workflow(workflow_id: TaskId, service: Service, who: Who) -> Response:
    return _json(await service.cancel_workflow(who, workflow_id))


# --- the system ----------------------------------------------------------------------------


@router.get("/v1/regions", **_doc(200, "RegionsReply", summary="Regions and their state"))
async def regions(service: Service, who: Who) -> Response:
    return _json(await service.regions(who))


@router.get("/v1/workers", **_doc(200, "WorkersReply", summary="Workers as their regions see them"))
async def workers(
    service: Service, who: Who, region: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    return _json(await service.workers(who, region))


@router.get(
    "/v1/stats",
    **_doc(200, "StatsView", summary="Scheduler statistics, event rates and start latency"),
)
async def stats(service: Service, who: Who) -> Response:
    return _json(await service.stats(who))


@router.get("/v1/settings", **_doc(200, "Settings", summary="The live settings"))
async def get_settings(service: Service, who: Who) -> Response:
    return _json(await service.get_settings(who))


@router.put(
    "/v1/settings", **_doc(200, "Settings", "Settings", summary="Replace the live settings")
)
async def put_settings(request: Request, service: Service, who: Who) -> Response:
    return _json(await service.put_settings(who, await read_raw(request)))


# --- event feed ----------------------------------------------------------------------------


@router.get(
    "/v1/events",
    **_doc(
        200,
        {"type": "string"},
        media="text/event-stream",
        summary="Lifecycle events (Server-Sent Events), resumable with Last-Event-ID",
    ),
)
async def events(
    service: Service,
    who: Who,
    kinds: Annotated[str | None, Query(max_length=2000)] = None,
    task: Annotated[str | None, Query(max_length=256)] = None,
    workflow: Annotated[str | None, Query(max_length=256)] = None,
    region: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_AFTER)] = None,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> Response:
    resume = after
    if last_event_id:
        # ASCII digits only: str.isdigit() is also true for "²" and other digits int() refuses.
        if not (last_event_id.isascii() and last_event_id.isdigit()):
            raise InvalidRequestError(
                "Last-Event-ID must be a stream sequence number", field="Last-Event-ID"
            )
        resume = int(last_event_id)
    filt = EventFilter(
        kinds=[k for k in (kinds or "").split(",") if k],
        task_id=task,
        workflow_id=workflow,
        region=region,
    )
    watch = await service.watch_events(who, filt, resume)
    return StreamingResponse(
        _sse(
            watch,
            service.config.sse_keepalive,
            service.redactor.view(who.principal.can(Permission.ADMIN)),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- pull over the API ---------------------------------------------------------------------


@router.post(
    "/v1/regions/{region}/workers",
    **_doc(201, "RegisterWorkerOut", "RegisterWorkerIn", summary="Register a worker"),
)
async def register_worker(
    region: RegionName, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, schema.RegisterWorkerIn)
    return _json(await service.register_worker(who, region, body), 201)


@router.post(
    "/v1/regions/{region}/workers/{worker}/lease",
    **_doc(200, "LeaseOut", "LeaseIn", summary="Long-poll for tasks to run"),
)
async def lease(
    region: RegionName, worker: WorkerId, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, schema.LeaseIn)
    return _json(await service.lease(who, region, worker, body))


@router.post(
    "/v1/regions/{region}/workers/{worker}/heartbeat",
    **_doc(200, "HeartbeatOut", "HeartbeatIn", summary="Keep leases alive"),
)
async def heartbeat(
    region: RegionName, worker: WorkerId, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, schema.HeartbeatIn)
    return _json(await service.heartbeat(who, region, worker, body))


@router.post(
    "/v1/regions/{region}/workers/{worker}/report",
    **_doc(200, "ReportOut", "ReportIn", summary="Report starts, progress and outcomes"),
)
async def report(
    region: RegionName, worker: WorkerId, request: Request, service: Service, who: Who
) -> Response:
    body = await read_body(request, schema.ReportIn)
    return _json(await service.report(who, region, worker, body))


# --- seed compatibility: the shell task type -----------------------------------------------


@router.post(
    "/schedule", **_doc(201, "ScheduleOut", "ScheduleIn", summary="Schedule a shell command")
)
async def schedule(request: Request, service: Service, who: Who) -> Response:
    body = await read_body(request, ScheduleIn)
    return _json(await service.schedule_shell(who, body), 201)


@router.get("/status/", **_doc(200, "ShellStatus", summary="Status of a scheduled command"))
async def status(
    service: Service, who: Who, task_id: Annotated[str, Query(min_length=1, max_length=256)]
) -> Response:
    return _json(await service.shell_status(who, task_id))


# --- operations ----------------------------------------------------------------------------


@router.get("/healthz", **_doc(200, "Health", public=True, summary="The process is alive"))
async def healthz() -> Response:
    return _json({"status": "ok"})


@router.get(
    "/readyz",
    **_doc(200, "Health", public=True, summary="NATS is connected and the master answers"),
)
async def readyz(request: Request, service: Service) -> Response:
    if await service.ready():
        return _json({"status": "ready"})
    return problem_response(EngineUnavailableError("the master does not answer"), "/readyz")


@router.get(
    "/metrics",
    **_doc(200, {"type": "string"}, media="text/plain", summary="Prometheus metrics"),
)
async def metrics(service: Service, who: Who) -> Response:
    return Response(await service.metrics_text(who), 200, media_type=METRICS_CONTENT_TYPE)


# --- the app -------------------------------------------------------------------------------


def create_app(service: ApiService, static_dir: Path | None = None) -> FastAPI:
    """The REST app over ``service``: routes, error handling, body limit, OpenAPI, dashboard."""
    app = FastAPI(
        title="tierq API",
        version="1",
        description=(
            "Submit, watch and steer tasks and workflows. Errors are RFC 9457 problem "
            "documents. Authenticate with `Authorization: Bearer <token>` when the server "
            "has tokens configured."
        ),
        openapi_url="/openapi.json",
        docs_url=None,  # our own page: Swagger UI from the package, not a CDN
        redoc_url=None,
    )
    app.state.service = service
    app.include_router(router)
    install_docs(app)
    _install_error_handlers(app, service)
    _install_openapi(app)
    static = static_dir or (DASHBOARD_STATIC if DASHBOARD_STATIC.is_dir() else None)
    if static is not None:
        # The dashboard (tierq/dashboard, another issue) is static files. Mounted last, so
        # every API route above wins over a file of the same name.
        app.router.routes.append(
            _StaticMount("/", StaticFiles(directory=static, html=True), name="dashboard")
        )
    app.add_middleware(BodyLimit, limit=service.config.max_body_bytes)
    config = service.config
    app.add_middleware(
        HostGuard,
        allowed=allowed_hosts(config.allowed_hosts, [config.host]),
        hsts=config.tls_cert is not None,
    )
    return app


class _StaticMount(Mount):
    """The dashboard's files at ``/``, never answering for an API path.

    A mount at ``/`` matches every path fully, and Starlette prefers a full match to a route
    that matched the path but not the method: ``GET`` on a POST-only API route would reach the
    file server (404) instead of answering 405 with its ``Allow`` header.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path: str = scope.get("path", "")
        if path in _API_EXACT or path.startswith(_API_PREFIXES):
            return Match.NONE, {}
        return super().matches(scope)


_API_PREFIXES = ("/v1/", "/metrics", "/healthz", "/readyz", "/openapi.json", "/docs", "/schedule")
_API_EXACT = frozenset({"/v1", "/status/"})


async def _sse(
    watch: Watch, keepalive: float, visible: Callable[[FeedEvent], Awaitable[FeedEvent]]
) -> AsyncIterator[bytes]:
    """Server-Sent Events: ``id`` is the stream sequence, ``event`` the kind, ``data`` JSON."""
    try:
        # A comment first: proxies and clients see the stream is open before any event.
        yield b": tierq events\nretry: 2000\n\n"
        while True:
            event = await watch.next(keepalive)
            if event is None:
                yield b": keep-alive\n\n"
                continue
            event = await visible(event)
            head = f"id: {event.sequence}\n" if event.sequence else ""
            data = b"".join(b"data: " + line + b"\n" for line in event.data.splitlines())
            yield f"{head}event: {event.kind}\n".encode() + data + b"\n"
    except TierqError as exc:
        # The feed ended (shutdown, NATS gone): end the stream; the client resumes by id.
        log.info("event stream ended: %s", exc)
    finally:
        await watch.aclose()


def _install_error_handlers(app: FastAPI, service: ApiService) -> None:
    async def on_tierq(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TierqError)
        if isinstance(exc, PayloadTooLargeError | MalformedRequestError):
            service.metrics.rejected.labels("rest", exc.code).inc()
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header")]
        field = ".".join(loc) or None
        message = str(first.get("msg", "invalid request"))
        error = InvalidRequestError(f"{field}: {message}" if field else message, field=field)
        return problem_response(error, request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error: TierqError
        if exc.status_code == 404:
            error = NotFoundError(f"no route {request.url.path[:200]!r}")
        elif exc.status_code == 405:
            error = MethodNotAllowedError(
                f"{request.method} is not allowed on {request.url.path[:200]!r}"
            )
            response = problem_response(error, request.url.path)
            # RFC 9110: a 405 lists what is allowed. Starlette names only the first route
            # that matched the path; GET and POST on one path are two routes.
            response.headers["Allow"] = _allowed_methods(app, request.scope)
            return response
        elif exc.status_code == 413:
            error = PayloadTooLargeError(str(exc.detail))
        else:
            error = InvalidRequestError(str(exc.detail))
        return problem_response(error, request.url.path)

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return problem_response(TierqError("internal error"), request.url.path)

    app.add_exception_handler(TierqError, on_tierq)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_error)


def _allowed_methods(app: FastAPI, scope: Scope) -> str:
    """Every method some route answers on this path (the ``Allow`` of a 405)."""
    methods: set[str] = set()
    # The app's own list holds the included router as one entry: look at its routes.
    for route in [*router.routes, *app.router.routes]:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods.update(route_methods)
    return ", ".join(sorted(methods))


def _install_openapi(app: FastAPI) -> None:
    """FastAPI's document, with msgspec's schemas for bodies and problems put in."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        _, components = msgspec.json.schema_components(
            _BODY_TYPES + _OUT_TYPES, ref_template=_REF, schema_hook=_any_json
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas.update(_plain_tuples(components))
        schemas.update(_LOOSE_SCHEMAS)
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An API token"}
        }
        doc["security"] = [{"bearer": []}]
        for path in doc.get("paths", {}).values():
            for op in path.values():
                for code, response in op.get("responses", {}).items():
                    if code == "422":
                        response["content"] = {
                            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _REF.format(name="Problem")}}
                        }
                        response["description"] = "A problem (RFC 9457)"
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _plain_tuples(node: Any) -> Any:
    """Fixed-size arrays (the core's ``(parent, child)`` pairs) as plain bounded arrays.

    msgspec writes a tuple with ``prefixItems``, which is right for OpenAPI 3.1 but which
    common tooling (schemathesis's response validation among it) still misreads; an array of
    exactly two items of either type says nearly as much and reads everywhere.
    """
    if isinstance(node, list):
        return [_plain_tuples(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _plain_tuples(value) for key, value in node.items()}
    prefix = out.pop("prefixItems", None)
    if prefix is not None:
        kinds = {json.dumps(p, sort_keys=True): p for p in prefix}
        out["items"] = (
            next(iter(kinds.values())) if len(kinds) == 1 else {"anyOf": list(kinds.values())}
        )
    return out


def _any_json(typ: type) -> dict[str, Any]:
    """The core types JSON values as ``object``; in a schema that is "any JSON value"."""
    if typ is object:
        return {"description": "any JSON value"}
    # msgspec's schema_hook contract: this exception means "not a type handled here".
    raise NotImplementedError


#: Schemas of documents that have no struct.
_LOOSE_SCHEMAS: dict[str, Any] = {
    "Health": {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
    },
}
