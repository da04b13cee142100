"""The one error table: every tierq error has a status, a gRPC code and a problem document."""

from __future__ import annotations

import json

import grpc
import pytest

from tierq import errors as E
from tierq.api.errors import (
    MalformedRequestError,
    RateLimitedError,
    UnsupportedMediaTypeError,
    grpc_metadata,
    problem_for,
    problem_headers,
    row_for,
)

S = grpc.StatusCode

CASES: list[tuple[E.TierqError, int, grpc.StatusCode]] = [
    (E.InvalidRequestError("bad", field="priority"), 422, S.INVALID_ARGUMENT),
    (MalformedRequestError("not json"), 400, S.INVALID_ARGUMENT),
    (UnsupportedMediaTypeError("pickle"), 415, S.INVALID_ARGUMENT),
    (E.CycleError("a -> b -> a", ids=("a", "b")), 400, S.INVALID_ARGUMENT),
    (E.UnknownTaskError("unknown x", ids=("x",)), 400, S.INVALID_ARGUMENT),
    (E.DuplicateTaskError("dup a", ids=("a",)), 400, S.INVALID_ARGUMENT),
    (E.GraphTooLargeError("too big"), 422, S.INVALID_ARGUMENT),
    (E.InvalidTransitionError("not now"), 409, S.FAILED_PRECONDITION),
    (E.PayloadTooLargeError("big"), 413, S.RESOURCE_EXHAUSTED),
    (E.NotFoundError("no task x", ids=("x",)), 404, S.NOT_FOUND),
    (E.ConflictError("key reused"), 409, S.FAILED_PRECONDITION),
    (E.BackpressureError("full", retry_after=2.5), 429, S.RESOURCE_EXHAUSTED),
    (RateLimitedError("slow down", retry_after=0.2), 429, S.RESOURCE_EXHAUSTED),
    (E.CircuitOpenError("open", retry_after=5), 503, S.UNAVAILABLE),
    (E.UnauthenticatedError("who"), 401, S.UNAUTHENTICATED),
    (E.PermissionDeniedError("no"), 403, S.PERMISSION_DENIED),
    (E.EngineUnavailableError("down"), 503, S.UNAVAILABLE),
    (E.FencedError("deposed"), 503, S.UNAVAILABLE),
    (E.WaitTimeoutError("slow"), 504, S.DEADLINE_EXCEEDED),
]


@pytest.mark.parametrize(("exc", "status", "code"), CASES, ids=lambda v: type(v).__name__)
def test_table(exc: E.TierqError, status: int, code: grpc.StatusCode) -> None:
    row = row_for(exc)
    assert (row.status, row.grpc) == (status, code)
    problem = problem_for(exc, "/v1/x")
    assert problem.status == status
    assert problem.type == f"urn:tierq:problem:{exc.code}"
    assert problem.code == exc.code
    assert problem.detail == exc.message
    assert problem.instance == "/v1/x"


def test_every_client_facing_error_has_a_row() -> None:
    """A new error class must not fall through to 500 by accident."""
    task_side = (E.TaskError, E.TierqError)
    stack: list[type[E.TierqError]] = [E.TierqError]
    missing = []
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if issubclass(cls, task_side[0]) or cls is E.TierqError:
            continue
        exc = cls.__new__(cls)
        if row_for(exc).status == 500:
            missing.append(cls.__name__)
    assert missing == []


def test_problem_carries_field_ids_and_retry_after() -> None:
    problem = problem_for(E.CycleError("cycle a -> b", field="$.edges", ids=("a", "b")))
    assert problem.field == "edges"
    assert problem.ids == ["a", "b"]
    backoff = problem_for(E.BackpressureError("full", retry_after=2.1))
    assert backoff.retry_after == 2.1
    assert problem_headers(backoff) == {"Retry-After": "3"}


def test_unavailable_suggests_a_retry() -> None:
    problem = problem_for(E.EngineUnavailableError("no responders"))
    assert problem_headers(problem)["Retry-After"] == "1"


def test_unauthenticated_names_the_scheme() -> None:
    headers = problem_headers(problem_for(E.UnauthenticatedError("missing token")))
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_internal_errors_leak_nothing() -> None:
    problem = problem_for(E.TierqError("/srv/secret/path.py line 3: KeyError 'x'"))
    assert problem.status == 500
    assert problem.code == "internal"
    assert "secret" not in problem.detail


def test_grpc_metadata_is_ascii_json() -> None:
    exc = E.InvalidRequestError("name: bad 名前\n<x>", field="name")
    meta = dict(grpc_metadata(problem_for(exc, "/tierq.v1.Tierq/SubmitTask")))
    doc = meta["tierq-error"]
    assert doc.isascii() and "\n" not in doc
    assert json.loads(doc)["detail"] == exc.message
    backoff = dict(grpc_metadata(problem_for(E.BackpressureError("full", retry_after=0.3))))
    assert backoff["retry-after"] == "1"
