"""Pull over the API: a worker that is not the Python worker runtime, only raw gRPC stubs
(what a Go or Rust worker would generate from workers.proto), under the same lease rules.
Also the built-in shell task type, which is such a worker inside the API process."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc.aio
import httpx
import pytest

import tierq
from tierq.api import ApiServer
from tierq.api.proto import tierq_pb2 as pb
from tierq.api.proto import tierq_pb2_grpc, workers_pb2_grpc
from tierq.api.proto import workers_pb2 as wpb
from tierq.core.model import RetryPolicy, TaskSpec
from tierq.engine import EmbeddedNats, Subjects, connect
from tierq.errors import PermissionDeniedError, TierqError
from tierq.protocol import (
    Ack,
    PullRequest,
    RegisterWorkerReply,
    RegisterWorkerRequest,
    WorkerHeartbeat,
    WorkerReport,
    decode_reply,
    encode,
)

from .conftest import Stack
from .support import TOKENS, api_config, auth_header, read_sse

ONCE = RetryPolicy(max_attempts=1)

pytestmark = pytest.mark.integration

WORKER = (("authorization", f"Bearer {TOKENS['worker']}"),)


class RawWorker:
    """A worker made of nothing but the generated gRPC stub."""

    def __init__(self, channel: grpc.aio.Channel, task_types: list[str]) -> None:
        self.stub = workers_pb2_grpc.WorkersStub(channel)
        self.task_types = task_types
        self.id = ""

    async def register(self) -> wpb.RegisterWorkerResponse:
        reply: wpb.RegisterWorkerResponse = await self.stub.RegisterWorker(
            wpb.RegisterWorkerRequest(
                region="default", task_types=self.task_types, concurrency=4, host="raw"
            ),
            metadata=WORKER,
            timeout=10,
        )
        self.id = reply.worker
        return reply

    async def lease(self, slots: int = 4, wait: float = 5.0) -> list[wpb.LeasedTask]:
        reply = await self.stub.LeaseTasks(
            wpb.LeaseTasksRequest(region="default", worker=self.id, slots=slots, wait=wait),
            metadata=WORKER,
            timeout=wait + 10,
        )
        return list(reply.tasks)

    async def lease_until(self, count: int, seconds: float = 15.0) -> list[wpb.LeasedTask]:
        deadline = time.monotonic() + seconds
        got: list[wpb.LeasedTask] = []
        while len(got) < count and time.monotonic() < deadline:
            got += await self.lease(slots=count - len(got), wait=1.0)
        assert len(got) == count, f"leased {len(got)} of {count}"
        return got

    async def heartbeat(self, running: list[wpb.LeasedTask]) -> wpb.HeartbeatResponse:
        reply: wpb.HeartbeatResponse = await self.stub.Heartbeat(
            wpb.HeartbeatRequest(
                region="default",
                worker=self.id,
                running=[wpb.AttemptRef(task_id=t.id, attempt=t.attempt) for t in running],
            ),
            metadata=WORKER,
            timeout=10,
        )
        return reply

    async def report(self, **fields: Any) -> None:
        await self.stub.Report(
            wpb.ReportRequest(region="default", worker=self.id, **fields),
            metadata=WORKER,
            timeout=10,
        )


async def submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    r = await http.post("/v1/tasks", json=body)
    assert r.status_code == 201, r.text
    task_id: str = r.json()["id"]
    return task_id


async def wait_state(http: httpx.AsyncClient, task_id: str, seconds: float = 15) -> dict[str, Any]:
    r = await http.post("/v1/tasks:wait", json={"ids": [task_id], "timeout": seconds})
    doc: dict[str, Any] = r.json()["tasks"][0]
    return doc


async def test_lease_heartbeat_report(stack: Stack, stack_channel: grpc.aio.Channel) -> None:
    worker = RawWorker(stack_channel, ["resize"])
    registered = await worker.register()
    assert registered.lease_seconds > 0 and registered.heartbeat_interval > 0
    task_id = await submit(stack.http, {"name": "resize", "args": [640, 480]})
    (leased,) = await worker.lease_until(1)
    assert (leased.id, leased.attempt, leased.name) == (task_id, 1, "resize")
    assert json.loads(leased.args_json) == [640, 480]

    beat = await worker.heartbeat([leased])
    assert not beat.unknown and list(beat.cancel) == []
    await worker.report(
        progress=[wpb.ProgressUpdate(task_id=leased.id, attempt=1, fraction=0.5, message="half")]
    )
    await worker.report(
        outcomes=[
            wpb.Outcome(
                task_id=leased.id,
                attempt=1,
                kind=wpb.OUTCOME_KIND_SUCCEEDED,
                result_json=json.dumps({"width": 320}),
            )
        ]
    )
    done = await wait_state(stack.http, task_id)
    assert done["state"] == "succeeded"
    assert done["result"] == {"width": 320}
    assert done["worker"] == worker.id

    kinds = [
        e["event"] for e in await read_sse(stack.http, 5, params={"after": "0", "task": task_id})
    ]
    assert kinds[0] == "task_submitted" and kinds[-1] == "task_succeeded"
    assert "task_started" in kinds


async def test_failure_is_reported_with_its_error(
    stack: Stack, stack_channel: grpc.aio.Channel
) -> None:
    worker = RawWorker(stack_channel, ["flaky"])
    await worker.register()
    task_id = await submit(stack.http, {"name": "flaky", "retry": {"max_attempts": 1}})
    (leased,) = await worker.lease_until(1)
    error = {"type": "IOError", "message": "disk on fire", "traceback": "at main.go:12"}
    await worker.report(
        outcomes=[
            wpb.Outcome(
                task_id=leased.id,
                attempt=leased.attempt,
                kind=wpb.OUTCOME_KIND_FAILED,
                error={
                    "type": error["type"],
                    "message": error["message"],
                    "traceback": error["traceback"],
                },
            )
        ]
    )
    dead = await wait_state(stack.http, task_id)
    assert dead["state"] == "dead"
    assert dead["error"]["type"] == "IOError" and dead["error"]["traceback"] == "at main.go:12"


async def test_a_silent_worker_loses_its_lease(
    stack: Stack, stack_channel: grpc.aio.Channel
) -> None:
    """No heartbeats: the attempt is taken back and runs again as attempt 2 elsewhere; the
    first worker's late report is recognised as stale and changes nothing."""
    silent = RawWorker(stack_channel, ["slow"])
    await silent.register()
    task_id = await submit(
        stack.http, {"name": "slow", "retry": {"max_attempts": 3, "backoff_base": 0.05}}
    )
    (first,) = await silent.lease_until(1)
    assert first.attempt == 1

    rescuer = RawWorker(stack_channel, ["slow"])
    await rescuer.register()
    (second,) = await rescuer.lease_until(1, seconds=20)
    assert (second.id, second.attempt) == (task_id, 2)

    stale = wpb.Outcome(
        task_id=first.id, attempt=1, kind=wpb.OUTCOME_KIND_SUCCEEDED, result_json='"stale"'
    )
    await silent.report(outcomes=[stale])
    fresh = wpb.Outcome(
        task_id=second.id, attempt=2, kind=wpb.OUTCOME_KIND_SUCCEEDED, result_json='"fresh"'
    )
    await rescuer.report(outcomes=[fresh])
    done = await wait_state(stack.http, task_id)
    assert (done["state"], done["result"], done["attempt"]) == ("succeeded", "fresh", 2)
    lost = done["history"][0]
    assert lost["attempt"] == 1 and lost["error"]["lost"] is True
    # The silent worker is unknown to the region now: it is told to register again.
    assert (await silent.heartbeat([first])).unknown


