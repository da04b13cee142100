"""The one table from tierq errors to HTTP statuses, problem documents and gRPC codes.

Both transports ask this module, so a REST client and a gRPC client always see the same
error for the same mistake. Lookup walks the exception's classes from the most specific one,
so a new subclass in ``tierq.errors`` inherits its parent's row until it gets its own.

An error travels as an RFC 9457 problem document (``application/problem+json``)::

    {"type": "urn:tierq:problem:cycle", "title": "Invalid request", "status": 400,
     "detail": "dependency cycle: a -> b -> a", "code": "cycle", "ids": ["a", "b"]}

gRPC carries the same document, as JSON, in the ``tierq-error`` trailing metadata.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, NamedTuple

import grpc
import grpc.aio
import msgspec
from starlette.types import Scope, Send

from ..core.settings_doc import field_path, validation_field
from ..errors import BackpressureError, InvalidRequestError, TierqError

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "MisdirectedRequestError",
    "Problem",
    "RateLimitedError",
    "Row",
    "UnsupportedMediaTypeError",
    "grpc_metadata",
    "problem_for",
    "problem_headers",
    "row_for",
    "send_problem",
    "validation_field",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:tierq:problem:"


class MalformedRequestError(InvalidRequestError):
    """The body is not parseable at all (bad JSON, invalid protobuf, bad UTF-8)."""

    code = "malformed_request"


class UnsupportedMediaTypeError(InvalidRequestError):
    """A body in a format the API does not read: it reads JSON only."""

    code = "unsupported_media_type"


class MethodNotAllowedError(InvalidRequestError):
    code = "method_not_allowed"


class MisdirectedRequestError(InvalidRequestError):
    """The request's ``Host`` is not a name this server answers for (DNS rebinding)."""

    code = "misdirected_request"


class RateLimitedError(BackpressureError):
    """This token sent more requests than its rate limit allows; retry after ``retry_after``."""

    code = "rate_limited"


class Row(NamedTuple):
    """How one kind of error looks on each transport."""

    status: int
    grpc: grpc.StatusCode
    title: str


_S = grpc.StatusCode
_INTERNAL = Row(500, _S.INTERNAL, "Internal error")

#: By error ``code``. Codes, not classes, so rows for errors the tree gains later (and codes
#: coming back from another process) need no import here.
TABLE: dict[str, Row] = {
    "invalid_request": Row(422, _S.INVALID_ARGUMENT, "Invalid request"),
    "malformed_request": Row(400, _S.INVALID_ARGUMENT, "Malformed request"),
    "unsupported_media_type": Row(415, _S.INVALID_ARGUMENT, "Unsupported media type"),
    "method_not_allowed": Row(405, _S.UNIMPLEMENTED, "Method not allowed"),
    "misdirected_request": Row(421, _S.INVALID_ARGUMENT, "Misdirected request"),
    # Graph errors name the offending ids; RELIABILITY.md §3 asks for 400 here.
    "cycle": Row(400, _S.INVALID_ARGUMENT, "Dependency cycle"),
    "unknown_task": Row(400, _S.INVALID_ARGUMENT, "Unknown dependency"),
    "duplicate_task": Row(400, _S.INVALID_ARGUMENT, "Duplicate id"),
    "graph_too_large": Row(422, _S.INVALID_ARGUMENT, "Workflow too large"),
    # A state change the task's current state forbids: the input is fine, the moment is not.
    "invalid_transition": Row(409, _S.FAILED_PRECONDITION, "Not allowed in this state"),
    "payload_too_large": Row(413, _S.RESOURCE_EXHAUSTED, "Payload too large"),
    "not_found": Row(404, _S.NOT_FOUND, "Not found"),
    "conflict": Row(409, _S.FAILED_PRECONDITION, "Conflict"),
    "changed_since_read": Row(412, _S.FAILED_PRECONDITION, "Changed since read"),
    "idempotency_conflict": Row(409, _S.ALREADY_EXISTS, "Idempotency key reused"),
    "backpressure": Row(429, _S.RESOURCE_EXHAUSTED, "Too many queued tasks"),
    "rate_limited": Row(429, _S.RESOURCE_EXHAUSTED, "Rate limit exceeded"),
    "circuit_open": Row(503, _S.UNAVAILABLE, "Circuit open"),
    "unauthenticated": Row(401, _S.UNAUTHENTICATED, "Unauthenticated"),
    "permission_denied": Row(403, _S.PERMISSION_DENIED, "Permission denied"),
    "unavailable": Row(503, _S.UNAVAILABLE, "Service unavailable"),
    "fenced": Row(503, _S.UNAVAILABLE, "Service unavailable"),
    "intake_behind": Row(503, _S.UNAVAILABLE, "Submission not applied yet"),
    "wait_timeout": Row(504, _S.DEADLINE_EXCEEDED, "Timed out"),
    "internal": _INTERNAL,
}

