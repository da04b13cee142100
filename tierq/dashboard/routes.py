"""What the dashboard needs from the API beyond ``/v1``'s resources: sessions and drains.

``install(app, service)`` adds these routes and the :class:`~.security.DashboardGuard`
middleware to the REST app made by :func:`tierq.api.rest.create_app`::

    POST   /v1/session                               log in with a token -> cookie + CSRF token
    GET    /v1/session                               who the session is (and its CSRF token)
    DELETE /v1/session                               log out
    POST   /v1/regions/{region}/drain                drain every worker of a region (admin)
    POST   /v1/regions/{region}/workers/{worker}/drain   drain one worker (admin)

A drain asks the region on ``<prefix>.region.<name>.control`` with a ``DrainRequest``: the
region stops handing the worker(s) new tasks and tells them to finish what they run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from ..api.auth import Permission, Principal, TokenBucket
from ..api.errors import (
    PROBLEM_CONTENT_TYPE,
    MalformedRequestError,
    RateLimitedError,
    UnsupportedMediaTypeError,
    validation_field,
)
from ..api.rest import mount_static
from ..api.service import ApiService, Caller
from ..errors import InvalidRequestError, NotFoundError, UnauthenticatedError
from ..protocol import Ack, DrainRequest, decode_reply, encode
from .security import DashboardGuard
from .sessions import COOKIE, Session, SessionStore

__all__ = ["STATIC_DIR", "DrainOut", "LoginIn", "SessionOut", "install", "router"]

router = APIRouter()

#: The folder of the dashboard's pages, served at ``/``.
STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Failed logins allowed per second (and in a burst), across all clients of this process.
_LOGIN_FAILURE_RATE = 2.0
_LOGIN_FAILURE_BURST = 20.0

RegionName = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
WorkerId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /v1/session``: the API token to log in with."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class SessionOut(msgspec.Struct, kw_only=True):
    """Who the dashboard acts as. ``open``: the API has no tokens (everyone is admin)."""

    open: bool
    authenticated: bool
    name: str | None = None
    role: str | None = None
    #: Echo it in ``X-CSRF-Token`` on every state-changing request of this session.
    csrf_token: str | None = None
    expires_at: float | None = None


class DrainOut(msgspec.Struct, kw_only=True):
    region: str
    worker: str | None
    #: Workers told to drain.
    workers: int


_encoder = msgspec.json.Encoder()
_login_decoder = msgspec.json.Decoder(LoginIn)
_REF = "#/components/schemas/{name}"


def _json(obj: object, status: int = 200) -> Response:
    return Response(_encoder.encode(obj), status, media_type="application/json")


def _doc(status: int, out: str | None, body: str | None = None, **extra: Any) -> dict[str, Any]:
    responses: dict[int | str, Any] = {
        code: {
            "description": "A problem (RFC 9457)",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _REF.format(name="Problem")}}},
        }
        for code in (400, 401, 403, 404, 415, 422, 429, 503)
    }
    ok: dict[str, Any] = {"description": "Success"}
    if out is not None:
        ok["content"] = {"application/json": {"schema": _schema(out)}}
    responses[status] = ok
    openapi_extra: dict[str, Any] = dict(extra)
    if body is not None:
        openapi_extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(body)}},
        }
    return {
        "status_code": status,
        "responses": responses,
        "openapi_extra": openapi_extra,
        "response_class": Response,
    }


def _schema(name: str) -> dict[str, Any]:
    """The msgspec schema of one of this module's structs, inlined (no components needed)."""
    typ = {"LoginIn": LoginIn, "SessionOut": SessionOut, "DrainOut": DrainOut}[name]
    schema: dict[str, Any] = msgspec.json.schema(typ)
    defs = schema.pop("$defs", {})
    ref = schema.get("$ref", "")
    return dict(defs[ref.rsplit("/", 1)[-1]]) if ref else schema


def _store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.dashboard_sessions
    return store


def _service(request: Request) -> ApiService:
    service: ApiService = request.app.state.service
    return service


def _session_out(service: ApiService, session: Session | None) -> SessionOut:
    if service.auth.open:
        return SessionOut(open=True, authenticated=True, name="anonymous", role="admin")
    if session is None:
        return SessionOut(open=False, authenticated=False)
    return SessionOut(
        open=False,
        authenticated=True,
        name=session.name,
        role=session.role,
        csrf_token=session.csrf,
        expires_at=session.expires_at,
    )


def _cookie_header(request: Request, value: str, max_age: int) -> str:
    secure = "; Secure" if request.url.scheme == "https" else ""
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"


# --- sessions -----------------------------------------------------------------------------