async def test_cancel_reaches_the_worker(stack: Stack, stack_channel: grpc.aio.Channel) -> None:
    worker = RawWorker(stack_channel, ["long"])
    await worker.register()
    task_id = await submit(stack.http, {"name": "long"})
    (leased,) = await worker.lease_until(1)
    r = await stack.http.post(f"/v1/tasks/{task_id}/cancel")
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    cancel: list[tuple[str, int]] = []
    while not cancel and time.monotonic() < deadline:
        cancel = [(a.task_id, a.attempt) for a in (await worker.heartbeat([leased])).cancel]
        await asyncio.sleep(0.1)
    assert cancel == [(task_id, 1)]
    assert (await wait_state(stack.http, task_id))["state"] == "cancelled"


async def test_workers_list_shows_the_raw_worker(
    stack: Stack, stack_channel: grpc.aio.Channel
) -> None:
    worker = RawWorker(stack_channel, ["resize"])
    await worker.register()
    deadline = time.monotonic() + 10
    ids: list[str] = []
    while worker.id not in ids and time.monotonic() < deadline:
        ids = [w["id"] for w in (await stack.http.get("/v1/workers")).json()["workers"]]
        await asyncio.sleep(0.2)
    assert worker.id in ids


# --- the shell task type -----------------------------------------------------------------


