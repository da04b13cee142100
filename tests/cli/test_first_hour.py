"""A new user's first hour (issue 15): the traps that left a task waiting without a word.

A real stack (nats-server, master, region, a worker with the user's module, the API), and
what the user sees from the CLI, the SDK, REST and gRPC asserted word for word.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc.aio
import httpx
import pytest

import tierq
from tests.api.support import TOKENS, api_config, auth_header
from tierq.api import ApiServer
from tierq.api.proto import tierq_pb2 as pb
from tierq.api.proto import tierq_pb2_grpc
from tierq.api.proto import types_pb2 as types_pb
from tierq.core.breaker import BreakerSettings
from tierq.core.settings import Settings
from tierq.engine import EmbeddedNats
from tierq.testing import LocalCluster, local_cluster

from .conftest import tierq as run_tierq

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NO_WORKER = "no live worker runs task type 'c.nope' in any eligible region"


@pytest.fixture
async def stack(
    nats_server: EmbeddedNats, module_dir: tuple[str, Path]
) -> AsyncIterator[tuple[LocalCluster, ApiServer]]:
    # A breaker that opens after two failures in a row and stays open a minute.
    breaker = BreakerSettings(window=4, min_samples=2, failure_rate=0.5, cooldown=60.0)
    async with (
        local_cluster(
            nats_server.url, settings=Settings(breaker=breaker), heartbeat_interval=0.2
        ) as cluster,
        ApiServer(api_config(nats_server.url)) as api,
    ):
        await cluster.start_worker(module_dir[0])
        async with tierq.App(nats_server.url) as app:
            for _ in range(200):  # until the region offers the module's types
                (probe,) = await app.submit_many([tierq.TaskSpec(name="c.add", args=[1, 1])])
                if not probe.warnings:
                    break
                await asyncio.sleep(0.05)
        yield cluster, api


async def test_an_unknown_task_name_is_named_everywhere(
    stack: tuple[LocalCluster, ApiServer],
) -> None:
    cluster, api = stack
    url = cluster.nats_url
    # CLI: a warning at once, and the wait timeout says why it is still ready.
    run = await run_tierq("submit", "c.nope", "--wait", "--wait-timeout", "1", "--nats", url)
    assert run.code != 0
    assert f"warning: {NO_WORKER}" in run.stderr, run.stderr
    assert "is still ready after 1 s (no live worker runs task type 'c.nope'" in run.stderr
    # SDK: the handle carries the warning; the wait timeout names the reason.
    async with tierq.App(url) as app:
        handle = await app.submit("c.nope")
        assert len(handle.warnings) == 1 and NO_WORKER in handle.warnings[0]
        with pytest.raises(tierq.WaitTimeoutError) as waited:
            await handle.result(timeout=0.5)
        assert "(ready: no live worker runs task type 'c.nope'" in str(waited.value)
        task = await handle.status()
        assert task.state is tierq.TaskState.READY and task.reason is not None
        assert NO_WORKER in task.reason
    # `tierq status` shows why it waits.
    status = await run_tierq("status", handle.id, "--nats", url)
    assert "waiting" in status.stdout and "no live worker runs task type" in status.stdout
    assert "running on" not in status.stdout
    # REST: 201 with the warning in the body; the task says why it waits.
    headers = auth_header("admin")
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=20) as http:
        r = await http.post("/v1/tasks", json={"name": "c.nope"})
        assert r.status_code == 201, r.text
        assert NO_WORKER in r.json()["warnings"][0]
        shown = (await http.get(f"/v1/tasks/{r.json()['id']}")).json()
        assert NO_WORKER in shown["reason"]
        known = await http.post("/v1/tasks", json={"name": "c.add", "args": [1, 2]})
        assert "warnings" not in known.json()
    # gRPC: the same warning on the response.
    async with grpc.aio.insecure_channel(api.grpc_target) as channel:
        reply = await tierq_pb2_grpc.TierqStub(channel).SubmitTask(
            pb.SubmitTaskRequest(task=types_pb.TaskSpec(name="c.nope")),
            metadata=(("authorization", f"Bearer {TOKENS['admin']}"),),
            timeout=20,
        )
    assert len(reply.warnings) == 1 and NO_WORKER in reply.warnings[0]


async def test_an_open_breaker_is_named_where_the_task_waits(
    stack: tuple[LocalCluster, ApiServer],
) -> None:
    cluster, _ = stack
    url = cluster.nats_url
    async with tierq.App(url) as app:
        # Its failures open the task's breaker (two, with these settings), and the next one
        # waits. (By name, the declared retries=0 does not apply yet: issue 15, item 1.)
        failures, parked, message = 0, None, ""
        for _ in range(6):
            once = tierq.RetryPolicy(max_attempts=1)
            (handle,) = await app.submit_many([tierq.TaskSpec(name="c.fail", retry=once)])
            try:
                await handle.result(timeout=5.0)
            except tierq.TaskFailedError as exc:
                failures += 1
                message = f"{exc.error_type}: {exc}"
            except tierq.WaitTimeoutError as exc:
                parked, message = handle, str(exc)
                break
        assert parked is not None and failures >= 2, (failures, message)
        assert "(ready: circuit breaker task:default:c.fail is open since " in message, message
        task = await parked.status()
        assert task.state is tierq.TaskState.READY and task.reason is not None
        assert task.reason.startswith("circuit breaker task:default:c.fail is open since ")
        assert "half-opens at " in task.reason
    status = await run_tierq("status", parked.id, "--nats", url)
    assert "circuit breaker task:default:c.fail is open" in status.stdout, status.stdout
    assert "running on" not in status.stdout  # not the stale worker of an earlier attempt


async def test_declared_options_hold_when_submitted_by_name(
    stack: tuple[LocalCluster, ApiServer],
) -> None:
    """Issue 15, item 1: ``@app.task(timeout=1, retries=0, priority=7)`` submitted by name
    ran for 5 s with none of them. Now the master fills in what the request leaves out."""
    cluster, api = stack
    url = cluster.nats_url
    run = await run_tierq("submit", "c.sleepy", "--args", "[5]", "--wait", "--nats", url)
    assert run.code == 1, (run.stdout, run.stderr)
    assert "ran past its 1 s timeout" in run.stderr, run.stderr
    headers = auth_header("admin")
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=20) as http:
        r = await http.post("/v1/tasks", json={"name": "c.sleepy", "args": [5]})
        task_id = r.json()["id"]
        spec = (await http.get(f"/v1/tasks/{task_id}")).json()["spec"]
        assert (spec["timeout"], spec["retry"]["max_attempts"], spec["priority"]) == (1.0, 1, 7)
        # An explicit value wins over the declared one.
        r = await http.post("/v1/tasks", json={"name": "c.sleepy", "args": [0], "timeout": 30})
        spec = (await http.get(f"/v1/tasks/{r.json()['id']}")).json()["spec"]
        assert spec["timeout"] == 30.0
    async with grpc.aio.insecure_channel(api.grpc_target) as channel:
        reply = await tierq_pb2_grpc.TierqStub(channel).SubmitTask(
            pb.SubmitTaskRequest(task=types_pb.TaskSpec(name="c.sleepy", args_json="[5]")),
            metadata=(("authorization", f"Bearer {TOKENS['admin']}"),),
            timeout=20,
        )
    async with tierq.App(url) as app:
        with pytest.raises(tierq.TaskTimeoutError):
            await app.handle(task_id).result(timeout=20)
        assert (await app.get(task_id)).attempt == 1  # retries=0 held too
        # (Two timeouts open this stack's breaker: the gRPC one is only checked, not run.)
        spec = (await app.get(reply.id)).spec
        assert (spec.timeout, spec.retry.max_attempts, spec.priority) == (1.0, 1, 7)


async def test_lists_are_newest_first_in_the_cli_and_on_request(
    stack: tuple[LocalCluster, ApiServer],
) -> None:
    """Issue 15, item 11: `tierq tasks` newest first (--oldest to reverse); REST
    `order=newest` and gRPC `newest_first`."""
    cluster, api = stack
    url = cluster.nats_url
    async with tierq.App(url) as app:
        ids = [h.id for h in await app.submit_many([tierq.TaskSpec(name="c.nope")] * 3)]
    newest = await run_tierq("tasks", "--name", "c.nope", "--json", "--nats", url)
    listed = [json.loads(line)["id"] for line in newest.stdout.splitlines()]
    assert listed[:3] == ids[::-1], newest.stderr
    oldest = await run_tierq("tasks", "--name", "c.nope", "--oldest", "--json", "--nats", url)
    assert [json.loads(line)["id"] for line in oldest.stdout.splitlines()][-3:] == ids
    headers = auth_header("admin")
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=20) as http:
        r = await http.get("/v1/tasks", params={"name": "c.nope", "order": "newest", "limit": 2})
        page = r.json()
        assert [t["id"] for t in page["tasks"]] == ids[:0:-1]
        r = await http.get(
            "/v1/tasks",
            params={"name": "c.nope", "order": "newest", "cursor": page["next_cursor"]},
        )
        assert [t["id"] for t in r.json()["tasks"]][:1] == ids[:1]
        bad = await http.get("/v1/tasks", params={"order": "sideways"})
        assert bad.status_code == 422
    async with grpc.aio.insecure_channel(api.grpc_target) as channel:
        listed_pb = await tierq_pb2_grpc.TierqStub(channel).ListTasks(
            pb.ListTasksRequest(name="c.nope", newest_first=True, limit=3),
            metadata=(("authorization", f"Bearer {TOKENS['admin']}"),),
            timeout=20,
        )
    assert [t.id for t in listed_pb.tasks] == ids[::-1]
