"""REST without a master behind it: auth matrix, problem documents, body limits, bad input.

Everything here is refused or answered by the API itself; what does reach NATS finds no
master and must come back as 503 (never 500).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tierq.api import ApiServer

from .support import auth_header

TASK = {"name": "add", "args": [1, 2]}
WORKFLOW = {
    "nodes": [{"key": "a", "spec": TASK}, {"key": "b", "spec": TASK}],
    "edges": [["a", "b"]],
}
REGION = "/v1/regions/default/workers"
WORKER = f"{REGION}/worker:w1"  # a worker token acts only as its own ids

#: (method, path, JSON body, permission needed, status when allowed and no master runs).
ROUTES: list[tuple[str, str, Any, str, int]] = [
    ("POST", "/v1/tasks", TASK, "submit", 503),
    ("POST", "/v1/tasks:batch", {"tasks": [TASK, TASK]}, "submit", 503),
    ("POST", "/v1/tasks:wait", {"ids": ["t1"], "timeout": 0}, "read", 503),
    ("GET", "/v1/tasks/t1", None, "read", 503),
    ("GET", "/v1/tasks?state=ready&limit=5", None, "read", 503),
    ("PATCH", "/v1/tasks/t1", {"priority": 3}, "submit", 503),
    ("POST", "/v1/tasks/t1/cancel", None, "submit", 503),
    ("POST", "/v1/tasks/t1/retry", None, "submit", 503),
    ("POST", "/v1/workflows", WORKFLOW, "submit", 503),
    ("GET", "/v1/workflows/wf_1", None, "read", 503),
    ("POST", "/v1/workflows/wf_1/cancel", None, "submit", 503),
    ("GET", "/v1/regions", None, "read", 503),
    ("GET", "/v1/workers", None, "read", 503),
    ("GET", "/v1/stats", None, "read", 503),
    ("GET", "/v1/settings", None, "read", 503),
    ("PUT", "/v1/settings", {"aging_rate": 0.1}, "admin", 503),
    ("PATCH", "/v1/settings", {"aging_rate": 0.1}, "admin", 503),
    ("POST", REGION, {"task_types": ["add"]}, "work", 503),
    ("POST", f"{WORKER}/lease", {"slots": 1, "wait": 0}, "work", 503),
    ("POST", f"{WORKER}/heartbeat", {"running": []}, "work", 503),
    ("POST", f"{WORKER}/report", {"outcomes": []}, "work", 503),
    ("POST", "/schedule", {"command": "true"}, "admin", 404),  # shell disabled
    ("GET", "/status/?task_id=t1", None, "read", 404),
    ("GET", "/metrics", None, "read", 200),
    ("GET", "/healthz", None, "public", 200),
    ("GET", "/readyz", None, "public", 503),
]

GRANTS = {
    "read": {"read"},
    "submit": {"read", "submit"},
    "worker": {"work"},
    "admin": {"read", "submit", "work", "admin"},
}


def expected(role: str | None, permission: str, allowed_status: int) -> int:
    if permission == "public":
        return allowed_status
    if role in (None, "bogus"):
        return 401
    return allowed_status if permission in GRANTS[role] else 403


async def test_auth_matrix(http: httpx.AsyncClient) -> None:
    """Every route x {no token, unknown token, each role}: the status the table says."""
    mismatches = []
    for method, path, body, permission, allowed in ROUTES:
        for role in (None, "bogus", "read", "submit", "worker", "admin"):
            r = await http.request(method, path, json=body, headers=auth_header(role))
            want = expected(role, permission, allowed)
            if r.status_code != want:
                mismatches.append((method, path, role, r.status_code, want, r.text[:200]))
            if r.status_code >= 400:
                assert r.headers["content-type"] == "application/problem+json"
    assert mismatches == []


async def test_unauthenticated_problem(http: httpx.AsyncClient) -> None:
    r = await http.get("/v1/tasks/t1")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    problem = r.json()
    assert problem["type"] == "urn:tierq:problem:unauthenticated"
    assert problem["status"] == 401 and problem["instance"] == "/v1/tasks/t1"


async def test_unavailable_master_is_503_with_retry_after(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/tasks", json=TASK, headers=auth_header("submit"))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["title"] == "Service unavailable"


async def test_rate_limit(nats_server: Any) -> None:
    from .support import api_config

    config = api_config(nats_server.url, rate_limit=1.0, rate_burst=2.0, request_timeout=0.3)
    async with ApiServer(config) as api, httpx.AsyncClient(base_url=api.url) as http:
        statuses = [
            (await http.get("/metrics", headers=auth_header("read"))).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        r = await http.get("/metrics", headers=auth_header("read"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["code"] == "rate_limited"
        # Another token is not slowed down by the first one.
        assert (await http.get("/metrics", headers=auth_header("admin"))).status_code == 200


async def test_open_api_without_tokens(nats_server: Any) -> None:
    from .support import api_config

    config = api_config(nats_server.url, tokens=False, request_timeout=0.3)
    async with ApiServer(config) as api, httpx.AsyncClient(base_url=api.url) as http:
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.put("/v1/settings", json={})).status_code == 503


async def test_refuses_open_non_loopback_bind(nats_server: Any) -> None:
    from tierq.errors import InvalidRequestError

    from .support import api_config

    with pytest.raises(InvalidRequestError, match="--insecure"):
        async with ApiServer(api_config(nats_server.url, tokens=False, host="0.0.0.0")):
            pass


# --- body limits ------------------------------------------------------------------------

LIMIT = 1 << 20


async def test_declared_oversize_body_is_413(http: httpx.AsyncClient) -> None:
    body = b'{"name": "x", "args": ["' + b"a" * LIMIT + b'"]}'
    r = await http.post(
        "/v1/tasks",
        content=body,
        headers={**auth_header("submit"), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


async def test_chunked_oversize_body_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"[" * 65536

    r = await http.post(
        "/v1/tasks",
        content=chunks(),
        headers={**auth_header("submit"), "content-type": "application/json"},
    )
    assert r.status_code == 413


async def test_expect_continue_never_reads_the_body(api: ApiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.http_port)
    try:
        writer.write(
            b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer submit-token-0123456789abcdef\r\n"
            b"Expect: 100-continue\r\nContent-Length: 1000000000\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 413")
    finally:
        writer.close()
        await writer.wait_closed()


# --- bad input: refused by the API itself, each with a problem naming the field ---------


def _nested(depth: int) -> bytes:
    return b'{"name": "x", "args": ' + b"[" * depth + b"]" * depth + b"}"


BAD: list[tuple[str, bytes | Any, int, str | None]] = [
    ("truncated json", b'{"name": "x", "args": [1, 2', 400, None),
    ("not json", b"name=x", 400, None),
    ("empty body", b"", 400, None),
    ("nan literal", b'{"name": "x", "priority": NaN}', 400, None),
    ("invalid utf-8", b'{"name": "\xff\xfe"}', 400, None),
    ("lone surrogate", b'{"name": "\\ud800"}', 400, None),
    ("nesting bomb", _nested(100_000), 400, None),
    ("json array", [1, 2], 422, None),
    ("missing name", {"args": []}, 422, "name"),
    ("unknown field", {"name": "x", "colour": "red"}, 422, None),
    ("name wrong type", {"name": 7}, 422, "name"),
    ("empty name", {"name": ""}, 422, "name"),
    ("long name", {"name": "x" * 10_000}, 422, "name"),
    ("priority too high", {"name": "x", "priority": 1001}, 422, "priority"),
    ("priority too low", {"name": "x", "priority": -1001}, 422, "priority"),
    ("priority int64", {"name": "x", "priority": 2**63}, 422, "priority"),
    ("priority huge", {"name": "x", "priority": 10**30}, 422, "priority"),
    ("priority 1e309", b'{"name": "x", "priority": 1e309}', 422, "priority"),
    ("priority string", {"name": "x", "priority": "high"}, 422, "priority"),
    ("priority bool", {"name": "x", "priority": True}, 422, "priority"),
    ("priority float", {"name": "x", "priority": 1.5}, 422, "priority"),
    ("args not a list", {"name": "x", "args": {"a": 1}}, 422, "args"),
    ("too many args", {"name": "x", "args": [0] * 20_000}, 422, "args"),
    ("negative timeout", {"name": "x", "timeout": -1}, 422, "timeout"),
    ("zero timeout", {"name": "x", "timeout": 0}, 422, "timeout"),
    ("naive run_at", {"name": "x", "run_at": "2030-01-01T00:00:00"}, 422, "run_at"),
    ("run_at year 9999", {"name": "x", "run_at": "9999-12-31T00:00:00Z"}, 422, "run_at"),
    ("negative run_at", {"name": "x", "run_at": -5}, 422, "run_at"),
    ("queue with dots", {"name": "x", "queue": "a.b>"}, 422, "queue"),
    ("region subject injection", {"name": "x", "region": "$JS.API.>"}, 422, "region"),
    ("label with space", {"name": "x", "labels": ["a b"]}, 422, "labels[0]"),
    ("retry attempts 0", {"name": "x", "retry": {"max_attempts": 0}}, 422, "retry.max_attempts"),
    ("retry unknown", {"name": "x", "retry": {"forever": True}}, 422, None),
]


@pytest.mark.parametrize(("case", "body", "status", "field"), BAD, ids=[b[0] for b in BAD])
async def test_bad_task_input(
    http: httpx.AsyncClient, case: str, body: Any, status: int, field: str | None
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = await http.post(
        "/v1/tasks",
        content=content,
        headers={**auth_header("submit"), "content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert set(problem) >= {"type", "title", "status", "detail", "code"}
    assert problem["status"] == status
    if field is not None:
        assert problem["field"] == field
        assert field.split("[")[0] in problem["detail"]


async def test_pickle_is_refused(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/tasks",
        content=b"\x80\x04\x95\x00",
        headers={**auth_header("submit"), "content-type": "application/x-python-serialize"},
    )
    assert r.status_code == 415
    assert r.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/tasks:batch", {"tasks": []}, "tasks"),
        (
            "/v1/tasks:batch",
            {"tasks": [TASK, {"name": "x", "priority": 5000}]},
            "tasks[1].priority",
        ),
        ("/v1/workflows", {"nodes": []}, "nodes"),
        ("/v1/workflows", {"nodes": [{"key": "a", "spec": {"name": 1}}]}, "nodes[0].spec.name"),
        ("/v1/workflows", {**WORKFLOW, "edges": [["a"]]}, "edges[0]"),
        ("/v1/workflows", {**WORKFLOW, "on_failure": "explode"}, "on_failure"),
        ("/v1/tasks:wait", {"ids": [], "timeout": 1}, "ids"),
        ("/v1/tasks:wait", {"ids": ["a"], "timeout": 1e9}, "timeout"),
    ],
)
async def test_bad_bodies_name_the_field(
    http: httpx.AsyncClient, path: str, body: Any, field: str
) -> None:
    r = await http.post(path, json=body, headers=auth_header("submit"))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


async def test_shell_task_needs_admin(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/tasks", json={"name": "shell"}, headers=auth_header("submit"))
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/events?kinds=task_exploded", 422),
        ("/v1/tasks?limit=0", 422),
        ("/v1/tasks?limit=abc", 422),
        ("/v1/tasks?state=bogus", 422),
        ("/v1/regions/a.b/workers/w/lease", 405),
        ("/v1/nope", 404),
    ],
)
async def test_bad_queries(http: httpx.AsyncClient, path: str, status: int) -> None:
    r = await http.get(path, headers=auth_header("admin"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_subject_injection_in_region_path(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/regions/a.b/workers", json={"task_types": ["x"]}, headers=auth_header("worker")
    )
    assert r.status_code == 422
    assert r.json()["field"] == "region"


async def test_bad_last_event_id(http: httpx.AsyncClient) -> None:
    r = await http.get("/v1/events", headers={**auth_header("read"), "last-event-id": "x1"})
    assert r.status_code == 422
    assert r.json()["field"] == "Last-Event-ID"


async def test_bad_settings(http: httpx.AsyncClient) -> None:
    admin = auth_header("admin")
    for body, field in [
        ({"agin_rate": 1}, "agin_rate"),
        ({"admission": {"max_queue": 1}}, "admission.max_queue"),
        ({"aging_rate": -1}, "aging_rate"),
        ({"aging_rate": "fast"}, "aging_rate"),
    ]:
        r = await http.put("/v1/settings", json=body, headers=admin)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field


async def test_openapi_is_served(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    assert {"TaskSpecIn", "Task", "Problem", "WorkflowView", "Settings"} <= set(schemas)
    assert "HTTPValidationError" not in schemas
    submit = doc["paths"]["/v1/tasks"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "TaskSpecIn"
    )
    assert "429" in submit["responses"] and "201" in submit["responses"]
    assert (await http.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/tasks", {"GET", "POST"}),
        ("DELETE", "/v1/tasks", {"GET", "POST"}),
        ("OPTIONS", "/v1/tasks/t1", {"GET", "PATCH"}),
        ("PUT", "/v1/tasks/t1/retry", {"POST"}),
        ("OPTIONS", "/v1/settings", {"GET", "PUT", "PATCH"}),
    ],
)
async def test_405_lists_every_allowed_method(
    http: httpx.AsyncClient, method: str, path: str, allow: set[str]
) -> None:
    r = await http.request(method, path, headers=auth_header("admin"))
    assert r.status_code == 405, r.text
    assert {m.strip() for m in r.headers["allow"].split(",")} == allow


def test_list_state_enums_are_the_servers() -> None:
    """The OpenAPI enums of the list filters are exactly the states the server knows."""
    from typing import get_args

    from tierq.api.rest_tasks import TaskStateName, WorkflowStateName
    from tierq.core.model import TaskState

    assert set(get_args(TaskStateName)) == {s.value for s in TaskState}
    assert set(get_args(WorkflowStateName)) == {"running", "succeeded", "failed", "cancelled"}


@pytest.mark.parametrize(
    ("path", "method", "body", "status"),
    [
        # JSON Schema's integer includes 3.0: past validation (no master here: 503).
        ("/v1/tasks/t1", "PATCH", {"priority": 3.0}, 503),
        ("/v1/tasks", "POST", {"name": "a", "priority": 3.0, "retry": {"max_attempts": 2.0}}, 503),
        ("/v1/tasks/t1", "PATCH", {"priority": 3.5}, 422),
        ("/v1/tasks/t1", "PATCH", {"priority": "3"}, 422),
        ("/v1/tasks", "POST", {"name": "a", "priority": 1e300}, 422),
    ],
)
async def test_integral_floats_are_integers(
    http: httpx.AsyncClient, path: str, method: str, body: dict[str, Any], status: int
) -> None:
    r = await http.request(method, path, json=body, headers=auth_header("admin"))
    assert r.status_code == status, r.text
