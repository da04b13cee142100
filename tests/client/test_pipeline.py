"""Pipelined submission: tasks handed over without waiting, durable in batches."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

import tierq
from tierq import BackpressureError, InvalidRequestError
from tierq.engine import EmbeddedNats
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


async def test_handed_over_tasks_are_accepted_in_batches_and_run(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    # By name, a type no worker here runs: this test is about the hand-over, not the runs.
    pending = [app.submit_nowait("s.elsewhere", i, 1) for i in range(2500)]
    assert not any(p.done() for p in pending)
    with pytest.raises(RuntimeError, match="not accepted yet"):
        _ = pending[0].id
    await app.flush()
    assert all(p.done() for p in pending)
    ids = [p.id for p in pending]
    assert len(set(ids)) == 2500
    stats = app._pipeline().statistics()
    assert stats.accepted == 2500 and stats.refused == 0 and stats.pending == 0
    # One request per batch, not per task: at most 1,000 a batch, one in flight.
    assert 3 <= stats.batches <= 50
    await cluster.start_worker(tasks_module.__name__)
    runs = [app.submit_nowait(tasks_module.add, i, 1) for i in range(20)]
    handles = [await p.accepted() for p in runs]
    assert [await h.result(timeout=20) for h in handles] == [i + 1 for i in range(20)]


async def test_async_with_exit_sends_what_is_pending(
    cluster: LocalCluster, tasks_module: ModuleType
) -> None:
    async with tierq.App(cluster.nats_url) as producer:
        pending = [producer.submit_nowait(tasks_module.add, i, 2) for i in range(300)]
    assert all(p.done() for p in pending)
    async with tierq.App(cluster.nats_url) as reader:
        tasks = await reader.get_many([p.id for p in pending])
    assert len(tasks) == 300


async def test_bad_arguments_are_refused_at_once(app: tierq.App, tasks_module: ModuleType) -> None:
    with pytest.raises(InvalidRequestError):
        app.submit_nowait(tasks_module.add, 1, 2, 3)
    with pytest.raises(InvalidRequestError):
        app.submit_nowait(tasks_module.add, {1, 2}, 1)  # not a JSON value
    await app.flush()  # nothing was handed over, nothing to raise


async def test_a_refused_batch_fails_its_tasks_and_the_next_call(
    small_cluster: LocalCluster, tasks_module: ModuleType
) -> None:
    async with tierq.App(small_cluster.nats_url) as app:
        pending = [app.submit_nowait(tasks_module.add, i, 1) for i in range(50)]
        with pytest.raises(BackpressureError):
            await app.flush()
        with pytest.raises(BackpressureError):
            await pending[-1].accepted()
        assert app._pipeline().statistics().refused == 50
        # Raised once: the pipeline goes on with what comes next.
        await app.flush()
        await small_cluster.start_worker(tasks_module.__name__)
        later = app.submit_nowait(tasks_module.add, 1, 1)
        assert await (await later.accepted()).result(timeout=20) == 2


async def test_a_batch_waits_for_a_master_and_is_stored_once(
    nats_server: EmbeddedNats, tasks_module: ModuleType
) -> None:
    """Handed over while no master runs: the batch is sent again until one answers, and the
    idempotency keys it was given keep every task single even if a try had landed."""
    cluster = LocalCluster(nats_server.url)
    try:
        async with tierq.App(nats_server.url, request_timeout=1.0) as app:
            pending = [app.submit_nowait(tasks_module.add, i, 3) for i in range(40)]
            await asyncio.sleep(1.5)
            await cluster.start_master()
            await app.flush()
            ids = {p.id for p in pending}
            assert len(ids) == 40
            page = await app.list_tasks(limit=1000)
            assert len(page.tasks) == 40
    finally:
        await cluster.close()


async def test_the_blocking_facade_pipelines_too(
    cluster: LocalCluster, tasks_module: ModuleType
) -> None:
    app = tierq.App(cluster.nats_url)

    def produce() -> list[str]:
        # Runs in a thread: the blocking facade must not block the loop the master runs on.
        with app.sync as sync:
            pending = [sync.submit_nowait("s.elsewhere", i) for i in range(500)]
            sync.flush(timeout=30)
            assert all(p.done() for p in pending)
            handle = pending[0].accepted(timeout=5)
            assert handle.status().state is tierq.TaskState.READY
            return [p.id for p in pending]

    ids = await asyncio.to_thread(produce)
    assert len(set(ids)) == 500
