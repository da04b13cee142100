"""Contract: every operation over REST and over gRPC, against a live stack, gives one answer.

A real nats-server, master and region run in this process; the API sits in front. Tasks are
run, where a test needs them run, by a worker that speaks the pull protocol through the API
(no Python worker runtime), so nothing moves unless the test moves it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import grpc.aio
import msgspec
import pytest

from tierq.api import convert
from tierq.api.proto import tierq_pb2 as pb
from tierq.api.proto import tierq_pb2_grpc, workers_pb2_grpc
from tierq.api.proto import types_pb2 as types
from tierq.api.proto import workers_pb2 as wpb
from tierq.core.model import Task, TaskState
from tierq.engine import Engine

from .conftest import Stack
from .support import TOKENS, read_sse, stream_last_sequence

pytestmark = pytest.mark.integration

ADMIN = (("authorization", f"Bearer {TOKENS['admin']}"),)


class Both:
    """The same admin caller on both transports."""

    def __init__(self, stack: Stack, channel: grpc.aio.Channel) -> None:
        self.http = stack.http
        self.t = tierq_pb2_grpc.TierqStub(channel)
        self.w = workers_pb2_grpc.WorkersStub(channel)

    async def rest(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = await self.http.request(method, path, json=body)
        assert r.status_code == status, r.text
        return r.json()

    async def grpc(self, method: str, request: Any) -> Any:
        return await getattr(self.t, method)(request, metadata=ADMIN, timeout=20)

    async def grpc_register(self) -> wpb.RegisterWorkerResponse:
        request = wpb.RegisterWorkerRequest(region="default", task_types=["add"], concurrency=2)
        reply: wpb.RegisterWorkerResponse = await self.w.RegisterWorker(
            request, metadata=ADMIN, timeout=20
        )
        return reply

    async def grpc_task(self, task_id: str) -> Task:
        return convert.task_from_pb(await self.grpc("GetTask", pb.GetTaskRequest(id=task_id)))

    async def rest_task(self, task_id: str) -> Task:
        return task(await self.rest("GET", f"/v1/tasks/{task_id}"))


def task(doc: Any) -> Task:
    """A REST task document as the core struct: equal structs are the same task."""
    return msgspec.convert(doc, Task)


def spec_pb(body: dict[str, Any]) -> types.TaskSpec:
    return types.TaskSpec(
        name=body["name"],
        args_json=json.dumps(body.get("args", [])),
        kwargs_json=json.dumps(body.get("kwargs", {})),
        priority=body.get("priority", 0),
        queue=body.get("queue"),
        labels=body.get("labels", []),
    )


TASK = {"name": "add", "args": [1, 2], "kwargs": {"z": {"deep": [1, 2.5, None]}}, "priority": 7}


@pytest.fixture
async def both(stack: Stack, stack_channel: grpc.aio.Channel) -> Both:
    return Both(stack, stack_channel)


async def test_submit_get_list_and_wait(both: Both) -> None:
    a = (await both.rest("POST", "/v1/tasks", TASK, status=201))["id"]
    b = (await both.grpc("SubmitTask", pb.SubmitTaskRequest(task=spec_pb(TASK)))).id
    for task_id in (a, b):
        rest = await both.rest_task(task_id)
        assert rest == await both.grpc_task(task_id)
        assert rest.spec.args == [1, 2] and rest.spec.kwargs == TASK["kwargs"]
    # The two submissions are the same task spec, whichever transport carried it.
    assert (await both.rest_task(a)).spec == (await both.rest_task(b)).spec

    batch = [TASK, {"name": "concat", "args": ["x"]}]
    rest_ids = (await both.rest("POST", "/v1/tasks:batch", {"tasks": batch}, status=201))["ids"]
    grpc_ids = list(
        (
            await both.grpc("SubmitTasks", pb.SubmitTasksRequest(tasks=[spec_pb(t) for t in batch]))
        ).ids
    )
    assert len(set(rest_ids + grpc_ids)) == 4

    rest_list = await both.rest("GET", "/v1/tasks?limit=3&state=ready")
    grpc_list = await both.grpc(
        "ListTasks", pb.ListTasksRequest(limit=3, state=types.TASK_STATE_READY)
    )
    assert [t["id"] for t in rest_list["tasks"]] == [t.id for t in grpc_list.tasks]
    assert [task(t) for t in rest_list["tasks"]] == [
        convert.task_from_pb(t) for t in grpc_list.tasks
    ]
    assert rest_list["next_cursor"] == grpc_list.next_cursor
    page2_rest = await both.rest(
        "GET", f"/v1/tasks?limit=3&state=ready&cursor={rest_list['next_cursor']}"
    )
    page2_grpc = await both.grpc(
        "ListTasks",
        pb.ListTasksRequest(limit=3, state=types.TASK_STATE_READY, cursor=grpc_list.next_cursor),
    )
    assert [t["id"] for t in page2_rest["tasks"]] == [t.id for t in page2_grpc.tasks]
    seen = [t["id"] for t in rest_list["tasks"] + page2_rest["tasks"]]
    assert sorted(seen) == sorted([a, b, *rest_ids, *grpc_ids])

    for name, want in [("add", 4), ("concat", 2)]:
        rest_named = await both.rest("GET", f"/v1/tasks?name={name}")
        grpc_named = await both.grpc("ListTasks", pb.ListTasksRequest(name=name))
        assert len(rest_named["tasks"]) == len(grpc_named.tasks) == want

    waited_rest = await both.rest("POST", "/v1/tasks:wait", {"ids": [a, b], "timeout": 0})
    waited_grpc = await both.grpc("WaitTasks", pb.WaitTasksRequest(ids=[a, b], timeout=0))
    assert [task(t) for t in waited_rest["tasks"]] == [
        convert.task_from_pb(t) for t in waited_grpc.tasks
    ]


WORKFLOW = {
    "name": "etl",
    "nodes": [
        {"key": "extract", "spec": {"name": "add", "args": [1, 1]}},
        {"key": "load", "spec": {"name": "add", "args": [{"$result": "extract"}, 1]}},
    ],
    "edges": [["extract", "load"]],
    "on_failure": "fail_workflow",
}


def workflow_pb() -> types.WorkflowSpec:
    return types.WorkflowSpec(
        name="etl",
        nodes=[
            types.WorkflowNode(key=n["key"], spec=spec_pb(n["spec"])) for n in WORKFLOW["nodes"]
        ],
        edges=[types.Edge(parent="extract", child="load")],
        on_failure=types.FAILURE_POLICY_FAIL_WORKFLOW,
    )


def without_ids(view: dict[str, Any]) -> dict[str, Any]:
    view = dict(view)
    for key in ("id", "submitted_at", "edges", "finished_at"):
        view.pop(key, None)
    view["nodes"] = [{k: v for k, v in n.items() if k != "task_id"} for n in view["nodes"]]
    return view


async def test_workflows(both: Both) -> None:
    rest = await both.rest("POST", "/v1/workflows", WORKFLOW, status=201)
    grpc_ = await both.grpc("SubmitWorkflow", pb.SubmitWorkflowRequest(workflow=workflow_pb()))
    assert set(rest["ids"]) == set(grpc_.ids) == {"extract", "load"}
    rest_view = await both.rest("GET", f"/v1/workflows/{rest['workflow_id']}")
    grpc_view = json.loads(
        (await both.grpc("GetWorkflow", pb.WorkflowRef(id=rest["workflow_id"]))).json
    )
    assert rest_view == grpc_view
    other = json.loads((await both.grpc("GetWorkflow", pb.WorkflowRef(id=grpc_.workflow_id))).json)
    assert without_ids(rest_view) == without_ids(other)
    child = await both.rest("GET", f"/v1/tasks/{rest['ids']['load']}")
    assert child["parents"] == [rest["ids"]["extract"]]

    cancelled_rest = await both.rest("POST", f"/v1/workflows/{rest['workflow_id']}/cancel")
    cancelled_grpc = await both.grpc("CancelWorkflow", pb.WorkflowRef(id=grpc_.workflow_id))
    assert cancelled_rest["events"] == cancelled_grpc.events > 0
    after_rest = await both.rest("GET", f"/v1/workflows/{rest['workflow_id']}")
    after_grpc = json.loads(
        (await both.grpc("GetWorkflow", pb.WorkflowRef(id=grpc_.workflow_id))).json
    )
    assert without_ids(after_rest) == without_ids(after_grpc)
    assert after_rest["counts"].get("cancelled") == 2

    # The list, newest first: the same page and cursor both ways.
    listed = await both.rest("GET", "/v1/workflows?limit=1")
    assert [w["id"] for w in listed["workflows"]] == [grpc_.workflow_id]
    grpc_list = json.loads(
        (await both.grpc("ListWorkflows", pb.ListWorkflowsRequest(limit=1))).json
    )
    assert grpc_list == listed
    older = await both.rest("GET", f"/v1/workflows?limit=1&cursor={listed['next_cursor']}")
    assert [w["id"] for w in older["workflows"]] == [rest["workflow_id"]]
    assert older["workflows"][0]["state"] == "cancelled" and older["workflows"][0]["done"] == 2
    await both.rest("GET", "/v1/workflows?state=nope", status=422)

    # One node per page: both interfaces give the same pages and the same cursors.
    wf_path = f"/v1/workflows/{rest['workflow_id']}"
    first = await both.rest("GET", f"{wf_path}?node_limit=1")
    assert len(first["nodes"]) == 1 and first["next_cursor"] == "1" and first["total"] == 2
    second = await both.rest("GET", f"{wf_path}?node_limit=1&cursor=1")
    assert second["next_cursor"] is None
    assert [n["key"] for n in first["nodes"] + second["nodes"]] == [
        n["key"] for n in rest_view["nodes"]
    ]
    grpc_page = json.loads(
        (
            await both.grpc(
                "GetWorkflow", pb.WorkflowRef(id=rest["workflow_id"], node_limit=1, cursor="1")
            )
        ).json
    )
    assert without_ids(grpc_page) == without_ids(second)
    bad = await both.rest("GET", f"{wf_path}?cursor=nope", status=422)
    assert bad["field"] == "cursor"
    await both.rest("GET", f"{wf_path}?node_limit=0", status=422)


async def lease_and_fail(both: Both, task_ids: set[str]) -> None:
    """A pull-over-API worker takes the tasks and fails every attempt."""
    reg = await both.rest(
        "POST", "/v1/regions/default/workers", {"task_types": ["add"]}, status=201
    )
    worker = reg["worker"]
    pending = set(task_ids)
    while pending:
        leased = await both.rest(
            "POST",
            f"/v1/regions/default/workers/{worker}/lease",
            {"slots": 10, "wait": 5},
        )
        outcomes = [
            {
                "task_id": t["id"],
                "attempt": t["attempt"],
                "kind": "failed",
                "error": {"type": "ValueError", "message": "no"},
            }
            for t in leased["tasks"]
        ]
        pending -= {t["id"] for t in leased["tasks"]}
        await both.rest(
            "POST", f"/v1/regions/default/workers/{worker}/report", {"outcomes": outcomes}
        )


async def test_commands(both: Both) -> None:
    once = {"name": "add", "retry": {"max_attempts": 1}}
    a = (await both.rest("POST", "/v1/tasks", once, status=201))["id"]
    b = (await both.rest("POST", "/v1/tasks", once, status=201))["id"]

    up_rest = await both.rest("PATCH", f"/v1/tasks/{a}", {"priority": 50})
    up_grpc = await both.grpc("UpdateTask", pb.UpdateTaskRequest(id=b, priority=50))
    assert up_rest == {"id": a, "events": up_grpc.events}
    assert (await both.rest_task(a)).priority == 50
    assert (await both.grpc_task(b)).priority == 50

    await lease_and_fail(both, {a, b})
    waited = await both.rest("POST", "/v1/tasks:wait", {"ids": [a, b], "timeout": 10})
    assert [t["state"] for t in waited["tasks"]] == ["dead", "dead"]

    retry_rest = await both.rest("POST", f"/v1/tasks/{a}/retry")
    retry_grpc = await both.grpc("RetryTask", pb.TaskRef(id=b))
    assert retry_rest["events"] == retry_grpc.events > 0
    # Back in play: ready, or already handed to the region (the worker above has free slots).
    live = {TaskState.READY, TaskState.ASSIGNED, TaskState.RUNNING}
    assert (await both.rest_task(a)).state in live
    assert (await both.grpc_task(b)).state in live

    cancel_rest = await both.rest("POST", f"/v1/tasks/{a}/cancel")
    cancel_grpc = await both.grpc("CancelTask", pb.TaskRef(id=b))
    assert cancel_rest["events"] == cancel_grpc.events > 0
    assert await both.rest_task(a) == await both.grpc_task(a)


async def test_system_views_and_settings(both: Both) -> None:
    await both.grpc_register()
    for path, method, request in [
        ("/v1/regions", "ListRegions", pb.ListRegionsRequest()),
        ("/v1/workers", "ListWorkers", pb.ListWorkersRequest()),
        ("/v1/workers?region=default", "ListWorkers", pb.ListWorkersRequest(region="default")),
        ("/v1/settings", "GetSettings", pb.GetSettingsRequest()),
    ]:
        assert await both.rest("GET", path) == json.loads((await both.grpc(method, request)).json)
    rest_stats = await both.rest("GET", "/v1/stats")
    grpc_stats = json.loads((await both.grpc("GetStats", pb.GetStatsRequest())).json)
    for stats in (rest_stats, grpc_stats):
        stats.pop("now")
    assert rest_stats.keys() == grpc_stats.keys()
    assert rest_stats["by_state"] == grpc_stats["by_state"]

    put_rest = await both.rest("PUT", "/v1/settings", {"aging_rate": 0.25, "deadline_boost": 3})
    assert json.loads((await both.grpc("GetSettings", pb.GetSettingsRequest())).json) == put_rest
    doc = types.JsonDocument(json=json.dumps({"aging_rate": 0.5}))
    put_grpc = json.loads((await both.grpc("PutSettings", doc)).json)
    assert await both.rest("GET", "/v1/settings") == put_grpc
    assert put_grpc["aging_rate"] == 0.5 and "deadline_boost" not in put_grpc


async def test_settings_merge_patch(both: Both) -> None:
    """PATCH /v1/settings and PatchSettings: a JSON merge patch applied by the master to the
    settings in force. Named keys change, the rest keeps its value, null returns a key to its
    default, and a patch with one bad key changes nothing."""
    await both.rest("PUT", "/v1/settings", {"aging_rate": 0.25, "deadline_boost": 3})
    r = await both.http.patch(
        "/v1/settings",
        content=json.dumps({"admission": {"max_queued": 5000}}),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["admission"]["max_queued"] == 5000
    assert patched["aging_rate"] == 0.25 and patched["deadline_boost"] == 3  # kept
    doc = types.JsonDocument(json=json.dumps({"aging_rate": None, "deadline_boost": 7}))
    patched = json.loads((await both.grpc("PatchSettings", doc)).json)
    assert "aging_rate" not in patched  # back to its default, which the document omits
    assert patched["deadline_boost"] == 7 and patched["admission"]["max_queued"] == 5000
    assert await both.rest("GET", "/v1/settings") == patched

    for body, field in [
        ({"deadline_boost": 9, "agin_rate": 1}, "agin_rate"),
        ({"deadline_boost": 9, "admission": {"max_queue": 1}}, "admission.max_queue"),
        ({"deadline_boost": 9, "aging_rate": -1}, "aging_rate"),
        ([{"deadline_boost": 9}], "settings"),
    ]:
        problem = await both.rest("PATCH", "/v1/settings", body, status=422)
        assert problem["field"] == field, problem
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await both.grpc("PatchSettings", types.JsonDocument(json=json.dumps(body)))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    r = await both.http.patch(
        "/v1/settings", content=b"{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert await both.rest("GET", "/v1/settings") == patched  # none of them changed anything


async def test_errors_are_the_same_problem(both: Both) -> None:
    cases: list[tuple[str, str, Any, str, Any]] = [
        ("GET", "/v1/tasks/nope", None, "GetTask", pb.GetTaskRequest(id="nope")),
        ("POST", "/v1/tasks/nope/cancel", None, "CancelTask", pb.TaskRef(id="nope")),
        ("GET", "/v1/workflows/wf_nope", None, "GetWorkflow", pb.WorkflowRef(id="wf_nope")),
        (
            "POST",
            "/v1/tasks",
            {"name": "add", "depends_on": ["ghost"]},
            "SubmitTask",
            pb.SubmitTaskRequest(task=types.TaskSpec(name="add", depends_on=["ghost"])),
        ),
        (
            "POST",
            "/v1/workflows",
            {**WORKFLOW, "edges": [["extract", "load"], ["load", "extract"]]},
            "SubmitWorkflow",
            pb.SubmitWorkflowRequest(
                workflow=types.WorkflowSpec(
                    name="etl",
                    nodes=workflow_pb().nodes,
                    edges=[
                        types.Edge(parent="extract", child="load"),
                        types.Edge(parent="load", child="extract"),
                    ],
                    on_failure=types.FAILURE_POLICY_FAIL_WORKFLOW,
                )
            ),
        ),
    ]
    for method, path, body, rpc, request in cases:
        r = await both.http.request(method, path, json=body)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await both.grpc(rpc, request)
        rest_problem = r.json()
        grpc_problem = json.loads(dict(info.value.trailing_metadata() or ())["tierq-error"])
        for doc in (rest_problem, grpc_problem):
            doc.pop("instance")
        assert rest_problem == grpc_problem, (path, rpc)
        assert r.status_code == rest_problem["status"]
    # The cycle names its ids; the unknown dependency names the missing id.
    assert set(rest_problem["ids"]) == {"extract", "load"}


async def test_events_agree(both: Both, engine: Engine) -> None:
    ids = [(await both.rest("POST", "/v1/tasks", TASK, status=201))["id"] for _ in range(3)]
    await both.rest("POST", f"/v1/tasks/{ids[0]}/cancel")
    last = await stream_last_sequence(engine)
    assert last >= 4
    sse = await read_sse(both.http, last, params={"after": "0"})
    call = both.t.WatchEvents(pb.WatchEventsRequest(after_sequence=0), metadata=ADMIN)
    streamed = []
    async for event in call:
        streamed.append(event)
        if len(streamed) == last:
            call.cancel()
            break
    assert [int(e["id"]) for e in sse] == [e.sequence for e in streamed] == list(range(1, last + 1))
    assert [e["event"] for e in sse] == [e.kind for e in streamed]
    assert [json.loads(e["data"]) for e in sse] == [json.loads(e.json) for e in streamed]
    kinds = [e["event"] for e in sse]
    assert kinds.count("task_submitted") == 3 and "task_cancelled" in kinds

    # Resume from the middle with Last-Event-ID, filtered to one task.
    resumed = await read_sse(
        both.http,
        1,
        headers={"last-event-id": "1"},
        params={"task": ids[0], "kinds": "task_cancelled"},
    )
    assert [(e["event"], json.loads(e["data"])["id"]) for e in resumed] == [
        ("task_cancelled", ids[0])
    ]


async def test_the_last_events_over_sse(both: Both, engine: Engine) -> None:
    """``last=N`` (gRPC ``last``): the stream's last N events at once (what the dashboard's
    events page shows on open), then the live ones; a Last-Event-ID resume ignores it."""
    for _ in range(3):
        await both.rest("POST", "/v1/tasks", TASK, status=201)
    last = await stream_last_sequence(engine)
    replayed = [int(e["id"]) for e in await read_sse(both.http, 2, params={"last": "2"})]
    # (A region may lease in between: the two are the last ones when the request came.)
    assert replayed[1] == replayed[0] + 1 and replayed[0] >= last - 1, (replayed, last)
    # gRPC: the same with WatchEventsRequest.last.
    call = both.t.WatchEvents(pb.WatchEventsRequest(last=2), metadata=ADMIN)
    streamed = []
    async for event in call:
        streamed.append(event.sequence)
        if len(streamed) == 2:
            call.cancel()
            break
    assert streamed[1] == streamed[0] + 1 and streamed[0] >= last - 1, (streamed, last)
    resumed = await read_sse(both.http, 1, params={"last": "2"}, headers={"last-event-id": "0"})
    assert [int(e["id"]) for e in resumed] == [1]
    r = await both.http.get("/v1/events", params={"last": "0"})
    assert r.status_code == 422


async def test_live_events_over_sse(both: Both) -> None:
    opened = asyncio.Event()
    reader = asyncio.create_task(
        read_sse(both.http, 2, params={"kinds": "task_submitted"}, opened=opened)
    )
    async with asyncio.timeout(10):
        await opened.wait()  # the watch is open once the response has started
    ids = [(await both.rest("POST", "/v1/tasks", TASK, status=201))["id"] for _ in range(2)]
    events = await reader
    assert [json.loads(e["data"])["id"] for e in events] == ids
