"""The SDK against the real master, region and worker on a real nats-server."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

import tierq
from tierq import (
    InvalidRequestError,
    TaskCancelledError,
    TaskFailedError,
    TaskState,
    TaskTimeoutError,
    WaitTimeoutError,
)
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


async def wait_until(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Poll the master (state lives there, not in an event of this process)."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_submit_run_result(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    added = await app.submit(tasks_module.add, 2, 3)
    multiplied = await app.submit("s.mul", 4, y=5, priority=3)
    assert await added.result(timeout=20) == 5
    assert await multiplied.result(timeout=20) == 20
    task = await multiplied.status()
    assert task.state is TaskState.SUCCEEDED
    assert task.attempt == 1 and task.priority == 3


async def test_a_failure_carries_the_remote_error(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    handle = await app.submit(tasks_module.fail, "disk on fire")
    with pytest.raises(TaskFailedError) as info:
        await handle.result(timeout=20)
    assert info.value.error_type == f"{tasks_module.__name__}.CustomError"
    assert info.value.message == "disk on fire"
    assert info.value.traceback is not None and "raise CustomError" in info.value.traceback
    assert info.value.task_id == handle.id


async def test_timeout(cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType) -> None:
    await cluster.start_worker(tasks_module.__name__)
    handle = await app.submit(tasks_module.nap, 30)
    with pytest.raises(TaskTimeoutError, match=r"0\.3 s timeout"):
        await handle.result(timeout=20)


async def test_progress_is_visible_and_a_running_task_can_be_cancelled(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    handle = await app.submit(tasks_module.halfway)

    async def halfway() -> bool:
        task = await handle.status()
        return task.progress == 0.5 and task.progress_message == "halfway there"

    await wait_until(halfway)
    assert (await handle.status()).state is TaskState.RUNNING
    await handle.cancel()
    with pytest.raises(TaskCancelledError):
        await handle.result(timeout=20)


async def test_cancel_reaches_a_sync_task_through_its_context(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__, pool="thread")
    handle = await app.submit(tasks_module.spin)
    await wait_until(lambda: _is_running(handle))
    await handle.cancel()

    async def seen() -> bool:
        return handle.id in tasks_module.cancel_seen

    await wait_until(seen)
    assert (await handle.status()).state is TaskState.CANCELLED


async def _is_running(handle: tierq.TaskHandle) -> bool:
    return (await handle.status()).state is TaskState.RUNNING


async def test_waiting_too_long_is_a_wait_timeout(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    handle = await app.submit(tasks_module.halfway)
    with pytest.raises(WaitTimeoutError, match=handle.id):
        await handle.result(timeout=0.3)
    await handle.cancel()


async def test_workflow_passes_results_down(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    wf = app.workflow("sums")
    values = wf.add(tasks_module.rows, 5)
    left = wf.add(tasks_module.total, values, key="left")
    right = wf.add(tasks_module.total, values, factor=10, key="right")
    wf.add(tasks_module.add, left, right, key="both")
    run = await wf.submit()
    assert await run.result(timeout=30) == {"both": 110}
    assert await run.result(timeout=5, all=True) == {
        "rows": [0, 1, 2, 3, 4],
        "left": 10,
        "right": 100,
        "both": 110,
    }
    states = await run.status()
    assert {t.state for t in states.values()} == {TaskState.SUCCEEDED}
    again = await app.workflow_handle(run.id)
    assert again.ids == run.ids and again.sinks == ["both"]
    # A workflow bigger than a page is fetched page by page and joined: the same view.
    master = await app.master()
    first = await master.workflow(run.id, node_limit=3)
    assert len(first.nodes) == 3 and first.next_cursor == "3"
    whole = await app.get_workflow(run.id)
    joined = await master.workflow_all(run.id, node_limit=3)
    assert joined == whole and len(joined.nodes) == 4 and len(joined.edges) == 4


async def test_workflow_failure_reports_the_root_cause(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    wf = app.workflow("doomed")
    broken = wf.add(tasks_module.fail, "upstream broke")
    wf.add(tasks_module.total, broken)
    run = await wf.submit()
    with pytest.raises(TaskFailedError, match="upstream broke"):
        await run.result(timeout=30)


async def test_higher_priority_jumps_the_queue(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__, concurrency=1)
    blocker = await app.submit(tasks_module.blocker)
    await wait_until(lambda: _is_running(blocker))
    low = await app.submit(tasks_module.record, "low", priority=-5)
    later = await app.submit(tasks_module.record, "bumped", priority=-5)
    await later.set_priority(50)
    tasks_module.gate.set()
    await app.wait_tasks([low.id, later.id], timeout=20)
    assert tasks_module.order == ["bumped", "low"]


async def test_master_errors_come_back_typed(app: tierq.App, tasks_module: ModuleType) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await app.submit(tasks_module.add, 1, 2, depends_on=["0000000000000000dead"])
    assert "0000000000000000dead" in str(info.value)
    with pytest.raises(InvalidRequestError):
        await tasks_module.add.submit_with(args=(1, 2), priority=10_000)


async def test_many_at_once(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__, concurrency=16)
    handles = await app.submit_many(tasks_module.add.spec(i, i) for i in range(200))
    results = await app.wait_tasks([h.id for h in handles], timeout=30)
    assert [t.result for t in results] == [2 * i for i in range(200)]


async def test_sync_facade(cluster: LocalCluster, tasks_module: ModuleType) -> None:
    await cluster.start_worker(tasks_module.__name__)
    client = tierq.App(cluster.nats_url)

    def blocking() -> tuple[int, TaskState]:
        with client.sync as sync:
            handle = sync.submit(tasks_module.mul, 6, 7)
            return handle.result(timeout=20), handle.status().state

    assert await asyncio.to_thread(blocking) == (42, TaskState.SUCCEEDED)