async def shell_status(http: httpx.AsyncClient, task_id: str, want: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        r = await http.get("/status/", params={"task_id": task_id})
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        if doc["status"] in want or time.monotonic() > deadline:
            return doc
        await asyncio.sleep(0.1)


async def test_shell_schedule_and_status(stack: Stack, nats_server: EmbeddedNats) -> None:
    config = api_config(nats_server.url, enable_shell=True, provision_events=False)
    async with (
        ApiServer(config) as api,
        httpx.AsyncClient(base_url=api.url, headers=auth_header("admin"), timeout=30) as http,
    ):
        r = await http.post("/schedule", json={"command": "echo hello from $0"})
        assert r.status_code == 201, r.text
        ok = await shell_status(http, r.json()["task_id"], {"succeeded", "dead"})
        assert (ok["status"], ok["exit_code"]) == ("succeeded", 0)
        assert ok["output"].startswith("hello from")

        later = time.time() + 1.0
        r = await http.post(
            "/schedule", json={"command": "echo boom >&2; exit 3", "scheduled_at": later}
        )
        task_id = r.json()["task_id"]
        assert (await http.get("/status/", params={"task_id": task_id})).json()["status"] in (
            "pending",
            "ready",
        )
        failed = await shell_status(http, task_id, {"succeeded", "dead"})
        assert (failed["status"], failed["exit_code"]) == ("dead", 3)
        assert "boom" in failed["output"]

        # Only admins may run commands, through /schedule or as a plain task.
        submit_only = auth_header("submit")
        r = await http.post("/schedule", json={"command": "true"}, headers=submit_only)
        assert r.status_code == 403
        r = await http.post("/v1/tasks", json={"name": "shell"}, headers=submit_only)
        assert r.status_code == 403
        # /status/ only knows shell tasks.
        other = await submit(http, {"name": "add"})
        assert (await http.get("/status/", params={"task_id": other})).status_code == 404


async def test_shell_least_privilege(stack: Stack, nats_server: EmbeddedNats) -> None:
    """Issue 12: what non-admin tokens could do with an admin's shell task."""
    config = api_config(nats_server.url, enable_shell=True, provision_events=False)
    async with (
        ApiServer(config) as api,
        httpx.AsyncClient(base_url=api.url, headers=auth_header("admin"), timeout=30) as http,
    ):
        r = await http.post(
            "/v1/tasks",
            json={
                "name": "shell",
                "kwargs": {"command": "echo SECRET_DB_PASSWORD=hunter2; exit 1"},
            },
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]
        dead = await shell_status(http, task_id, {"dead"})
        assert "hunter2" in dead["output"]  # the admin sees it

        # Read and submit roles see neither the command nor its output.
        for role in ("read", "submit"):
            headers = auth_header(role)
            seen = [
                (await http.get(f"/v1/tasks/{task_id}", headers=headers)).text,
                (await http.get("/v1/tasks", params={"name": "shell"}, headers=headers)).text,
                (
                    await http.post(
                        "/v1/tasks:wait", json={"ids": [task_id], "timeout": 0}, headers=headers
                    )
                ).text,
                (await http.get("/status/", params={"task_id": task_id}, headers=headers)).text,
            ]
            assert not [text for text in seen if "hunter2" in text or "SECRET" in text], role

        # Nor in the event feed: its submission, failures and death, over SSE and gRPC.
        params = {"task": task_id, "after": "0"}
        for role in ("read", "admin"):
            events = await read_sse(http, 5, params=params, headers=auth_header(role))
            kinds = [e["event"] for e in events]
            assert "task_submitted" in kinds and "task_failed" in kinds, kinds
            leaked = [e for e in events if "hunter2" in e["data"]]
            assert (leaked != []) == (role == "admin"), (role, events)
        async with grpc.aio.insecure_channel(api.grpc_target) as channel:
            stream = tierq_pb2_grpc.TierqStub(channel).WatchEvents(
                pb.WatchEventsRequest(task_id=task_id, after_sequence=0),
                metadata=(("authorization", f"Bearer {TOKENS['read']}"),),
                timeout=20,
            )
            seen = []
            async for event in stream:
                seen.append(event.json)
                if len(seen) == 5:
                    break
            stream.cancel()
        assert seen and not [j for j in seen if "hunter2" in j or "SECRET" in j], seen

        # A submit token may neither run it again nor sooner.
        submit_only = auth_header("submit")
        r = await http.post(f"/v1/tasks/{task_id}/retry", headers=submit_only)
        assert r.status_code == 403, r.text
        r = await http.patch(f"/v1/tasks/{task_id}", json={"priority": 9}, headers=submit_only)
        assert r.status_code == 403, r.text
        assert (await http.get(f"/v1/tasks/{task_id}")).json()["state"] == "dead"

        # Look-alike names are refused, not queued for a worker that never comes.
        for name in ("Shell", "SHELL", "\uff53\uff48\uff45\uff4c\uff4c"):
            r = await http.post("/v1/tasks", json={"name": name})
            assert r.status_code == 422, (name, r.text)
        # Bad arguments are refused at submission instead of failing (and retrying) later.
        for body in ({"name": "shell"}, {"name": "shell", "kwargs": {"command": 3}}):
            r = await http.post("/v1/tasks", json=body)
            assert r.status_code == 422, (body, r.text)

        # Only the built-in runner serves shell; a worker token acts only as its own ids.
        worker = auth_header("worker")
        r = await http.post(
            "/v1/regions/default/workers", json={"task_types": ["shell"]}, headers=worker
        )
        assert r.status_code == 403, r.text
        r = await http.post(
            "/v1/regions/default/workers", json={"task_types": ["add"]}, headers=worker
        )
        assert r.status_code == 201 and r.json()["worker"].startswith("worker:")
        r = await http.post(
            "/v1/regions/default/workers/api-shell-runner/report",
            json={"outcomes": []},
            headers=worker,
        )
        assert r.status_code == 403, r.text


async def test_shell_tasks_from_nats_are_not_run(
    stack: Stack, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """A shell task submitted straight to the master (the client role may submit) is refused
    by the runner, and so is a replay of an admin's signed arguments under another key."""
    config = api_config(nats_server.url, enable_shell=True, provision_events=False)
    marker = tmp_path / "ran"
    async with (
        ApiServer(config) as api,
        httpx.AsyncClient(base_url=api.url, headers=auth_header("admin"), timeout=30) as http,
        tierq.App(nats_server.url) as client,
    ):
        master = await client.master()
        (forged,) = await master.submit(
            [TaskSpec(name="shell", kwargs={"command": f"touch {marker}"}, retry=ONCE)]
        )
        refused = await shell_status(http, forged, {"succeeded", "dead"})
        assert refused["status"] == "dead", refused
        assert refused["error"].startswith("UnauthorizedShellTask"), refused
        assert not marker.exists()
        r = await http.post("/v1/tasks", json={"name": "shell", "kwargs": {"command": "true"}})
        signed = await shell_status(http, r.json()["id"], {"succeeded", "dead"})
        assert signed["status"] == "succeeded"
        admin_spec = (await http.get(f"/v1/tasks/{r.json()['id']}")).json()["spec"]
        (replayed,) = await master.submit(
            [TaskSpec(name="shell", kwargs=admin_spec["kwargs"], retry=ONCE)]
        )
        again = await master.submit(
            [
                TaskSpec(
                    name="shell",
                    kwargs=admin_spec["kwargs"],
                    idempotency_key=admin_spec["idempotency_key"],
                )
            ]
        )
        assert again == [r.json()["id"]]  # the same task, not a second run
        dead = await shell_status(http, replayed, {"succeeded", "dead"})
        assert dead["status"] == "dead", dead
        assert dead["error"].startswith("UnauthorizedShellTask"), dead


async def test_only_the_apis_runner_serves_shell_on_the_bus(
    stack: Stack, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """Issue 12: a process holding the region's NATS *worker* user could register for
    ``shell`` with the region directly and be handed admin commands. Now only the API's
    runner, on the region's trusted subjects, serves it: the region refuses the registration,
    and nothing on the ordinary subjects may act under the runner's id."""
    config = api_config(nats_server.url, enable_shell=True, provision_events=False)
    subjects = Subjects()
    async with (
        ApiServer(config) as api,
        httpx.AsyncClient(base_url=api.url, headers=auth_header("admin"), timeout=30) as http,
    ):
        eng = await connect(nats_server.connect_options("worker", "default", name="rogue"))
        try:
            rogue = RegisterWorkerRequest(worker="rogue", task_types=["shell"], concurrency=4)
            with pytest.raises(PermissionDeniedError, match="reserved"):
                data = await eng.request(subjects.region("default", "register"), encode(rogue))
                decode_reply(data, RegisterWorkerReply)
            # The trusted subjects are the API's alone: NATS refuses the worker user.
            with pytest.raises(TierqError):
                await eng.request(
                    subjects.region_trusted("default", "register"), encode(rogue), timeout=2.0
                )
            # Acting under the runner's id on the ordinary subjects is refused.
            runner = await _shell_runner_id(http)
            for op, request in (
                ("pull", PullRequest(worker=runner, slots=4, wait=0.0)),
                ("heartbeat", WorkerHeartbeat(worker=runner)),
                ("report", WorkerReport(worker=runner)),
                (
                    "register",
                    RegisterWorkerRequest(worker=runner, task_types=["add"], concurrency=1),
                ),
            ):
                data = await eng.request(subjects.region("default", op), encode(request))
                with pytest.raises(PermissionDeniedError, match="API's runner"):
                    decode_reply(data, Ack)
        finally:
            await eng.close()
        # The runner itself still runs shell tasks.
        r = await http.post("/schedule", json={"command": "echo still here"})
        done = await shell_status(http, r.json()["task_id"], {"succeeded", "dead"})
        assert (done["status"], done["output"]) == ("succeeded", "still here\n")


async def _shell_runner_id(http: httpx.AsyncClient) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        workers = (await http.get("/v1/workers")).json()["workers"]
        ids = [w["id"] for w in workers if "shell" in w["task_types"]]
        if ids:
            return str(ids[0])
        await asyncio.sleep(0.1)
    raise AssertionError("the shell runner did not register")
