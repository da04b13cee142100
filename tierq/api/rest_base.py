"""What every REST route module uses: strict JSON bodies, JSON replies, documented routes.

Bodies are read by msgspec against the structs of ``schema.py`` (strict: unknown fields and
wrong types are errors naming the field), never by pydantic, so REST and gRPC share one set
of rules. ``route_doc`` gives a route's OpenAPI description: its success body, its request
body and the problem documents every route can answer with.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from ..errors import InvalidRequestError, TierqError, UnauthenticatedError
from .errors import (
    PROBLEM_CONTENT_TYPE,
    MalformedRequestError,
    UnsupportedMediaTypeError,
    problem_for,
    problem_headers,
    validation_field,
)
from .integral import INT_GOT_FLOAT, convert_integral
from .service import ApiService, Caller

__all__ = [
    "REF",
    "RegionName",
    "Service",
    "TaskId",
    "Who",
    "WorkerId",
    "decode_json",
    "problem_response",
    "read_body",
    "read_raw",
    "reply",
    "route_doc",
]

T = TypeVar("T")

#: Where the OpenAPI document keeps a named schema.
REF = "#/components/schemas/{name}"
_ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 504)

_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()


def reply(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``obj`` as a JSON response."""
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
    return {"$ref": REF.format(name=name)}


def route_doc(
    status: int,
    out: str | dict[str, str] | None,
    body: str | None = None,
    *,
    media: str = "application/json",
    body_media: tuple[str, ...] = ("application/json",),
    summary: str | None = None,
    public: bool = False,
    conditional: bool = False,
) -> dict[str, Any]:
    """Decorator arguments documenting one route: its success body, its request body, and
    the problem documents every route can answer with (and 412 if ``conditional``: the route
    takes ``If-Match``)."""
    statuses = _ERROR_STATUSES if not public else (503,)
    responses: dict[int | str, Any] = {
        code: {
            "description": "A problem (RFC 9457)",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _ref("Problem")}},
        }
        for code in ((*statuses, 412) if conditional else statuses)
    }
    ok: dict[str, Any] = {"description": "Success"}
    if out is not None:
        ok["content"] = {media: {"schema": _ref(out) if isinstance(out, str) else out}}
    responses[status] = ok
    extra: dict[str, Any] = {}
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {kind: {"schema": _ref(body)} for kind in body_media},
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
