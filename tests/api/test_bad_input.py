"""The bad-input suite against a live stack, over REST and gRPC (RELIABILITY.md §3).

Every bad request gets a 4xx / INVALID_ARGUMENT-family answer naming what was wrong, never a
5xx and never a hang; and afterwards every task accepted before the suite is intact.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest

from tierq.api import ApiServer
from tierq.api.proto import tierq_pb2 as pb
from tierq.api.proto import tierq_pb2_grpc, workers_pb2_grpc
from tierq.api.proto import types_pb2 as types
from tierq.api.proto import workers_pb2 as wpb
from tierq.core.settings import Settings
from tierq.engine import EmbeddedNats
from tierq.testing import local_cluster

from .conftest import Stack
from .support import TOKENS, api_config, auth_header

pytestmark = pytest.mark.integration

ADMIN = (("authorization", f"Bearer {TOKENS['admin']}"),)
S = grpc.StatusCode


def wf(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, Any]:
    return {"nodes": [{"key": k, "spec": {"name": "noop"}} for k in nodes], "edges": edges}


CHAIN = [f"n{i}" for i in range(10_000)]


def _deep(levels: int) -> list[Any]:
    value: list[Any] = [1]
    for _ in range(levels):
        value = [value]
    return value


#: Deeper than the core's default ``max_json_depth`` (32), well within the body limit.
DEEP = _deep(40)

#: (case, method, path, body (bytes: raw), status, what the problem must name).
REST_CASES: list[tuple[str, str, str, Any, int, dict[str, Any]]] = [
    ("invalid json", "POST", "/v1/tasks", b'{"name": "a",', 400, {"code": "malformed_request"}),
    ("wrong type", "POST", "/v1/tasks", {"name": ["a"]}, 422, {"field": "name"}),
    (
        "priority 1001",
        "POST",
        "/v1/tasks",
        {"name": "a", "priority": 1001},
        422,
        {"field": "priority"},
    ),
    ("priority NaN", "POST", "/v1/tasks", b'{"name": "a", "priority": NaN}', 400, {}),
    (
        "priority text",
        "POST",
        "/v1/tasks",
        {"name": "a", "priority": "high"},
        422,
        {"field": "priority"},
    ),
    (
        "self loop",
        "POST",
        "/v1/workflows",
        wf(["a"], [("a", "a")]),
        400,
        {"code": "cycle", "ids": ["a"]},
    ),
    (
        "two cycle",
        "POST",
        "/v1/workflows",
        wf(["a", "b"], [("a", "b"), ("b", "a")]),
        400,
        {"code": "cycle"},
    ),
    (
        "long cycle",
        "POST",
        "/v1/workflows",
        wf(CHAIN, [*itertools.pairwise(CHAIN), (CHAIN[-1], CHAIN[0])]),
        400,
        {"code": "cycle"},
    ),
    (
        "dangling edge",
        "POST",
        "/v1/workflows",
        wf(["a"], [("a", "ghost")]),
        400,
        {"ids": ["ghost"]},
    ),
    (
        "dangling depends_on",
        "POST",
        "/v1/tasks",
        {"name": "a", "depends_on": ["ghost-1"]},
        400,
        {"code": "unknown_task", "ids": ["ghost-1"]},
    ),
    (
        "duplicate keys",
        "POST",
        "/v1/workflows",
        wf(["a", "a"], []),
        400,
        {"code": "duplicate_task"},
    ),
    ("NUL in name", "POST", "/v1/tasks", {"name": "a\u0000b"}, 422, {"field": "name"}),
    ("RTL override", "POST", "/v1/tasks", {"name": "evil\u202etxt.exe"}, 422, {"field": "name"}),
    ("zero-width joiner", "POST", "/v1/tasks", {"name": "a\u200db"}, 422, {"field": "name"}),
    ("newline", "POST", "/v1/tasks", {"name": "a\nb"}, 422, {"field": "name"}),
    ("ansi escape", "POST", "/v1/tasks", {"name": "\u001b[31mred"}, 422, {"field": "name"}),
    ("leading space", "POST", "/v1/tasks", {"name": " a"}, 422, {"field": "name"}),
    ("not NFC", "POST", "/v1/tasks", {"name": "e\u0301"}, 422, {"field": "name"}),
    ("10 KB name", "POST", "/v1/tasks", {"name": "n" * 10_240}, 422, {"field": "name"}),
    ("lone surrogate", "POST", "/v1/tasks", b'{"name": "\\udc00"}', 400, {}),
    (
        "path traversal queue",
        "POST",
        "/v1/tasks",
        {"name": "a", "queue": "../../etc"},
        422,
        {"field": "queue"},
    ),
    (
        "subject injection",
        "POST",
        "/v1/tasks",
        {"name": "a", "region": "eu.>"},
        422,
        {"field": "region"},
    ),
    ("deep args", "POST", "/v1/tasks", {"name": "a", "args": DEEP}, 422, {"field": "args"}),
    (
        "int beyond int64",
        "POST",
        "/v1/tasks",
        {"name": "a", "args": [2**64]},
        422,
        {"field": "args"},
    ),
    ("unknown task", "GET", "/v1/tasks/does-not-exist", None, 404, {"ids": ["does-not-exist"]}),
    ("unknown task patch", "PATCH", "/v1/tasks/does-not-exist", {"priority": 1}, 404, {}),
    ("unknown task cancel", "POST", "/v1/tasks/does-not-exist/cancel", None, 404, {}),
    ("unknown task retry", "POST", "/v1/tasks/does-not-exist/retry", None, 404, {}),
    ("unknown workflow", "GET", "/v1/workflows/wf_nope", None, 404, {}),
    ("traversal id", "GET", "/v1/tasks/..%2F..%2Fetc%2Fpasswd", None, 404, {}),
    (
        "oversize",
        "POST",
        "/v1/tasks",
        {"name": "a", "args": ["x" * (2 << 20)]},
        413,
        {"code": "payload_too_large"},
    ),
]


async def rest_mistakes(http: httpx.AsyncClient) -> list[Any]:
    wrong: list[Any] = []
    for case, method, path, body, status, names in REST_CASES:
        if isinstance(body, bytes):
            r = await http.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
        else:
            r = await http.request(method, path, json=body)
        problem = r.json() if r.headers.get("content-type") == "application/problem+json" else {}
        if r.status_code != status or not problem:
            wrong.append((case, r.status_code, r.text[:300]))
            continue
        for key, want in names.items():
            got = problem.get(key)
            ok = set(want) <= set(got or ()) if key == "ids" else got == want
            if not ok:
                wrong.append((case, key, got))
        # Offending ids are named in the message too, not only in the ids member.
        if not all(i in problem["detail"] for i in names.get("ids", ())):
            wrong.append((case, "detail", problem["detail"]))
    return wrong


async def token_mistakes(http: httpx.AsyncClient) -> list[Any]:
    wrong: list[Any] = []
    for headers, status in [
        ({"authorization": ""}, 401),
        ({"authorization": "Bearer wrong-wrong-wrong-wrong"}, 401),
        ({"authorization": "Basic YWRtaW46YWRtaW4="}, 401),
        (auth_header("read"), 403),
        (auth_header("worker"), 403),
    ]:
        r = await http.post("/v1/tasks", json={"name": "a"}, headers=headers)
        if r.status_code != status:
            wrong.append(("token", headers, r.status_code))
    return wrong


def _spec(**fields: Any) -> pb.SubmitTaskRequest:
    return pb.SubmitTaskRequest(task=types.TaskSpec(**fields))


GRPC_CASES: list[tuple[str, str, Any, grpc.StatusCode]] = [
    ("priority", "SubmitTask", _spec(name="a", priority=5000), S.INVALID_ARGUMENT),
    ("control chars", "SubmitTask", _spec(name="a\u202eb"), S.INVALID_ARGUMENT),
    ("dangling", "SubmitTask", _spec(name="a", depends_on=["ghost"]), S.INVALID_ARGUMENT),
    ("args not json", "SubmitTask", _spec(name="a", args_json="{nope"), S.INVALID_ARGUMENT),
    (
        "cycle",
        "SubmitWorkflow",
        pb.SubmitWorkflowRequest(
            workflow=types.WorkflowSpec(
                nodes=[
                    types.WorkflowNode(key="a", spec=types.TaskSpec(name="n")),
                    types.WorkflowNode(key="b", spec=types.TaskSpec(name="n")),
                ],
                edges=[types.Edge(parent="a", child="b"), types.Edge(parent="b", child="a")],
            )
        ),
        S.INVALID_ARGUMENT,
    ),
    ("unknown", "GetTask", pb.GetTaskRequest(id="does-not-exist"), S.NOT_FOUND),
    # Echoed into the error, a 10k id passed gRPC's metadata limit (the call failed INTERNAL).
    ("10k id", "GetTask", pb.GetTaskRequest(id="x" * 10_000), S.NOT_FOUND),
    ("10k non-ascii id", "GetTask", pb.GetTaskRequest(id="é" * 10_000), S.NOT_FOUND),
    # Proto3 keeps enum numbers it does not know; they were INTERNAL.
    ("unknown state", "ListTasks", pb.ListTasksRequest(state=999), S.INVALID_ARGUMENT),  # type: ignore[arg-type]
    (
        "unknown on_failure",
        "SubmitWorkflow",
        pb.SubmitWorkflowRequest(
            workflow=types.WorkflowSpec(
                nodes=[types.WorkflowNode(key="a", spec=types.TaskSpec(name="n"))],
                on_failure=999,  # type: ignore[arg-type]
            )
        ),
        S.INVALID_ARGUMENT,
    ),
]

#: (case, query, Last-Event-ID header): an event feed nobody can start.
EVENT_CASES: list[tuple[str, str, bytes | None]] = [
    ("after 2**64-1", f"?after={2**64 - 1}", None),
    ("after 2**63", f"?after={2**63}", None),
    ("superscript digit", "", "²".encode()),
    ("31 digits", "", b"9" * 31),
    ("negative", "", b"-1"),
]


async def event_mistakes(http: httpx.AsyncClient, channel: grpc.aio.Channel) -> list[Any]:
    """Resume points beyond a 64-bit sequence or not a number: 4xx, never 500/503."""
    wrong: list[Any] = []
    for case, query, last in EVENT_CASES:
        headers = {"last-event-id": last} if last is not None else {}
        r = await http.get(f"/v1/events{query}", headers=headers)  # type: ignore[arg-type]
        problem = r.json() if r.headers.get("content-type") == "application/problem+json" else {}
        if r.status_code not in (400, 422) or not problem:
            wrong.append((f"events {case}", r.status_code, r.text[:300]))
    stream = tierq_pb2_grpc.TierqStub(channel).WatchEvents(
        pb.WatchEventsRequest(after_sequence=2**64 - 1), metadata=ADMIN, timeout=20
    )
    try:
        async for _ in stream:
            wrong.append(("grpc watch 2**64-1", "streamed"))
            break
        wrong.append(("grpc watch 2**64-1", "ended without an error"))
    except grpc.aio.AioRpcError as err:
        if err.code() != S.INVALID_ARGUMENT:
            wrong.append(("grpc watch 2**64-1", err.code(), err.details()))
    report = wpb.ReportRequest(
        region="default",
        worker="w1",
        outcomes=[wpb.Outcome(task_id="t", attempt=1, kind=999)],  # type: ignore[arg-type]
    )
    try:
        await workers_pb2_grpc.WorkersStub(channel).Report(report, metadata=ADMIN, timeout=20)
        wrong.append(("grpc report kind 999", "accepted"))
    except grpc.aio.AioRpcError as err:
        if err.code() != S.INVALID_ARGUMENT:
            wrong.append(("grpc report kind 999", err.code(), err.details()))
    return wrong


async def grpc_mistakes(channel: grpc.aio.Channel) -> list[Any]:
    wrong: list[Any] = []
    stub = tierq_pb2_grpc.TierqStub(channel)
    calls = [(case, method, request, ADMIN, code) for case, method, request, code in GRPC_CASES]
    calls += [
        ("no token", "GetStats", pb.GetStatsRequest(), (), S.UNAUTHENTICATED),
        (
            "bad token",
            "GetStats",
            pb.GetStatsRequest(),
            (("authorization", "Bearer x"),),
            S.UNAUTHENTICATED,
        ),
    ]
    for case, method, request, metadata, code in calls:
        try:
            await getattr(stub, method)(request, metadata=metadata, timeout=20)
            wrong.append((f"grpc {case}", "accepted"))
        except grpc.aio.AioRpcError as err:
            if err.code() != code:
                wrong.append((f"grpc {case}", err.code(), err.details()))
    return wrong


async def test_bad_input_suite(stack: Stack, stack_channel: grpc.aio.Channel) -> None:
    http = stack.http
    accepted: list[str] = []
    for i in range(20):
        body = {"name": f"job-{i % 3}", "args": [i, {"k": "v"}], "priority": i - 10}
        r = await http.post("/v1/tasks", json=body)
        assert r.status_code == 201
        accepted.append(r.json()["id"])
    r = await http.post("/v1/workflows", json=wf(["x", "y"], [("x", "y")]))
    assert r.status_code == 201
    accepted += r.json()["ids"].values()
    before = {tid: (await http.get(f"/v1/tasks/{tid}")).json() for tid in accepted}

    wrong = await rest_mistakes(http)
    wrong += await token_mistakes(http)
    wrong += await grpc_mistakes(stack_channel)
    wrong += await event_mistakes(http, stack_channel)
    assert wrong == []

    # Every task accepted before the suite is still there, unchanged, and nothing was added.
    after = {tid: (await http.get(f"/v1/tasks/{tid}")).json() for tid in accepted}
    assert after == before
    assert (await http.get("/v1/stats")).json()["tasks"] == len(accepted)


async def test_huge_workflow_is_accepted_within_the_limits(nats_server: EmbeddedNats) -> None:
    """100,000 nodes in a chain: with room for it, accepted (and not a hang)."""
    n = 100_000
    keys = [f"n{i}" for i in range(n)]
    body = json.dumps(wf(keys, list(itertools.pairwise(keys)))).encode()
    config = api_config(nats_server.url, max_body_bytes=32 << 20, request_timeout=60.0)
    # Master, region, API and test share one event loop here: a long lease keeps the master
    # the leader while the loop is busy with 100k nodes.
    async with (
        local_cluster(nats_server.url, leader_lease_seconds=60.0),
        ApiServer(config) as api,
        httpx.AsyncClient(base_url=api.url, timeout=60, headers=auth_header("admin")) as http,
    ):
        r = await http.post(
            "/v1/workflows", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 201, r.text[:300]
        assert len(r.json()["ids"]) == n
        assert (await http.get("/v1/stats")).json()["tasks"] == n
        # Read back a page at a time (one reply of all 100,000 nodes would not fit a message).
        path = f"/v1/workflows/{r.json()['workflow_id']}"
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await http.get(path, params={"cursor": cursor} if cursor else None)
            assert page.status_code == 200, page.text[:300]
            doc = page.json()
            assert doc["total"] == n and doc["counts"] == {"ready": 1, "pending": n - 1}
            seen += [node["key"] for node in doc["nodes"]]
            cursor = doc["next_cursor"]
            if cursor is None:
                break
        assert seen == keys


async def test_huge_workflow_is_refused_by_the_limits(nats_server: EmbeddedNats) -> None:
    """The same workflow against the default body limit (413) and a node limit (422)."""
    n = 100_000
    keys = [f"n{i}" for i in range(n)]
    body = json.dumps(wf(keys, list(itertools.pairwise(keys)))).encode()
    headers = {"content-type": "application/json", **auth_header("admin")}
    async with local_cluster(
        nats_server.url, settings=Settings(max_workflow_nodes=1000), leader_lease_seconds=60.0
    ):
        async with (
            ApiServer(api_config(nats_server.url)) as api,
            httpx.AsyncClient(base_url=api.url, timeout=60) as http,
        ):
            r = await http.post("/v1/workflows", content=body, headers=headers)
            assert r.status_code == 413
        config = api_config(nats_server.url, max_body_bytes=32 << 20, request_timeout=60.0)
        async with (
            ApiServer(config) as api,
            httpx.AsyncClient(base_url=api.url, timeout=60) as http,
        ):
            r = await http.post("/v1/workflows", content=body, headers=headers)
            assert r.status_code == 422, r.text[:300]
            assert r.json()["code"] == "graph_too_large"
