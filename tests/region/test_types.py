"""A region offers the master exactly the task types its live workers run (issue #11, 1 and 5).

A worker pool that leaves must not stall the region: tasks of its type that were queued here
go back to the master (with the reason in their history), and the region stops taking more.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tierq
from tests.region import orphan_tasks, rtasks
from tests.region.conftest import ORPHAN, TASKS, all_in, region_types, totals, until
from tierq.core.model import RetryPolicy, TaskSpec, TaskState
from tierq.engine import EmbeddedNats
from tierq.testing import LocalCluster, local_cluster

#: Several real processes start per test; a loaded 2-core machine needs more than 60 s.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.timeout(180),
]

#: Longer than a worker's pull wait (5 s), so a stopped worker's parked pull runs out while
#: the region still counts the worker as live.
LEASE = 7.0


@pytest.fixture
async def cluster(nats_server: EmbeddedNats) -> AsyncIterator[LocalCluster]:
    async with local_cluster(
        nats_server.url, worker_lease_seconds=LEASE, heartbeat_interval=0.5
    ) as c:
        yield c


async def test_a_leaving_worker_pool_hands_its_queued_tasks_back(
    cluster: LocalCluster, client: tierq.App, tmp_path: Path
) -> None:
    region = cluster.region
    assert region is not None
    gone = cluster.spawn_worker(ORPHAN, concurrency=8)
    stays = cluster.spawn_worker(TASKS, concurrency=4)
    await until(lambda: _registered(region, 2), 30, "both workers registered")
    # The orphan worker stops pulling (its parked pull runs out), yet holds its lease a while:
    # the region leases tasks for its 8 free slots that nobody here will ever pull.
    os.kill(gone.pid, signal.SIGSTOP)
    await asyncio.sleep(5.5)
    # No retries: a hand-back must not spend the only attempt (the task never started).
    once = RetryPolicy(max_attempts=1)
    specs = [TaskSpec(name=orphan_tasks.orphan.name, args=[i], retry=once) for i in range(8)]
    orphans = [handle.id for handle in await client.submit_many(specs)]
    await until(lambda: _queued(region, 8), 10, "8 orphan tasks queued in the region")
    # The lease runs out: the region must re-register without orphan.t and hand them back.
    await until(lambda: _registered(region, 1), LEASE + 5, "the stopped worker expired")
    ledger = tmp_path / "ran.jsonl"
    others = [(await client.submit(rtasks.record, str(ledger), f"t{i}")).id for i in range(20)]
    took = await until(lambda: all_in(client, others, TaskState.SUCCEEDED), 15, "others ran")
    print(f"worker pool left: 20 other tasks ran {took:.2f} s after its lease expired")
    assert "orphan.t" not in (await region_types(client) or ())
    # Handed back once they had no live worker for a worker lease (a restart gets them).
    await until(lambda: all_in(client, orphans, TaskState.READY), LEASE + 10, "orphans back")
    task = await client.get(orphans[0])
    assert task.history[-1].error is not None
    assert task.history[-1].error.type == "NoWorker"
    assert "orphan.t" in task.history[-1].error.message
    assert task.retry_base == 1  # the handed-back attempt is not counted
    # A worker for the type comes back: they run (a second attempt, the first was handed back).
    cluster.spawn_worker(ORPHAN, concurrency=8)
    await until(lambda: all_in(client, orphans, TaskState.SUCCEEDED), 20, "orphans ran")
    assert stays.poll() is None
    counts = await totals(client)
    print(f"worker pool left: duplicates {counts['duplicates']}, dead {counts['dead']}")
    assert counts["dead"] == 0


async def _registered(region: object, n: int) -> bool:
    return len(region.workers) == n  # type: ignore[attr-defined]


async def _queued(region: object, n: int) -> bool:
    return len(region.queue) == n  # type: ignore[attr-defined]


async def test_a_busy_type_does_not_take_an_idle_workers_slots(
    cluster: LocalCluster, client: tierq.App, tmp_path: Path
) -> None:
    """Credits are per worker: the region asks for the types of the workers that have room,
    so a backlog of a busy type with a higher priority cannot starve an idle worker."""
    region = cluster.region
    assert region is not None
    cluster.spawn_worker(TASKS, concurrency=2)
    cluster.spawn_worker(ORPHAN, concurrency=4)
    await until(lambda: _registered(region, 2), 30, "both workers registered")
    ledger = tmp_path / "ran.jsonl"
    busy = [
        (await client.submit(rtasks.nap, 3.0, str(ledger), f"b{i}", priority=5)).id
        for i in range(10)
    ]

    async def two_running() -> bool:
        tasks = [await client.get(i) for i in busy]
        return sum(t.state is TaskState.RUNNING for t in tasks) == 2

    await until(two_running, 30, "the busy worker runs two")
    idle = [(await client.submit(orphan_tasks.orphan, i)).id for i in range(4)]
    took = await until(lambda: all_in(client, idle, TaskState.SUCCEEDED), 30, "idle type ran")
    print(f"busy backlog of another type: the idle worker's 4 tasks ran in {took:.2f} s")
    # The backlog takes 10 / 2 * 3 = 15 s; the idle worker must not wait for it (it waited
    # 9 s before credits were per worker).
    assert took < 4.0