#: Seconds a client is told to wait after an error that carries no hint of its own.
_UNAVAILABLE_RETRY_AFTER = 1.0


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document, with tierq's extension members."""

    #: Stable identifier of the kind of problem: ``urn:tierq:problem:<code>``.
    type: str
    title: str
    status: int
    #: What was wrong, naming the offending value or ids.
    detail: str
    #: The tierq error code (the last part of ``type``).
    code: str
    #: The request path (REST) or method (gRPC).
    instance: str | None = None
    #: The offending field, as a path into the request body (``tasks[3].priority``).
    field: str | None = None
    #: Ids the problem is about (the tasks on a cycle, unknown dependencies…).
    ids: list[str] = []
    #: Seconds to wait before retrying (also sent as ``Retry-After``).
    retry_after: float | None = None


def row_for(exc: TierqError) -> Row:
    """The table row of ``exc``: its own code's, else its nearest ancestor's."""
    for cls in type(exc).__mro__:
        code = cls.__dict__.get("code")
        if isinstance(code, str) and code in TABLE:
            return TABLE[code]
    return _INTERNAL


def problem_for(exc: TierqError, instance: str | None = None) -> Problem:
    row = row_for(exc)
    info = exc.to_info()
    retry_after = info.retry_after
    if retry_after is None and row.status == 503:
        retry_after = _UNAVAILABLE_RETRY_AFTER
    # Never leak internals (paths, reprs of server objects) in an unexpected error.
    detail = "internal error; see the API server's log" if row is _INTERNAL else info.message
    # A message may quote what the client sent (a 10,000-character id): bounded, so the
    # document fits into gRPC metadata and an error never grows with the input.
    field = field_path(info.field)
    return Problem(
        type=_TYPE_PREFIX + info.code if row is not _INTERNAL else _TYPE_PREFIX + "internal",
        title=row.title,
        status=row.status,
        detail=_bounded(detail, MAX_DETAIL),
        code=info.code if row is not _INTERNAL else "internal",
        instance=_bounded(instance, MAX_FIELD) if instance else instance,
        field=_bounded(field, MAX_FIELD) if field else field,
        ids=[_bounded(i, MAX_FIELD) for i in info.ids[:MAX_IDS]],
        retry_after=retry_after,
    )


def problem_headers(problem: Problem) -> dict[str, str]:
    """HTTP headers that go with a problem response."""
    headers: dict[str, str] = {}
    if problem.retry_after is not None:
        # Retry-After takes whole seconds; round up so a client never comes back too early.
        headers["Retry-After"] = str(max(1, math.ceil(problem.retry_after)))
    if problem.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tierq"'
    return headers


#: Longest ``detail``, ``field``/``instance``/id and id count in a problem document.
MAX_DETAIL = 1000
MAX_FIELD = 200
MAX_IDS = 100
#: Longest ``tierq-error`` value: gRPC refuses a call whose metadata passes 8 KiB in all.
_MAX_GRPC_DOC = 4096


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def grpc_metadata(problem: Problem) -> tuple[tuple[str, str], ...]:
    """Trailing metadata of a failed call: the problem as ASCII JSON, plus ``retry-after``."""
    doc = _grpc_doc(problem)
    while len(doc) > _MAX_GRPC_DOC:
        # Escaped non-ASCII text can still be long: keep as many ids, then as much detail,
        # as fit.
        if problem.ids:
            problem = msgspec.structs.replace(problem, ids=problem.ids[: len(problem.ids) // 2])
        else:
            problem = msgspec.structs.replace(problem, detail=grpc_detail(problem))
            doc = _grpc_doc(problem)
            break
        doc = _grpc_doc(problem)
    meta: list[tuple[str, str]] = [("tierq-error", doc)]
    if problem.retry_after is not None:
        meta.append(("retry-after", str(max(1, math.ceil(problem.retry_after)))))
    return tuple(meta)


def grpc_detail(problem: Problem) -> str:
    """The status message of a failed call: short, it travels in metadata too."""
    return _bounded(problem.detail, 300)


def _grpc_doc(problem: Problem) -> str:
    return json.dumps(msgspec.to_builtins(problem), ensure_ascii=True, separators=(",", ":"))


_problem_encoder = msgspec.json.Encoder()


async def send_problem(scope: Scope, send: Send, exc: TierqError) -> None:
    """Answer an ASGI request with the problem document of ``exc`` (for middleware that
    refuses a request before any route sees it)."""
    problem = problem_for(exc, scope.get("path"))
    body = _problem_encoder.encode(problem)
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def grpc_abort(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, method: str
) -> None:
    """End a gRPC call with the status and problem details of ``exc`` (an unexpected
    exception is logged and reported as an internal error, without its text)."""
    if not isinstance(exc, TierqError):
        logging.getLogger("tierq.api").exception("unexpected error in %s", method, exc_info=exc)
        exc = TierqError("internal error")
    problem = problem_for(exc, method)
    await context.abort(
        row_for(exc).grpc, grpc_detail(problem), trailing_metadata=grpc_metadata(problem)
    )
