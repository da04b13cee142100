"""A task's life through the real stack: submit, order, delay, retry, timeout, cancel, limits."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import tierq
from tests.integration import itasks
from tests.integration.conftest import TASKS, ledger
from tierq.core import AdmissionSettings, Settings
from tierq.core.model import TaskState
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


async def test_submit_run_result(cluster: LocalCluster, client: tierq.App) -> None:
    await cluster.start_worker(TASKS)
    handle = await client.submit(itasks.add, 2, 3)
    assert await handle.result(timeout=10) == 5
    task = await handle.status()
    assert task.state is TaskState.SUCCEEDED
    assert task.attempt == 1
    assert {"ready", "assigned", "running", "succeeded"} <= set(task.timestamps)
    assert await ledger(client) == {
        "submitted": 1,
        "succeeded": 1,
        "dead": 0,
        "cancelled": 0,
        "skipped": 0,
        "duplicates": 0,
    }


async def test_workflow_runs_in_dependency_order_with_results(
    cluster: LocalCluster, client: tierq.App, tmp_path: Path
) -> None:
    await cluster.start_worker(TASKS, concurrency=4)
    wf = client.workflow("diamond")
    a = wf.add(itasks.concat, "a")
    b = wf.add(itasks.concat, a, "b")
    c = wf.add(itasks.concat, a, "c")
    d = wf.add(itasks.concat, b, c, "d")
    run = await wf.submit()
    assert await run[d].result(timeout=10) == "abacd"
    tasks = await run.status()
    ended = {key: t.timestamps["succeeded"] for key, t in tasks.items()}
    started = {key: t.timestamps["running"] for key, t in tasks.items()}
    assert started[b.key] >= ended[a.key] and started[c.key] >= ended[a.key]
    assert started[d.key] >= max(ended[b.key], ended[c.key])
    counts = await ledger(client)
    assert counts["succeeded"] == 4


async def test_priority_and_reprioritisation_with_one_slot(
    cluster: LocalCluster, client: tierq.App, tmp_path: Path
) -> None:
    order = tmp_path / "order.jsonl"
    await cluster.start_worker(TASKS, concurrency=1)
    blocker = await client.submit(itasks.nap, 0.5)
    await _wait_state(client, blocker.id, TaskState.RUNNING)
    low = await client.submit(itasks.record, str(order), "low", priority=1)
    mid = await client.submit(itasks.record, str(order), "mid", priority=5)
    await client.submit(itasks.record, str(order), "high", priority=9)
    await low.set_priority(50)  # jumps ahead of everything still queued
    await mid.result(timeout=10)
    await blocker.result(timeout=10)
    for h in (low, mid):
        await h.result(timeout=10)
    labels = [json.loads(line)["label"] for line in order.read_text().splitlines()]
    assert labels == ["low", "high", "mid"]
    await ledger(client)


async def test_delayed_task_waits_for_run_at(cluster: LocalCluster, client: tierq.App) -> None:
    await cluster.start_worker(TASKS)
    run_at = time.time() + 1.0
    handle = await client.submit(itasks.add, 1, 1, run_at=run_at)
    assert (await handle.status()).state is TaskState.PENDING
    assert await handle.result(timeout=10) == 2
    task = await handle.status()
    assert task.timestamps["running"] >= run_at
    await ledger(client)


async def test_retries_with_backoff_then_dead(cluster: LocalCluster, client: tierq.App) -> None:
    await cluster.start_worker(TASKS)
    handle = await client.submit(itasks.always_fails, "nope")
    with pytest.raises(tierq.TaskFailedError) as info:
        await handle.result(timeout=10)
    assert "ValueError" in info.value.error_type
    assert info.value.message == "nope"
    assert info.value.traceback and "always_fails" in info.value.traceback
    task = await handle.status()
    assert task.state is TaskState.DEAD
    assert task.attempt == 3
    assert [h.outcome for h in task.history][-3:] == ["failed", "failed", "failed"]
    counts = await ledger(client)
    assert counts["dead"] == 1


async def test_retry_then_success(cluster: LocalCluster, client: tierq.App, tmp_path: Path) -> None:
    await cluster.start_worker(TASKS)
    handle = await client.submit(itasks.fails_then_succeeds, str(tmp_path / "n"), 2)
    assert await handle.result(timeout=10) == 3
    await ledger(client)


async def test_timeout(cluster: LocalCluster, client: tierq.App) -> None:
    await cluster.start_worker(TASKS)
    handle = await client.submit(itasks.nap_with_timeout, 5.0)
    with pytest.raises(tierq.TaskTimeoutError):
        await handle.result(timeout=10)
    await ledger(client)


async def test_cancel_queued_and_running(cluster: LocalCluster, client: tierq.App) -> None:
    await cluster.start_worker(TASKS, concurrency=1)
    running = await client.submit(itasks.nap, 30.0)
    await _wait_state(client, running.id, TaskState.RUNNING)
    queued = await client.submit(itasks.add, 1, 2, run_at=time.time() + 60)
    await queued.cancel()
    await running.cancel()
    for handle in (queued, running):
        with pytest.raises(tierq.TaskCancelledError):
            await handle.result(timeout=10)
    # The worker really stopped the cancelled attempt: its only slot runs the next task.
    follow = await client.submit(itasks.add, 20, 22)
    assert await follow.result(timeout=10) == 42
    counts = await ledger(client)
    assert counts["cancelled"] == 2


async def test_progress_is_visible(cluster: LocalCluster, client: tierq.App) -> None:
    await cluster.start_worker(TASKS)
    handle = await client.submit(itasks.with_progress, 5)
    assert await handle.result(timeout=10) == 5
    task = await handle.status()
    assert task.progress == pytest.approx(1.0)
    assert task.progress_message == "step 5 of 5"


async def test_admission_limit_rejects_then_accepts(
    cluster: LocalCluster, client: tierq.App
) -> None:
    master = cluster.master
    assert master is not None
    limits = Settings(
        region_lease_seconds=2.0,
        admission=AdmissionSettings(max_queued=5, max_queued_per_queue=5, soft_watermark=1.0),
    )
    settings_bytes = __import__("msgspec").msgpack.encode(limits)
    # Settings are the API's to change (clients' NATS users may not): log in as the API.
    admin = tierq.App(cluster.nats.for_role("api"))
    try:
        await (await admin.master()).put_settings(settings_bytes)
    finally:
        await admin.close()
    handles = [await client.submit(itasks.add, i, i) for i in range(5)]
    with pytest.raises(tierq.BackpressureError) as info:
        await client.submit(itasks.add, 9, 9)
    assert info.value.retry_after > 0
    await cluster.start_worker(TASKS)
    for h in handles:
        await h.result(timeout=10)
    again = await client.submit(itasks.add, 9, 9)
    assert await again.result(timeout=10) == 18
    counts = await ledger(client)
    assert counts["submitted"] == 6


async def _wait_state(client: tierq.App, task_id: str, state: TaskState) -> None:
    for _ in range(400):
        if (await client.get(task_id)).state is state:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"task {task_id} never reached {state}")


async def test_stats_carry_event_rates_and_start_latency(
    cluster: LocalCluster, client: tierq.App
) -> None:
    from tierq.protocol import QueryKind, QueryRequest, StatsReply

    await cluster.start_worker(TASKS)
    handles = [await client.submit(itasks.add, i, 1) for i in range(5)]
    for h in handles:
        await h.result(timeout=10)
    master = await client.master()
    stats = (await master.query(QueryRequest(kind=QueryKind.STATS), StatsReply)).stats
    assert stats.totals.succeeded == 5
    assert stats.throughput["task_succeeded"] > 0
    assert stats.throughput["task_submitted"] > 0
    assert stats.latency is not None and stats.latency.samples == 5
    assert stats.latency.p50_ms is not None and 0 <= stats.latency.p50_ms < 10_000
    # By task type too (what an autoscaler's target_latency reads).
    assert stats.latency_by_name[itasks.add.name].samples == 5
