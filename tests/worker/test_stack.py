"""Worker processes against the real master and region: graceful drain and hard kill."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tierq
from tierq import TaskState
from tierq.engine import EmbeddedNats
from tierq.testing import LocalCluster, local_cluster

from .conftest import ModuleMaker

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SOURCE = """
import asyncio, os, time
import tierq

app = tierq.App()

@app.task(name="d.slow")
async def slow(seconds):
    await asyncio.sleep(seconds)
    return {"pid": os.getpid()}

@app.task(name="d.slow_sync")
def slow_sync(seconds):
    time.sleep(seconds)
    return {"pid": os.getpid()}

@app.task(name="d.pid")
def pid():
    return os.getpid()
"""


@pytest.fixture
def module(make_module: ModuleMaker) -> str:
    return make_module(SOURCE)


@pytest.fixture
def worker_env(module: str, tmp_path: Path) -> dict[str, str]:
    """Worker subprocesses find the task module where ``make_module`` wrote it."""
    assert (tmp_path / f"{module}.py").exists()
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}


@pytest.fixture
async def cluster(nats_server: EmbeddedNats) -> AsyncIterator[LocalCluster]:
    async with local_cluster(
        nats_server.url, worker_lease_seconds=1.5, heartbeat_interval=0.2
    ) as c:
        yield c


@pytest.fixture
async def app(cluster: LocalCluster) -> AsyncIterator[tierq.App]:
    async with tierq.App(cluster.nats_url) as client:
        yield client


async def wait_state(app: tierq.App, task_id: str, state: TaskState) -> tierq.Task:
    async with asyncio.timeout(30):
        while True:
            task = await app.get(task_id)
            if task.state is state:
                return task
            await asyncio.sleep(0.05)


async def exit_code(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    return await asyncio.to_thread(proc.wait, timeout)


async def test_sigterm_drains_finishes_running_tasks_and_exits_0(
    cluster: LocalCluster, app: tierq.App, module: str, worker_env: dict[str, str]
) -> None:
    proc = cluster.spawn_worker(module, concurrency=4, pool="thread", extra_env=worker_env)
    handles = [
        await app.submit("d.slow", 1.5),
        await app.submit("d.slow_sync", 1.5),
    ]
    for handle in handles:
        await wait_state(app, handle.id, TaskState.RUNNING)
    proc.send_signal(signal.SIGTERM)
    assert await exit_code(proc) == 0
    for task in await app.wait_tasks([h.id for h in handles], timeout=10):
        assert task.state is TaskState.SUCCEEDED
        assert task.attempt == 1
        assert task.result == {"pid": proc.pid}


async def test_kill_9_mid_task_reruns_it_elsewhere_as_attempt_2(
    cluster: LocalCluster, app: tierq.App, module: str, worker_env: dict[str, str]
) -> None:
    doomed = cluster.spawn_worker(module, concurrency=2, extra_env=worker_env)
    handle = await app.submit("d.slow", 2.0)
    running = await wait_state(app, handle.id, TaskState.RUNNING)
    assert running.attempt == 1
    doomed.send_signal(signal.SIGKILL)
    assert await exit_code(doomed) == -signal.SIGKILL
    await cluster.start_worker(module)
    assert await handle.result(timeout=40) == {"pid": os.getpid()}
    task = await handle.status()
    assert task.attempt == 2
    assert task.history[0].outcome is not None and task.history[0].outcome != "succeeded"


async def test_process_pool_worker_runs_sync_tasks_in_children(
    cluster: LocalCluster, app: tierq.App, module: str
) -> None:
    await cluster.start_worker(module, pool="process", concurrency=2)
    handle = await app.submit("d.pid")
    child = await handle.result(timeout=30)
    assert isinstance(child, int) and child != os.getpid()
