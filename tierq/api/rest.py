"""The REST transport: the app that puts the route modules together.

The routes live by concept (``rest_tasks``, ``rest_system``, ``rest_events``, ``rest_pull``,
``rest_shell``) over what ``rest_base`` gives them: bodies read by msgspec against the structs
of ``schema.py``, never by pydantic, so REST and gRPC share one set of rules. Every error
leaves as ``application/problem+json`` through the table in ``errors.py``; an unexpected
exception is a 500 with nothing internal in it, and is logged. The OpenAPI document is
FastAPI's, with the msgspec schemas of the bodies put in.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import Message, Receive, Scope, Send

from ..core.model import Task
from ..core.records import WorkflowView
from ..core.settings import Settings
from ..errors import InvalidRequestError, NotFoundError, PayloadTooLargeError, TierqError
from ..protocol import (
    AutoscalersReply,
    RegionsReply,
    ScheduleReply,
    SchedulesReply,
    ScheduleView,
    StatsView,
    TasksReply,
    WorkersReply,
    WorkflowsReply,
)
from . import rest_events, rest_pull, rest_schedules, rest_shell, rest_system, rest_tasks, schema
from . import schedules as schedule_ops
from .docs import install_docs
from .errors import (
    PROBLEM_CONTENT_TYPE,
    MalformedRequestError,
    MethodNotAllowedError,
    Problem,
    problem_for,
    problem_headers,
)
from .hosts import HostGuard, allowed_hosts
from .rest_base import REF, problem_response
from .service import ApiService
from .shell import ScheduleIn, ScheduleOut, ShellStatus

__all__ = ["create_app", "mount_static"]

log = logging.getLogger("tierq.api")

_encoder = msgspec.json.Encoder()

#: Every route module, in the order their routes are matched.
ROUTERS = (
    rest_tasks.router,
    rest_system.router,
    rest_events.router,
    rest_pull.router,
    rest_shell.router,
    rest_schedules.router,
)

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
    schedule_ops.ScheduleDefIn,
    schedule_ops.SchedulePauseIn,
    schedule_ops.ScheduleBackfillIn,
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
    AutoscalersReply,
    StatsView,
    Settings,
    ScheduleView,
    SchedulesReply,
    ScheduleReply,
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


# --- the app -------------------------------------------------------------------------------


def create_app(service: ApiService, static_dir: Path | None = None) -> FastAPI:
    """The REST app over ``service``: routes, error handling, body limit, OpenAPI, and the
    files of ``static_dir`` at ``/`` if given (the dashboard adds its own with its routes)."""
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
    for router in ROUTERS:
        app.include_router(router)
    install_docs(app)
    _install_error_handlers(app, service)
    _install_openapi(app)
    if static_dir is not None:
        mount_static(app, static_dir)
    app.add_middleware(BodyLimit, limit=service.config.max_body_bytes)
    config = service.config
    app.add_middleware(
        HostGuard,
        allowed=allowed_hosts(config.allowed_hosts, [config.host]),
        hsts=config.tls_cert is not None,
    )
    return app


def mount_static(app: FastAPI, directory: Path) -> None:
    """Serve the files of ``directory`` at ``/``. Mounted after the routes there are, so every
    API route wins over a file of the same name, and never answering for an API path."""
    app.router.routes.append(
        _StaticMount("/", StaticFiles(directory=directory, html=True), name="dashboard")
    )


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
    for route in [*(r for router in ROUTERS for r in router.routes), *app.router.routes]:
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
            _BODY_TYPES + _OUT_TYPES, ref_template=REF, schema_hook=_any_json
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
                            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF.format(name="Problem")}}
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
    "SettingsPatch": {
        "type": "object",
        "description": (
            "A JSON merge patch (RFC 7396) of Settings: the members it names replace theirs "
            "(objects merge member by member), null returns a setting to its default, the rest "
            "keeps its value. The result is checked as a whole Settings document is."
        ),
        "additionalProperties": True,
    },
    "Health": {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
    },
}