@router.get("/v1/session", **_doc(200, "SessionOut", security=[]))
async def get_session(request: Request) -> Response:
    """The current session (never 401: an anonymous visitor learns it must log in)."""
    session = _store(request).get(request.cookies.get(COOKIE))
    return _json(_session_out(_service(request), session))


@router.post("/v1/session", **_doc(201, "SessionOut", "LoginIn", security=[]))
async def login(request: Request) -> Response:
    """Exchange an API token for a session cookie (HttpOnly, SameSite=Strict)."""
    service = _service(request)
    body = _decode_login(await _read_json(request))
    limiter: TokenBucket = request.app.state.dashboard_login_failures
    try:
        principal: Principal = service.auth.authenticate(f"Bearer {body.token}")
    except UnauthenticatedError:
        wait = limiter.take(time.monotonic())
        if wait is not None:
            raise RateLimitedError("too many failed logins; wait", retry_after=wait) from None
        raise UnauthenticatedError("unknown or revoked token") from None
    if service.auth.open:
        return _json(_session_out(service, None), 201)
    store = _store(request)
    store.drop(request.cookies.get(COOKIE))
    cookie, session = store.create(body.token, principal.name, principal.role.value)
    response = _json(_session_out(service, session), 201)
    response.headers["set-cookie"] = _cookie_header(request, cookie, int(store.lifetime))
    response.headers["cache-control"] = "no-store"
    return response


@router.delete("/v1/session", **_doc(204, None, security=[]))
async def logout(request: Request) -> Response:
    """End the session and clear the cookie."""
    _store(request).drop(request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.headers["set-cookie"] = _cookie_header(request, "", 0)
    return response


async def _read_json(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media and media != "application/json":
        raise UnsupportedMediaTypeError(
            f"unsupported content type {media[:100]!r}; send application/json",
            field="content-type",
        )
    return await request.body()


def _decode_login(body: bytes) -> LoginIn:
    if not body:
        raise MalformedRequestError("the request body is empty; expected a JSON object")
    try:
        return _login_decoder.decode(body)
    except msgspec.ValidationError as exc:
        field = validation_field(exc)
        text = str(exc).rsplit(" - at `", 1)[0]
        raise InvalidRequestError(f"{field}: {text}" if field else text, field=field) from None
    except msgspec.DecodeError as exc:
        raise MalformedRequestError(f"the request body is not valid JSON: {exc}") from None


# --- drains -------------------------------------------------------------------------------


@router.post("/v1/regions/{region}/drain", **_doc(200, "DrainOut"))
async def drain_region(region: RegionName, request: Request) -> Response:
    """Drain every worker of a region: no new tasks; running ones finish."""
    return _json(await _drain(request, region, None))


@router.post("/v1/regions/{region}/workers/{worker}/drain", **_doc(200, "DrainOut"))
async def drain_worker(region: RegionName, worker: WorkerId, request: Request) -> Response:
    """Drain one worker: it takes no new tasks and leaves once its running ones finish."""
    return _json(await _drain(request, region, worker))


async def _drain(request: Request, region: str, worker: str | None) -> DrainOut:
    service = _service(request)
    principal = service.auth.authenticate(request.headers.get("authorization"))
    service.auth.authorize(principal, Permission.ADMIN)
    regions = await service.regions(Caller(principal, "rest"))
    if region not in {r.name for r in regions.regions}:
        raise NotFoundError(f"no region {region!r}", ids=(region,))
    data = await service.engine.request(
        service.subjects.region(region, "control"),
        encode(DrainRequest(worker=worker)),
        timeout=service.config.request_timeout,
    )
    ack = decode_reply(data, Ack)
    return DrainOut(region=region, worker=worker, workers=ack.events)


# --- wiring -------------------------------------------------------------------------------


def install(app: FastAPI, service: ApiService) -> None:
    """Add the dashboard's routes, middleware and pages to the REST app (idempotent).

    The pages are served at ``/`` from the package, unless the API's ``static_dir`` names
    another folder (``create_app`` has mounted that one already).
    """
    if getattr(app.state, "dashboard_sessions", None) is not None:
        return
    store = SessionStore()
    app.state.dashboard_sessions = store
    app.state.dashboard_login_failures = TokenBucket(
        _LOGIN_FAILURE_RATE, _LOGIN_FAILURE_BURST, time.monotonic()
    )
    # A static mount at "/" matches every path under it: these routes go first so they are
    # found before it.
    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
    app.add_middleware(DashboardGuard, store=store, auth_open=lambda: service.auth.open)
    if service.config.static_dir is None:
        mount_static(app, STATIC_DIR)
    app.openapi_schema = None
